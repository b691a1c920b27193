// The operator's view: the state of the one session, and its controls once the page has
// shown the console's secret (the token from the link, or the password).
"use strict";

(() => {
  const GRIPS = ["both-hands", "light-touch", "hands-free"];
  const KEYS = {
    Enter: "go", g: "go", s: "stop", S: "stop", Escape: "stop",
    n: "skip", e: "extend", "+": "faster", "=": "faster", "-": "slower", _: "slower",
  };
  let state = null;
  let nextId = 1;
  let password = null;

  // The token travels after '#': never sent with a request, never in a server log. Kept for
  // this tab only (a reload keeps working) and taken out of the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem("retrotread-token", fromLink);
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem("retrotread-token");

  function hello(ws) {
    const message = { type: "hello" };
    if (password) message.password = password;
    else if (token) message.token = token;
    ws.send(JSON.stringify(message));
  }

  function send(command) {
    const ws = link && link.socket;
    if (document.body.dataset.auth !== "granted" || !ws || ws.readyState !== WebSocket.OPEN) {
      return false;
    }
    ws.send(JSON.stringify({ type: "command", command, id: nextId++ }));
    return true;
  }

  function li(list, items, text) {
    const node = document.getElementById(list);
    node.replaceChildren(...items.map((item) => {
      const entry = document.createElement("li");
      entry.textContent = text(item);
      return entry;
    }));
  }

  function show(s) {
    state = s;
    const body = document.body;
    body.dataset.phase = s.phase;
    Views.setText("program", s.program);
    Views.setText("device", s.device);
    Views.setText("link", s.link);
    document.getElementById("link").className = `link ${s.link}`;
    const b = s.block;
    Views.setText("block-title",
      `${b.label} · ${b.title} · block ${b.index + 1}/${b.count} · facing the ${b.facing}`);
    Views.setText("countdown", Views.formatDuration(s.remaining_s));
    document.getElementById("countdown").classList.toggle(
      "counting", s.count !== null || (s.remaining_s <= 3 && s.phase === "running"));
    Views.setText("status", s.status);
    Views.setText("target-speed", s.target_speed || "-");
    Views.setText("actual-speed",
      s.link === "reconnecting" || s.link === "lost" ? "unknown: no link" : s.actual_speed || "-");
    Views.setText("incline",
      `${s.target_incline || "-"} set · ${s.actual_incline || "-"} now`);
    Views.setText("distance", `${(s.distance_m / 1000).toFixed(2)} km`);
    Views.setText("time", `${s.elapsed} done · ${s.left} left`);
    const cue = document.getElementById("cue");
    for (const grip of GRIPS) cue.classList.toggle(grip, b.handrail === grip);
    cue.classList.toggle("turn", b.turn);
    Views.setText("headline", b.headline);
    Views.setText("detail", b.detail);
    Views.setText("next", s.next ? `Next: ${s.next.label} · ${s.next.title} · ${s.next.duration}` : "Next: end of the program");
    Views.setText("warning", s.hold ? `${s.hold}` : s.warning ? `! ${s.warning}` : "");
    for (const [command, allowed] of Object.entries(s.can)) {
      for (const button of document.querySelectorAll(`[data-command="${command}"]`)) {
        button.disabled = !allowed;
      }
    }
    for (const button of document.querySelectorAll('[data-command="faster"],[data-command="slower"]')) {
      button.disabled = !s.can.nudge;
    }
    li("faults", s.faults, (f) => `${f.fatal ? "fault" : "hold"} (${f.kind}): ${f.message}`);
    li("notices", s.notices, (n) => n);
    const summary = document.getElementById("summary");
    if (s.summary) {
      const m = s.summary;
      summary.textContent =
        `Session over · ${m.outcome}: ${m.detail} · blocks ${m.blocks} · retro ${m.retro} · ` +
        `elapsed ${m.elapsed} · ${m.distance_m} m · belt ` +
        (m.belt_stopped ? "stopped" : "NOT CONFIRMED STOPPED — check the treadmill");
    } else {
      summary.textContent = "";
    }
  }

  let link = null;
  const listen = () => Views.connect("/ws/operator", {
    onOpen: hello,
    onMessage: (data) => {
      if (data.type === "welcome") {
        document.body.dataset.auth = "granted";
      } else if (data.type === "denied") {
        document.body.dataset.auth = "denied";
        password = null;
        Views.setText("lock-reason", data.text);
      } else if (data.type === "operator") {
        show(data);
      } else if (data.type === "answer") {
        Views.setText("answer", data.text);
      }
    },
    onLink: (linkState) => {
      if (linkState !== "connected") Views.setText("link", `page ${linkState}`);
      if (linkState.startsWith("closed") && document.body.dataset.auth !== "granted") {
        document.body.dataset.auth = "denied";
      }
    },
  });

  // Without a secret there is nothing to ask the server: the page waits for the password.
  if (token) link = listen();
  else document.body.dataset.auth = "locked";

  document.getElementById("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    password = document.getElementById("password").value;
    Views.setText("lock-reason", "");
    if (link) link.reopen();
    else link = listen();
  });

  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () => send(button.dataset.command));
  }

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    let command = KEYS[event.key];
    if (event.key === " ") {
      command = state && state.can.resume ? "resume" : "pause";
    }
    if (command && send(command)) event.preventDefault();
  });
})();
