// The room page: signaling over the room's WebSocket, audio over WebRTC to roomtape's SFU.
// The server always offers and this page answers; when it is on stage, the offer names the
// transceiver (by mid) that carries its microphone. All user text goes in through textContent.

const boot = JSON.parse(document.getElementById("boot").textContent);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const $ = (id) => document.getElementById(id);

const state = {
  role: null,
  people: [],
  byId: new Map(),
  speaking: new Set(),
  recording: false,
  invited: false,
  muted: false,
  closed: false,
  ended: false,
  // The microphone was refused or is missing: this page listens only.
  noMic: false,
  // Whether the room offers captions ("unavailable", "off", "on"), and whether I asked for them.
  captions: "unavailable",
  showCaptions: false,
  // Final caption lines on screen, oldest first, and each speaker's partial.
  lines: [],
  partials: new Map(),
};
// Caption lines kept on screen.
const MAX_LINES = 8;
const CAPTIONS_KEY = "roomtape.captions";
let ws = null;
let pc = null;
let micStream = null;
let micSender = null;
let micTransceiver = null;
const audios = new Map();

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function notice(text) {
  const n = $("notice");
  n.textContent = text;
  n.hidden = !text;
}

function connect() {
  const q = new URLSearchParams();
  if (boot.invite) q.set("invite", boot.invite);
  if (boot.speak) q.set("speak", boot.speak);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const qs = q.toString();
  ws = new WebSocket(`${scheme}://${location.host}/rooms/${boot.room}/ws${qs ? "?" + qs : ""}`);
  ws.onopen = () => send({ type: "hello", v: 1 });
  ws.onmessage = (e) => {
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      return;
    }
    handle(m).catch((err) => notice(`Something went wrong: ${err.message ?? err}`));
  };
  ws.onclose = () => {
    state.closed = true;
    if (!state.ended && !$("notice").textContent) notice("You left the room.");
    teardown();
    render();
  };
}

const ROLE_ORDER = ["host", "cohost", "speaker", "listener"];

// The server's order: host, co-hosts, speakers, listeners; by name within each.
function byStageThenName(a, b) {
  const r = ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role);
  if (r !== 0) return r;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

async function handle(m) {
  switch (m.type) {
    case "welcome":
      // A guest learns who they are here (a fresh id for this visit).
      boot.me = m.you;
      state.role = m.role;
      state.people = m.people;
      state.byId = new Map(m.people.map((p) => [p.id, p]));
      setRecording(m.recording);
      if (m.recording) notice("This room is being recorded.");
      state.captions = m.captions;
      // Captions stay on for whoever turned them on before.
      if (localStorage.getItem(CAPTIONS_KEY) === "on" && m.captions === "on") setCaptions(true);
      break;
    case "captions_offered":
      state.captions = m.captions;
      if (m.captions !== "on") {
        state.partials.clear();
      } else if (state.showCaptions) {
        send({ type: "captions", on: true });
      }
      break;
    case "caption":
      caption(m);
      break;
    case "offer":
      await answer(m);
      break;
    case "presence":
      // A change since the last one: people whole, by id, and the ids of those who left.
      for (const p of m.changed) state.byId.set(p.id, p);
      for (const id of m.gone) state.byId.delete(id);
      state.people = [...state.byId.values()].sort(byStageThenName);
      {
        const mine = state.byId.get(boot.me);
        if (mine) {
          state.role = mine.role;
          state.muted = mine.muted;
        }
      }
      break;
    case "speaking":
      state.speaking = new Set(m.users);
      break;
    case "invited":
      state.invited = true;
      notice(`${m.by} invites you to speak.`);
      break;
    case "role":
      state.role = m.role;
      state.invited = false;
      if (m.role === "listener") notice("You are back in the audience.");
      break;
    case "muted":
      notice(`${m.by} muted you.`);
      setMicEnabled(false);
      break;
    case "recording":
      setRecording(m.on);
      notice(m.on ? "This room is being recorded." : "Recording stopped.");
      break;
    case "removed":
      notice("The host removed you from this room.");
      break;
    case "ended":
      // The room's URL becomes its replay: the server sends a reload there (or to a page
      // that says the room ended, when there is no replay to hear).
      state.ended = true;
      setRecording(false);
      notice("The host ended this room. Its replay will be at this link when it is ready; taking you there…");
      setTimeout(() => location.reload(), 4000);
      break;
    case "error":
      notice(`Not done: ${m.message}`);
      break;
  }
  render();
}

function peer() {
  if (pc) return pc;
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  pc.ontrack = (e) => {
    const stream = e.streams[0] ?? new MediaStream([e.track]);
    let a = audios.get(stream.id);
    if (!a) {
      a = document.createElement("audio");
      a.autoplay = true;
      a.dataset.stream = stream.id;
      $("sinks").appendChild(a);
      audios.set(stream.id, a);
    }
    a.srcObject = stream;
    a.play().catch(() => audioPrompt(true));
  };
  pc.onconnectionstatechange = () => {
    if (pc && pc.connectionState === "failed") notice("The audio connection failed.");
  };
  return pc;
}

// Why the microphone could not be had, and what the person can still do.
function micProblem(err) {
  const can = "You can listen; the room cannot hear you.";
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return `Microphone access was refused. ${can} Allow the microphone for this site, then press Unmute.`;
    case "NotFoundError":
    case "OverconstrainedError":
      return `No microphone was found. ${can} Connect one, then press Unmute.`;
    default:
      return `The microphone could not be opened (${err?.message ?? err}). ${can}`;
  }
}

// Opens the microphone; on failure the page listens only, muted, and says why.
async function openMic() {
  if (micStream) return true;
  try {
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    state.noMic = false;
    return true;
  } catch (err) {
    state.noMic = true;
    if (!state.muted) {
      state.muted = true;
      send({ type: "set_muted", muted: true });
    }
    notice(micProblem(err));
    return false;
  }
}

async function answer(m) {
  const p = peer();
  await p.setRemoteDescription({ type: "offer", sdp: m.sdp });
  for (const t of p.getTransceivers()) {
    if (m.mic && t.mid === m.mic && !t.stopped) {
      // Sending, with or without a track: a microphone found later is put in place
      // without a new offer.
      t.direction = "sendonly";
      micTransceiver = t;
      micSender = t.sender;
      if (state.noMic || !(await openMic())) continue;
      const track = micStream.getAudioTracks()[0];
      track.enabled = !state.muted;
      await t.sender.replaceTrack(track);
    }
  }
  if (!m.mic) {
    // Off stage: the server made the microphone track inactive; release the microphone.
    if (micStream) {
      await micSender?.replaceTrack(null);
      micStream.getTracks().forEach((t) => t.stop());
      micStream = null;
    }
    micSender = null;
    micTransceiver = null;
  }
  const a = await p.createAnswer();
  await p.setLocalDescription(a);
  send({ type: "answer", sdp: p.localDescription.sdp });
}

function setMicEnabled(on) {
  state.muted = !on;
  micStream?.getAudioTracks().forEach((t) => (t.enabled = on));
}

// Browsers may refuse to play before the person has touched the page: then a button says
// so, beside (never instead of) the other notices.
function audioPrompt(show) {
  let b = $("play-audio");
  if (!b && show) {
    b = button("Play the room's audio", () => {
      for (const a of audios.values()) a.play().catch(() => {});
      audioPrompt(false);
    });
    b.id = "play-audio";
    b.className = "primary";
    $("notice").after(b);
  }
  if (b) b.hidden = !show;
}

function setRecording(on) {
  state.recording = on;
  const ind = $("recording-indicator");
  ind.hidden = !on;
  ind.textContent = "Recording: this room is being recorded";
  const r = $("record");
  if (r) r.textContent = on ? "Stop recording" : "Start recording";
}

function setCaptions(on) {
  state.showCaptions = on;
  localStorage.setItem(CAPTIONS_KEY, on ? "on" : "off");
  if (!on) state.partials.clear();
  send({ type: "captions", on });
}

// A speaker's final text joins their last line (while it is the last one and short), or starts
// a new one; their partial is replaced.
function caption(m) {
  if (m.kind === "partial") {
    if (m.text) state.partials.set(m.speaker, { name: m.name, text: m.text });
    else state.partials.delete(m.speaker);
    return;
  }
  state.partials.delete(m.speaker);
  if (m.kind !== "final") {
    // Paused or resumed: the server says why, as a line of its own.
    state.partials.clear();
    if (m.text) addLine({ speaker: null, name: "", text: m.text });
    return;
  }
  const last = state.lines[state.lines.length - 1];
  if (last && last.speaker === m.speaker && last.text.length < 160) {
    last.text += " " + m.text;
    last.changed = true;
  } else {
    addLine({ speaker: m.speaker, name: m.name, text: m.text });
  }
}

function addLine(l) {
  l.changed = true;
  state.lines.push(l);
  while (state.lines.length > MAX_LINES) state.lines.shift().el?.remove();
}

function fillLine(el, l) {
  el.className = l.speaker ? "line" : "line note";
  el.replaceChildren();
  if (l.speaker) {
    el.dataset.speaker = l.speaker;
    const who = document.createElement("b");
    who.className = "who";
    who.textContent = l.name + ": ";
    el.appendChild(who);
  }
  el.append(l.text);
}

function renderCaptions() {
  const box = $("captions-box");
  const offered = state.captions === "on";
  box.hidden = state.closed || state.captions === "unavailable";
  const toggle = $("captions-toggle");
  toggle.hidden = !offered;
  toggle.textContent = state.showCaptions ? "Hide captions" : "Show captions";
  toggle.setAttribute("aria-pressed", String(state.showCaptions));
  const st = $("captions-state");
  st.hidden = offered;
  st.textContent = offered ? "" : "The host turned captions off in this room.";
  const list = $("captions");
  const show = offered && state.showCaptions;
  list.hidden = !show;
  // Each line keeps its element: the live region announces what is added or changed, and
  // lines already read are not written again.
  for (const l of state.lines) {
    if (!l.el) {
      l.el = document.createElement("p");
      list.appendChild(l.el);
    }
    if (l.changed) {
      fillLine(l.el, l);
      list.scrollTop = list.scrollHeight;
    }
    l.changed = false;
  }
  const partial = $("captions-partial");
  const parts = [...state.partials.values()];
  partial.hidden = !show || parts.length === 0;
  partial.textContent = parts.map((p) => `${p.name}: ${p.text}`).join(" · ");
  const allow = $("captions-allow");
  if (allow) {
    allow.hidden = state.captions === "unavailable";
    allow.textContent = offered ? "Turn captions off for the room" : "Offer captions in the room";
  }
}

function teardown() {
  pc?.close();
  pc = null;
  micStream?.getTracks().forEach((t) => t.stop());
  micStream = null;
  micSender = null;
  for (const a of audios.values()) a.remove();
  audios.clear();
}

const ROLE_NAMES = { host: "Host", cohost: "Co-host", speaker: "Speaker", listener: "" };
const onStage = (role) => role && role !== "listener";
const moderates = () => state.role === "host" || state.role === "cohost";

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function personItem(p) {
  const li = document.createElement("li");
  li.dataset.user = p.id;
  li.className = "person";
  if (state.speaking.has(p.id) || p.speaking) li.classList.add("speaking");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = p.name + (p.id === boot.me ? " (you)" : "");
  li.appendChild(name);
  if (ROLE_NAMES[p.role]) {
    const r = document.createElement("span");
    r.className = "badge";
    r.textContent = ROLE_NAMES[p.role];
    li.appendChild(r);
  }
  if (onStage(p.role) && p.muted) {
    const m = document.createElement("span");
    m.className = "badge muted";
    m.textContent = "muted";
    li.appendChild(m);
  }
  // Speaking is said in words too, not only by the ring's colour (shown while .speaking).
  const talk = document.createElement("span");
  talk.className = "speaking-label";
  const bars = document.createElement("span");
  bars.className = "bars";
  bars.setAttribute("aria-hidden", "true");
  bars.append(document.createElement("i"), document.createElement("i"), document.createElement("i"));
  talk.append(bars, "Speaking");
  li.appendChild(talk);
  if (p.hand) {
    const h = document.createElement("span");
    h.className = "badge hand";
    h.textContent = "Hand raised";
    li.appendChild(h);
  }
  const canAct =
    moderates() &&
    p.id !== boot.me &&
    p.role !== "host" &&
    !(p.role === "cohost" && state.role !== "host");
  if (canAct) {
    const tools = document.createElement("span");
    tools.className = "tools";
    if (p.guest) {
      // Listening without an account: nothing to invite or promote.
    } else if (p.role === "listener") {
      tools.appendChild(button("Invite to speak", () => send({ type: "invite_to_speak", user: p.id })));
    } else {
      tools.appendChild(button("Mute", () => send({ type: "mute", user: p.id })));
      tools.appendChild(button("To audience", () => send({ type: "move_to_audience", user: p.id })));
    }
    if (p.role !== "cohost" && !p.guest) {
      tools.appendChild(button("Make co-host", () => send({ type: "make_cohost", user: p.id })));
    }
    tools.appendChild(
      button("Remove…", () => {
        const what = p.guest
          ? `Show ${p.name} out of this room? (A guest without an account can come back.)`
          : `Remove ${p.name} from this room? They cannot come back in.`;
        if (confirm(what)) {
          send({ type: "remove", user: p.id });
        }
      }),
    );
    li.appendChild(tools);
  }
  return li;
}

function render() {
  const stage = $("stage");
  const audience = $("audience");
  stage.replaceChildren(...state.people.filter((p) => onStage(p.role)).map(personItem));
  audience.replaceChildren(...state.people.filter((p) => !onStage(p.role)).map(personItem));
  const hands = $("hands");
  if (hands) {
    hands.replaceChildren(
      ...state.people
        .filter((p) => p.hand)
        .map((p) => {
          const li = document.createElement("li");
          li.textContent = p.name + " ";
          li.appendChild(button("Invite to speak", () => send({ type: "invite_to_speak", user: p.id })));
          return li;
        }),
    );
  }
  const me = state.people.find((p) => p.id === boot.me);
  const listening = state.role === "listener";
  const hand = $("hand");
  hand.hidden = !listening || state.closed;
  hand.textContent = boot.guest ? "Sign in to raise your hand" : me?.hand ? "Lower hand" : "Raise hand";
  const accept = $("accept");
  accept.hidden = !(listening && state.invited) || state.closed;
  $("mute").hidden = !onStage(state.role) || state.closed;
  $("mute").textContent = state.muted ? "Unmute" : "Mute";
  $("leave-stage").hidden = !onStage(state.role) || state.role === "host" || state.closed;
  $("leave").hidden = state.closed;
  const host = $("host-controls");
  if (host) host.hidden = state.closed;
  $("room").classList.toggle("closed", state.closed);
  renderCaptions();
}

$("hand").addEventListener("click", () => {
  // Without an account: sign in (or sign up) and come back to this room.
  if (boot.guest) {
    location.href = boot.login;
    return;
  }
  const me = state.people.find((p) => p.id === boot.me);
  send({ type: me?.hand ? "lower_hand" : "raise_hand" });
});
$("accept").addEventListener("click", () => {
  state.invited = false;
  notice("");
  send({ type: "accept_invite" });
});
$("mute").addEventListener("click", async () => {
  if (state.muted && !micStream) {
    // Listening only so far: ask for the microphone again (the person may have allowed it).
    if (!(await openMic())) return render();
    const track = micStream.getAudioTracks()[0];
    await micTransceiver?.sender.replaceTrack(track);
    notice("");
  }
  setMicEnabled(state.muted);
  send({ type: "set_muted", muted: state.muted });
  render();
});
$("leave-stage").addEventListener("click", () => send({ type: "move_to_audience", user: boot.me }));
$("leave").addEventListener("click", () => {
  ws?.close();
  location.href = "/";
});
$("record")?.addEventListener("click", () =>
  send({ type: state.recording ? "stop_recording" : "start_recording" }),
);
$("captions-toggle").addEventListener("click", () => {
  setCaptions(!state.showCaptions);
  render();
});
$("captions-allow")?.addEventListener("click", () =>
  send({ type: "allow_captions", on: state.captions !== "on" }),
);
$("end")?.addEventListener("click", () => {
  if (confirm("End the room for everyone?")) send({ type: "end_room" });
});
$("speaker-link")?.addEventListener("click", async () => {
  const r = await fetch(`/api/v1/rooms/${boot.room}/speaker-invites`, {
    method: "POST",
    headers: { "x-csrf-token": csrf },
  });
  const body = await r.json();
  $("speaker-invite").textContent = r.ok ? new URL(body.link, location.href).href : body.error.message;
});
document.addEventListener("click", () => {
  for (const a of audios.values()) a.play().then(() => audioPrompt(false), () => {});
});

// For tests and troubleshooting: what this page knows, and its WebRTC statistics.
window.roomtape = {
  state: () => ({
    ...state,
    speaking: [...state.speaking],
    partials: [...state.partials.values()],
    lines: state.lines.map(({ speaker, name, text }) => ({ speaker, name, text })),
    connection: pc ? `${pc.iceConnectionState}/${pc.connectionState}/${pc.signalingState}` : null,
  }),
  inbound: async () => {
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.push({
          packetsReceived: s.packetsReceived ?? 0,
          audioLevel: s.audioLevel ?? 0,
          totalAudioEnergy: s.totalAudioEnergy ?? 0,
        });
      }
    });
    return out;
  },
};

connect();
render();
