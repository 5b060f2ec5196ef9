// roomtape lobby: fetches the lobby again every little while and swaps in its lists, so rooms
// that start, fill, empty or end show without a reload. The server decides what is live (one
// rule, in rooms.rs); this only moves its rendered lists in. No HTML is built from strings.
"use strict";

(() => {
  const lobby = document.getElementById("lobby");
  if (!lobby || typeof DOMParser === "undefined") return;
  const every = (Number(lobby.dataset.refreshSeconds) || 15) * 1000;
  let timer = null;
  let busy = false;

  async function refresh() {
    if (busy || document.visibilityState === "hidden") return;
    busy = true;
    try {
      const res = await fetch(location.pathname, {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("lobby");
      const current = document.getElementById("lobby");
      if (!fresh || !current || fresh.innerHTML === current.innerHTML) return;
      // Keep the keyboard where it was: swapping moves focus only if it was inside.
      const focused = current.contains(document.activeElement) ? document.activeElement : null;
      const href = focused && focused.getAttribute("href");
      current.replaceWith(document.adoptNode(fresh));
      if (href) {
        const again = Array.from(fresh.querySelectorAll("a[href]")).find((a) => a.getAttribute("href") === href);
        if (again) again.focus();
      }
    } catch (_) {
      // Offline or the server restarting: try again next time.
    } finally {
      busy = false;
    }
  }

  function start() {
    if (timer === null) timer = setInterval(refresh, every);
  }
  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") stop();
    else {
      refresh();
      start();
    }
  });
  start();
})();
