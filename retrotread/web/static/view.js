// Shared by both pages: a websocket onto the one session, reconnecting after a drop.
"use strict";

const Views = (() => {
  // Close codes the server uses for "do not come back": wrong secret, walker sent something.
  const FINAL = new Set([4401, 4403]);

  function socketUrl(path) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${path}`;
  }

  function formatDuration(seconds) {
    const total = Math.max(0, Math.round(seconds));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const secs = String(total % 60).padStart(2, "0");
    if (hours) {
      return `${hours}:${String(minutes).padStart(2, "0")}:${secs}`;
    }
    return `${minutes}:${secs}`;
  }

  // Opens ``path``; ``onOpen(ws)`` runs on each (re)connection, ``onMessage(data)`` per
  // message, ``onLink(state)`` with "connected", "reconnecting" or "closed: why".
  function connect(path, { onOpen, onMessage, onLink }) {
    let delay = 500;
    let current = null;
    function open() {
      const ws = new WebSocket(socketUrl(path));
      current = ws;
      ws.onopen = () => {
        delay = 500;
        onLink("connected");
        if (onOpen) onOpen(ws);
      };
      ws.onmessage = (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        onMessage(data, ws);
      };
      ws.onclose = (event) => {
        if (FINAL.has(event.code)) {
          onLink(`closed: ${event.reason || "refused"}`);
          return;
        }
        onLink("reconnecting");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    open();
    return { get socket() { return current; }, reopen: open };
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  return { connect, formatDuration, setText };
})();
