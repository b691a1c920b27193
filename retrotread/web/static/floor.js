// The floor: a tile per console, live. The operator's page (after the secret: the token from
// the link, or the password) has STOP and pause per tile and STOP ALL; /view is read-only.
"use strict";

(() => {
  const readOnly = location.pathname === "/view";
  const body = document.body;
  let nextId = 1;
  let password = null;
  let floor = null;
  let link = null;

  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem("retrotread-floor-token", fromLink);
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem("retrotread-floor-token");

  function send(message) {
    const ws = link && link.socket;
    if (readOnly || body.dataset.auth !== "granted" || !ws || ws.readyState !== WebSocket.OPEN) {
      return false;
    }
    ws.send(JSON.stringify({ type: "command", id: nextId++, ...message }));
    return true;
  }

  function part(tile, name, tag = "div") {
    let node = tile.querySelector(`.${name}`);
    if (!node) {
      node = document.createElement(tag);
      node.className = name;
      tile.appendChild(node);
    }
    return node;
  }

  function setPart(tile, name, text) {
    const node = part(tile, name);
    if (node.textContent !== text) node.textContent = text;
  }

  function button(label, className, onClick) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = className;
    node.textContent = label;
    node.addEventListener("click", onClick);
    return node;
  }

  function newTile(id) {
    const tile = document.createElement("article");
    tile.id = `tile-${id}`;
    tile.dataset.console = id;
    const head = part(tile, "head");
    for (const name of ["console", "client", "status"]) part(head, name, "span");
    for (const name of ["program", "block", "time", "speed", "incline", "fault", "remote", "sent"]) {
      part(tile, name);
    }
    if (!readOnly) {
      const buttons = part(tile, "buttons");
      buttons.append(
        button("STOP", "stop", () => send({ command: "stop", console: id })),
        button("Pause", "pause", () => send({ command: "pause", console: id })),
      );
    }
    return tile;
  }

  function show(data) {
    floor = data;
    Views.setText("broker", `${data.broker} · ${data.connected ? "broker connected" : data.problem || "broker connecting"}`);
    Views.setText("counts", `${data.tiles.length} consoles, ${data.running} running`);
    Views.setText("confirm-words", data.confirm_words);
    const main = document.getElementById("tiles");
    const seen = new Set();
    let previous = null;
    for (const t of data.tiles) {
      seen.add(t.id);
      let tile = document.getElementById(`tile-${t.id}`);
      if (!tile) tile = newTile(t.id);
      // In the server's order (by console id).
      const wanted = previous ? previous.nextSibling : main.firstChild;
      if (wanted !== tile) main.insertBefore(tile, wanted);
      previous = tile;
      tile.className = `tile ${t.kind}`;
      tile.dataset.status = t.status;
      const head = tile.querySelector(".head");
      setPart(head, "console", t.id);
      setPart(head, "client", t.client);
      setPart(head, "status", t.status);
      setPart(tile, "program", t.program);
      setPart(tile, "block", t.block);
      setPart(tile, "time", t.left + (t.countdown ? `   ${t.countdown}...` : ""));
      setPart(tile, "speed", `target ${t.target} · actual ${t.actual} mph`);
      setPart(tile, "incline", `incline ${t.incline} · ${t.link}` +
        (t.kind === "stale" && t.heard_s !== null ? ` · heard ${t.heard_s} s ago` : ""));
      setPart(tile, "fault", t.fault ? `fault ${t.fault}` : t.last);
      setPart(tile, "remote", t.remote ? `floor: ${t.remote}` : "");
      setPart(tile, "sent", t.sent);
      // STOP stays on every tile (a stop is never wrong); pause only where a program runs.
      const pause = tile.querySelector(".buttons .pause");
      if (pause) pause.disabled = !t.running;
    }
    for (const tile of [...main.children]) {
      if (!seen.has(tile.dataset.console)) tile.remove();
    }
    Views.setText("confirm-question",
      `STOP ALL: stop every running belt on this floor (${data.targets}).`);
  }

  function listen(path, onOpen) {
    return Views.connect(path, {
      onOpen,
      onMessage: (data) => {
        if (data.type === "welcome") {
          body.dataset.auth = "granted";
        } else if (data.type === "denied") {
          body.dataset.auth = "denied";
          password = null;
          Views.setText("lock-reason", data.text);
        } else if (data.type === "floor") {
          show(data);
        } else if (data.type === "answer") {
          Views.setText("answer", data.text);
          if (!document.getElementById("confirm").hidden) {
            Views.setText("confirm-hint", data.text);
            if (data.done) closeConfirm();
          }
        }
      },
      onLink: (state) => {
        Views.setText("link", `page ${state}`);
        document.getElementById("link").className = `link ${state}`;
      },
    });
  }

  function closeConfirm() {
    document.getElementById("confirm").hidden = true;
    document.getElementById("words").value = "";
  }

  if (readOnly) {
    // No controls on this page at all; its socket takes no commands either.
    for (const id of ["lock", "floor-controls", "confirm"]) document.getElementById(id).remove();
    body.dataset.auth = "view";
    link = listen("/ws/view", null);
    return;
  }

  const hello = (ws) => {
    const message = { type: "hello" };
    if (password) message.password = password;
    else if (token) message.token = token;
    ws.send(JSON.stringify(message));
  };
  if (token) link = listen("/ws/operator", hello);
  else body.dataset.auth = "locked";

  document.getElementById("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    password = document.getElementById("password").value;
    Views.setText("lock-reason", "");
    if (link) link.reopen();
    else link = listen("/ws/operator", hello);
  });

  document.getElementById("stop-all").addEventListener("click", () => {
    document.getElementById("confirm").hidden = false;
    Views.setText("confirm-hint", "");
    document.getElementById("words").focus();
  });
  // Whatever is typed goes to the server, which alone decides: only the words confirm.
  document.getElementById("confirm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send({ command: "stop-all", words: document.getElementById("words").value });
  });
  document.getElementById("cancel-stop-all").addEventListener("click", closeConfirm);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeConfirm();
  });
})();
