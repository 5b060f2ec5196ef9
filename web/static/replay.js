// roomtape replay page: player, lanes, synchronised transcript, find, share quote.
// Every text shown comes from the server-rendered DOM and is set with textContent.
"use strict";

(() => {
  const root = document.getElementById("replay");
  if (!root) return;
  const player = document.getElementById("player");
  const lines = Array.from(document.querySelectorAll("#transcript li.line"));
  const segs = lines.map((el) => ({
    el,
    i: Number(el.dataset.i),
    start: Number(el.dataset.start) / 1000,
    end: Number(el.dataset.end) / 1000,
    speaker: Number(el.dataset.speaker),
  }));
  const base = `/r/${root.dataset.id}`;
  // While there is no transcript yet: say how it is going, and show it once it is ready
  // (the page comes back at the second being played).
  const status = document.getElementById("transcript-status");
  if (status && !["transcribed", "failed"].includes(status.dataset.state)) {
    const poll = async () => {
      try {
        const r = await fetch(`${base}/status.json`, { cache: "no-store" });
        if (r.ok) {
          const s = await r.json();
          status.textContent = s.text;
          status.dataset.state = s.state;
          if (s.state === "transcribed") {
            const u = new URL(location.href);
            if (player && player.currentTime > 0) u.searchParams.set("t", player.currentTime.toFixed(1));
            location.replace(u.href);
            return;
          }
          if (s.state === "failed") return;
        }
      } catch {
        // Offline for a moment: try again at the next tick.
      }
      setTimeout(poll, 4000);
    };
    setTimeout(poll, 4000);
  }
  // The speakers' colours are the stylesheet's (light or dark), so the lanes match the names.
  const css = getComputedStyle(document.documentElement);
  const COLORS = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => css.getPropertyValue(`--s${k}`).trim() || "#55626f");

  // The span to stop at (a shared quote), if any.
  let stopAt = null;
  let userScrolledAt = 0;
  let current = -1;

  function seek(seconds, play) {
    if (!player) return;
    const go = () => {
      player.currentTime = Math.max(0, seconds);
      if (play) player.play().catch(() => {});
    };
    if (player.readyState >= 1) go();
    else player.addEventListener("loadedmetadata", go, { once: true });
  }

  // The line playing at time t: the last one that started at or before t.
  function lineAt(t) {
    let lo = 0, hi = segs.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segs[mid].start <= t + 0.05) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  function follow() {
    if (!player) return;
    const t = player.currentTime;
    const k = lineAt(t);
    if (k !== current) {
      if (current >= 0) segs[current].el.classList.remove("current");
      current = k;
      if (k >= 0) {
        segs[k].el.classList.add("current");
        segs[k].el.setAttribute("aria-current", "true");
        // Keep the line in view unless the reader scrolled in the last few seconds.
        if (Date.now() - userScrolledAt > 4000) segs[k].el.scrollIntoView({ block: "nearest" });
      }
      for (const s of segs) if (s.i !== (k >= 0 ? segs[k].i : -1)) s.el.removeAttribute("aria-current");
    }
    if (stopAt !== null && t >= stopAt) {
      player.pause();
      stopAt = null;
    }
    drawCursor();
  }

  // Lanes: one row per speaker, peaks of their track, segments as bars.
  const canvas = document.getElementById("lanes");
  let peaks = null;
  const speakers = document.querySelectorAll("ul.speakers li").length || 1;
  function duration() {
    if (player && isFinite(player.duration) && player.duration > 0) return player.duration;
    return segs.length ? segs[segs.length - 1].end : 1;
  }
  function drawLanes() {
    if (!canvas) return;
    const w = (canvas.width = canvas.clientWidth || 600);
    const lane = canvas.height / speakers;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, canvas.height);
    const d = duration();
    for (const s of segs) {
      ctx.fillStyle = COLORS[s.speaker % COLORS.length] + "55";
      ctx.fillRect((s.start / d) * w, s.speaker * lane + 2, Math.max(2, ((s.end - s.start) / d) * w), lane - 4);
    }
    if (peaks && peaks.tracks) {
      peaks.tracks.forEach((tr, idx) => {
        ctx.fillStyle = COLORS[idx % COLORS.length];
        const mid = idx * lane + lane / 2;
        tr.peaks.forEach((p, j) => {
          const t = tr.offset_ms / 1000 + j / peaks.rate;
          const h = (p / 255) * (lane / 2 - 2);
          ctx.fillRect((t / d) * w, mid - h, Math.max(1, w / (d * peaks.rate)), 2 * h);
        });
      });
    }
    drawCursor(ctx);
  }
  function drawCursor() {
    if (!canvas || !player) return;
    const ctx = canvas.getContext("2d");
    const x = (player.currentTime / duration()) * canvas.width;
    canvas.dataset.cursor = x.toFixed(1);
    // A thin cursor over the lanes (redrawn with the lanes on resize and load).
    ctx.save();
    ctx.globalCompositeOperation = "difference";
    ctx.fillStyle = "#888";
    if (canvas._lastX !== undefined) ctx.fillRect(canvas._lastX, 0, 1, canvas.height);
    ctx.fillRect(x, 0, 1, canvas.height);
    ctx.restore();
    canvas._lastX = x;
  }
  if (canvas) {
    canvas.addEventListener("click", (e) => {
      const r = canvas.getBoundingClientRect();
      seek(((e.clientX - r.left) / r.width) * duration(), true);
    });
    fetch(`${base}/peaks.json`).then((r) => (r.ok ? r.json() : null)).then((p) => { peaks = p; drawLanes(); }).catch(() => {});
    window.addEventListener("resize", drawLanes);
  }

  if (player) {
    player.addEventListener("timeupdate", follow);
    player.addEventListener("seeked", follow);
    player.addEventListener("loadedmetadata", drawLanes);
    const speed = document.getElementById("speed");
    if (speed) speed.addEventListener("change", () => { player.playbackRate = Number(speed.value) || 1; });
  }
  const box = document.getElementById("transcript");
  if (box) box.addEventListener("wheel", () => { userScrolledAt = Date.now(); }, { passive: true });

  // Click a line (its time or text) to play from there.
  for (const s of segs) {
    s.el.addEventListener("click", (e) => {
      if (e.target.classList.contains("pick")) return;
      stopAt = null;
      seek(s.start, true);
    });
  }

  // A turn's head (speaker and start time) plays the turn from its first line. Without this
  // script it is a plain ?t= link.
  for (const a of document.querySelectorAll("#transcript .turn-time")) {
    a.addEventListener("click", (e) => {
      e.preventDefault();
      stopAt = null;
      seek(Number(a.dataset.start) / 1000, true);
    });
  }

  // Next / previous speaker: the next line whose speaker differs from the current one.
  function jump(dir) {
    if (!segs.length) return;
    let k = lineAt(player.currentTime);
    const who = k >= 0 ? segs[k].speaker : -1;
    for (k += dir; k >= 0 && k < segs.length; k += dir) {
      if (segs[k].speaker !== who) {
        // Going back lands on the start of that speaker's turn.
        if (dir < 0) while (k > 0 && segs[k - 1].speaker === segs[k].speaker) k--;
        seek(segs[k].start, true);
        return;
      }
    }
  }
  const next = document.getElementById("next-speaker");
  const prev = document.getElementById("prev-speaker");
  if (next) next.addEventListener("click", () => jump(1));
  if (prev) prev.addEventListener("click", () => jump(-1));

  // Find in this replay.
  const find = document.getElementById("find");
  const count = document.getElementById("find-count");
  let hits = [], hitAt = -1;
  if (find) {
    find.addEventListener("input", () => {
      const q = find.value.trim().toLowerCase();
      hits = [];
      for (const s of segs) {
        const on = q !== "" && s.el.querySelector(".text").textContent.toLowerCase().includes(q);
        s.el.classList.toggle("match", on);
        s.el.hidden = q !== "" && !on && find.dataset.filter === "1";
        if (on) hits.push(s);
      }
      // A turn whose lines are all hidden hides its head too.
      for (const turn of document.querySelectorAll("#transcript li.turn")) {
        turn.hidden = Array.from(turn.querySelectorAll("li.line")).every((l) => l.hidden);
      }
      hitAt = -1;
      count.textContent = q === "" ? "" : `${hits.length} line${hits.length === 1 ? "" : "s"}`;
    });
    find.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || !hits.length) return;
      hitAt = (hitAt + 1) % hits.length;
      hits[hitAt].el.scrollIntoView({ block: "center" });
      userScrolledAt = Date.now();
      seek(hits[hitAt].start, false);
    });
  }

  // Share quote: the picked lines (first to last) as a link that plays exactly that span.
  const share = document.getElementById("share");
  const shareLink = document.getElementById("share-link");
  function picked() {
    const on = segs.filter((s) => s.el.querySelector(".pick").checked);
    return on.length ? [on[0], on[on.length - 1]] : null;
  }
  for (const s of segs) {
    s.el.querySelector(".pick").addEventListener("change", () => { share.disabled = !picked(); });
  }
  if (share) {
    share.addEventListener("click", () => {
      const p = picked();
      if (!p) return;
      const url = new URL(base, location.href);
      url.searchParams.set("q", `${p[0].i}-${p[1].i}`);
      shareLink.value = url.toString();
      shareLink.hidden = false;
      shareLink.select();
      if (navigator.clipboard) navigator.clipboard.writeText(url.toString()).catch(() => {});
    });
  }

  // English translations under the original lines: shown unless turned off (remembered).
  const showTr = document.getElementById("show-translations");
  if (showTr && box) {
    const apply = () => box.classList.toggle("no-translations", !showTr.checked);
    try { if (localStorage.getItem("roomtape.translations") === "off") showTr.checked = false; } catch {}
    apply();
    showTr.addEventListener("change", () => {
      apply();
      try { localStorage.setItem("roomtape.translations", showTr.checked ? "on" : "off"); } catch {}
    });
  }

  // Keys, as in other players: Space (or k) plays and pauses, ← and → step 5 s. Not while
  // typing, and not on a control that has its own use for the key (a button, a link, the
  // player itself, a checkbox).
  document.addEventListener("keydown", (e) => {
    if (!player || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t !== document.body && t.closest("input, textarea, select, button, a, audio, [contenteditable]")) return;
    if (e.key === " " || e.key === "k") {
      e.preventDefault();
      stopAt = null;
      if (player.paused) player.play().catch(() => {});
      else player.pause();
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      seek(player.currentTime + (e.key === "ArrowLeft" ? -5 : 5), !player.paused);
    }
  });

  // Where to start: a shared quote plays its span; ?t= opens at that second.
  if (root.dataset.quoteStart !== undefined) {
    stopAt = Number(root.dataset.quoteEnd) / 1000;
    seek(Number(root.dataset.quoteStart) / 1000, true);
  } else if (root.dataset.start !== undefined) {
    seek(Number(root.dataset.start), true);
  }
})();
