// The walker view: countdown, cue and handrail colour. It never sends anything: the server
// closes a walker socket that does.
"use strict";

(() => {
  const GRIPS = ["both-hands", "light-touch", "hands-free"];
  // The server sends the hint (retrotread/walker.py); these are for a state without one.
  const HINTS = {
    connecting: "connecting…",
    ready: "READY · the belt starts on the operator's go",
    paused: "PAUSED · hold both handrails",
    stopping: "STOPPING · hold both handrails",
    ended: "Session over",
    failed: "The treadmill could not be reached",
  };

  function show(state) {
    document.body.dataset.phase = state.phase;
    // The 3-2-1 before a change fills the countdown, as on the console.
    const count = Number.isInteger(state.count) ? String(state.count) : null;
    Views.setText("countdown", count || Views.formatDuration(state.remaining_s));
    const countdown = document.getElementById("countdown");
    countdown.classList.toggle("counting", Boolean(state.counting));
    const cue = document.getElementById("cue");
    for (const grip of GRIPS) cue.classList.toggle(grip, state.handrail === grip);
    cue.classList.toggle("turn", Boolean(state.turn));
    cue.classList.toggle("stop", state.phase === "stopping" || state.phase === "ended");
    Views.setText("headline", state.headline);
    Views.setText("detail", state.detail);
    Views.setText("call", state.call || "");
    Views.setText("hint", state.hint ?? HINTS[state.phase] ?? "");
  }

  Views.connect("/ws/walker", {
    onMessage: (data) => {
      if (data.type === "walker") show(data);
    },
    onLink: (link) => {
      document.body.dataset.link = link.split(":")[0];
      Views.setText("link", link === "connected" ? "" : link);
    },
  });
})();
