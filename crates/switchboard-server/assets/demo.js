// The demo chat of the Switchboard development server, on the TypeScript client's browser
// bundle (the global `Switchboard`). Rooms are topics `room/NAME` (history and presence on);
// everyone stays in #lobby, whose presence is "who is online"; direct messages go to every
// available device of a user. What a person chooses (name, status, rooms) is kept in
// localStorage, and shared with their other tabs.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const store = {
    get(key) { try { return localStorage.getItem("switchboard-demo:" + key); } catch { return null; } },
    set(key, value) { try { localStorage.setItem("switchboard-demo:" + key, value); } catch { /* private mode */ } },
    remove(key) { try { localStorage.removeItem("switchboard-demo:" + key); } catch { /* private mode */ } },
  };
  const LOBBY = "lobby";
  /** Rooms a newcomer is in. */
  const DEFAULT_ROOMS = [LOBBY, "random"];
  const HISTORY = 50;
  const GROUP_MS = 5 * 60 * 1000;
  const narrow = window.matchMedia("(max-width: 720px)");

  const S = {
    client: null,
    name: null,
    conn: null,
    available: true,
    view: { kind: "room", id: LOBBY },
    rooms: new Map(), // name -> { kind, id, log, unread, last, sub, empty }
    dms: new Map(), // user -> { kind, id, log, unread, last, empty }
    channel: null,
  };
  window.switchboardDemo = S; // for the browser tests and the curious

  // ---- helpers ---------------------------------------------------------------------------
  const hue = (s) => { let h = 0; for (const c of String(s)) h = (h * 31 + c.codePointAt(0)) % 360; return h; };
  function avatar(name, big) {
    const a = el("span", "avatar" + (big ? " big" : ""), String(name || "?").slice(0, 1));
    a.style.setProperty("--hue", String(hue(name)));
    a.setAttribute("aria-hidden", "true");
    return a;
  }
  const two = (n) => String(n).padStart(2, "0");
  function timeOf(date) {
    const t = el("time", "msg-time", two(date.getHours()) + ":" + two(date.getMinutes()));
    t.dateTime = date.toISOString();
    t.title = date.toLocaleString();
    return t;
  }
  function textOf(data) {
    if (typeof data === "string") return { text: data };
    if (data && typeof data === "object" && typeof data.text === "string") return { text: data.text };
    return { code: JSON.stringify(data) };
  }
  const key = (v) => v.kind + ":" + v.id;
  const current = () => (S.view.kind === "room" ? S.rooms.get(S.view.id) : S.dms.get(S.view.id));
  const lobbyPeers = () => { const r = S.rooms.get(LOBBY); return r && r.sub ? r.sub.presence.list() : []; };

  /** Peers grouped by user: one entry per person, with their devices. */
  function people(peers) {
    const byUser = new Map();
    for (const p of peers) {
      const id = p.user ?? p.conn;
      const g = byUser.get(id) ?? { user: id, name: p.alias || p.user || "anonymous", conns: [], available: false };
      g.conns.push(p);
      g.available = g.available || p.available;
      byUser.set(id, g);
    }
    const me = byUser.get(S.name);
    if (me) me.available = S.available; // our own status as we set it
    return [...byUser.values()].sort((a, b) =>
      (a.user === S.name ? -1 : b.user === S.name ? 1 : 0) || Number(b.available) - Number(a.available) || a.name.localeCompare(b.name));
  }
  function personState(user) {
    const g = people(lobbyPeers()).find((p) => p.user === user);
    return g === undefined ? "offline" : g.available ? "available" : "away";
  }

  // ---- logs ------------------------------------------------------------------------------
  function makeLog(label) {
    const log = el("div", "log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-label", label);
    log.hidden = true;
    $("logs").append(log);
    return log;
  }
  function setEmpty(conv, text) {
    conv.empty = el("p", "empty", text);
    conv.log.append(conv.empty);
  }
  function append(conv, node) {
    const log = conv.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (conv.empty) { conv.empty.remove(); conv.empty = null; }
    log.append(node);
    if (atBottom || node.classList.contains("mine")) log.scrollTop = log.scrollHeight;
  }
  function addMessage(conv, { from, mine, text, code, when, event }) {
    const last = conv.last;
    const first = !last || last.from !== from || !when || !last.when || when - last.when > GROUP_MS;
    const m = el("div", "msg" + (first ? " first" : "") + (mine ? " mine" : ""));
    if (first) {
      m.append(avatar(from, true));
      const head = el("div", "msg-head");
      head.append(el("span", "msg-from", from));
      if (when) head.append(timeOf(when));
      if (event) head.append(el("span", "event", event));
      m.append(head);
    } else {
      const gutter = el("span", "gutter");
      if (when) gutter.append(timeOf(when));
      m.append(gutter);
    }
    const body = el("div", "msg-text");
    if (code !== undefined) body.append(el("code", "", code)); else body.textContent = text;
    m.append(body);
    append(conv, m);
    conv.last = { from, when };
  }
  function addSys(conv, text, warn) {
    append(conv, el("p", "sys" + (warn ? " warn" : ""), text));
    conv.last = null;
  }
  function bump(conv) {
    if (S.view.kind === conv.kind && S.view.id === conv.id && !document.hidden) return;
    conv.unread += 1;
    renderNav();
  }

  // ---- rooms -----------------------------------------------------------------------------
  function publicationTo(room, pub, live) {
    const from = pub.from ? (pub.from.user || "anonymous") : "server";
    const { text, code } = textOf(pub.data);
    const ts = pub.data && typeof pub.data.ts === "number" ? new Date(pub.data.ts) : live ? new Date() : null;
    addMessage(room, { from, mine: from === S.name, text, code, when: ts, event: pub.event });
    if (live && from !== S.name) bump(room);
  }
  async function joinRoom(name) {
    if (S.rooms.has(name)) return S.rooms.get(name);
    const room = { kind: "room", id: name, log: makeLog("#" + name), unread: 0, last: null, sub: null, empty: null };
    S.rooms.set(name, room);
    saveRooms();
    renderNav();
    const topic = "room/" + name;
    let since;
    try {
      // What the room said before we came, then live from exactly there.
      const h = await S.client.history(topic, { limit: HISTORY });
      for (const p of h.publications) publicationTo(room, p, false);
      since = { epoch: h.epoch, seq: h.seq };
    } catch (err) {
      if (err.code !== "NOT_FOUND") addSys(room, "Could not load earlier messages: " + err.message, true);
    }
    if (room.log.childElementCount === 0) setEmpty(room, "No messages in #" + name + " yet. Say hello!");
    room.sub = await S.client.subscribe(topic, (pub) => publicationTo(room, pub, true), since ? { since } : {});
    room.sub.on("recovery", ({ recovered }) => {
      if (!recovered) addSys(room, "The server restarted: messages sent while it was away may be missing.", true);
    });
    room.sub.presence.on("change", renderPeople);
    renderPeople();
    return room;
  }
  async function leaveRoom(name) {
    const room = S.rooms.get(name);
    if (!room || name === LOBBY) return;
    S.rooms.delete(name);
    saveRooms();
    room.log.remove();
    if (room.sub) await room.sub.unsubscribe().catch(() => {});
    show({ kind: "room", id: LOBBY });
  }
  function saveRooms() {
    store.set("rooms:" + S.name, JSON.stringify([...S.rooms.keys()]));
  }

  // ---- direct messages -------------------------------------------------------------------
  function conversation(user) {
    let c = S.dms.get(user);
    if (!c) {
      c = { kind: "dm", id: user, log: makeLog(user), unread: 0, last: null, empty: null };
      S.dms.set(user, c);
      setEmpty(c, "This is the start of your conversation with " + user + ".");
      renderNav();
    }
    return c;
  }
  async function sendDm(user, text) {
    const targets = lobbyPeers().filter((p) => p.user === user && p.available);
    if (!S.available) throw new Error("you are away: set yourself available to send direct messages");
    if (targets.length === 0) throw new Error(user + " is " + personState(user) + " and cannot receive messages now");
    const ts = Date.now();
    const results = await Promise.allSettled(targets.map((p) => S.client.dm({ conn: p.conn }, { text, ts })));
    const sent = results.filter((r) => r.status === "fulfilled").length;
    if (sent === 0) throw results[0].reason;
    addMessage(conversation(user), { from: S.name, mine: true, text, when: new Date(ts) });
    S.channel?.postMessage({ type: "dm-out", to: user, text, ts });
  }

  // ---- rendering -------------------------------------------------------------------------
  function unreadBadge(n) {
    const b = el("span", "unread-badge", n > 99 ? "99+" : String(n));
    b.setAttribute("aria-label", n + " unread");
    return b;
  }
  function renderNav() {
    const rooms = [...S.rooms.values()].map((r) => {
      const active = S.view.kind === "room" && S.view.id === r.id;
      const li = el("li", (active ? "active" : "") + (r.unread ? " unread" : ""));
      li.dataset.room = r.id;
      li.append(el("span", "hash", "#"), el("span", "label", r.id));
      if (r.unread) li.append(unreadBadge(r.unread));
      li.onclick = () => show({ kind: "room", id: r.id });
      return li;
    });
    $("rooms").replaceChildren(...rooms);
    const convs = [...S.dms.values()].map((c) => {
      const active = S.view.kind === "dm" && S.view.id === c.id;
      const li = el("li", (active ? "active" : "") + (c.unread ? " unread" : ""));
      li.dataset.user = c.id;
      const state = personState(c.id);
      const a = avatar(c.id);
      a.append(el("span", "presence-dot" + (state === "available" ? "" : state === "away" ? " away" : " offline")));
      li.append(a, el("span", "label", c.id));
      if (c.unread) li.append(unreadBadge(c.unread)); else if (state !== "available") li.append(el("span", "meta", state));
      li.onclick = () => show({ kind: "dm", id: c.id });
      return li;
    });
    $("conversations").replaceChildren(...convs);
    $("no-conversations").hidden = convs.length > 0;
    const total = [...S.rooms.values(), ...S.dms.values()].reduce((n, c) => n + c.unread, 0);
    $("nav-unread").hidden = total === 0;
    document.title = (total ? "(" + total + ") " : "") + "Switchboard chat";
  }
  function personItem(g) {
    const self = g.user === S.name;
    const li = el("li", self ? "self" : "");
    li.dataset.user = g.user;
    li.dataset.state = g.available ? "available" : "away";
    const a = avatar(g.name);
    a.append(el("span", "presence-dot" + (g.available ? "" : " away")));
    li.append(a, el("span", "label", g.name + (self ? " (you)" : "")));
    const bits = [];
    if (!g.available) bits.push("away");
    if (g.conns.length > 1) bits.push(g.conns.length + " devices");
    const meta = el("span", "meta devices", bits.join(" · "));
    li.append(meta);
    li.title = g.name + (g.available ? " is available" : " is away") + " (" + g.conns.length + (g.conns.length > 1 ? " devices)" : " device)");
    if (!self) li.onclick = () => { closeDrawers(); show({ kind: "dm", id: g.user }); };
    return li;
  }
  function renderPeople() {
    const everyone = people(lobbyPeers());
    $("everyone").replaceChildren(...everyone.map(personItem));
    $("online-count").textContent = String(everyone.length);
    $("online-noun").textContent = everyone.length === 1 ? "person" : "people";
    $("everyone-title").textContent = "Everyone online · " + everyone.length;
    const mine = everyone.find((g) => g.user === S.name);
    $("me-devices").textContent = mine && mine.conns.length > 1 ? "online on " + mine.conns.length + " devices" : "this device";
    const room = S.view.kind === "room" && S.view.id !== LOBBY ? S.rooms.get(S.view.id) : undefined;
    $("room-people-section").hidden = room === undefined;
    if (room) {
      const here = people(room.sub ? room.sub.presence.list() : []);
      $("room-people-title").textContent = "In #" + room.id + " · " + here.length;
      $("room-people").replaceChildren(...here.map(personItem));
    }
    renderHead();
    renderNav();
  }
  function renderHead() {
    const v = S.view;
    let title, subtitle, placeholder, disabled = false;
    if (v.kind === "room") {
      const room = S.rooms.get(v.id);
      const here = v.id === LOBBY ? people(lobbyPeers()).length : people(room && room.sub ? room.sub.presence.list() : []).length;
      title = "# " + v.id;
      subtitle = v.id === LOBBY ? "Everyone is here · " + here + " online" : here + (here === 1 ? " person" : " people") + " here";
      placeholder = "Message #" + v.id;
    } else {
      const state = personState(v.id);
      title = v.id;
      subtitle = state === "available" ? "available" : state === "away" ? "away — cannot receive messages now" : "offline";
      placeholder = "Message " + v.id;
      if (!S.available) { placeholder = "You are away: set yourself available to write"; disabled = true; }
      else if (state !== "available") { placeholder = v.id + " is " + state; disabled = true; }
    }
    $("title").textContent = title;
    $("narrow-title").textContent = title;
    $("subtitle").textContent = subtitle;
    $("text").placeholder = placeholder;
    $("text").disabled = disabled;
    $("send").disabled = disabled;
    $("leave-room").hidden = !(v.kind === "room" && v.id !== LOBBY);
  }
  function show(view) {
    S.view = view;
    const conv = view.kind === "room" ? S.rooms.get(view.id) : conversation(view.id);
    for (const c of [...S.rooms.values(), ...S.dms.values()]) c.log.hidden = c !== conv;
    if (conv) {
      conv.unread = 0;
      conv.log.scrollTop = conv.log.scrollHeight;
    }
    closeDrawers();
    renderPeople();
    if (!narrow.matches && !$("text").disabled) $("text").focus();
  }
  function renderStatus() {
    $("status").dataset.available = String(S.available);
    $("status-text").textContent = S.available ? "Available" : "Away";
    $("status").title = S.available ? "You are available: click to set yourself away" : "You are away: click to become available";
    renderPeople();
  }
  const STATE_TEXT = { idle: "Offline", connecting: "Connecting…", ready: "Connected", reconnecting: "Reconnecting…", closed: "Offline" };
  function renderConnection(state) {
    $("connection").dataset.state = state;
    $("connection-text").textContent = STATE_TEXT[state] || state;
    $("connection").title = STATE_TEXT[state] || state;
    const banner = $("banner");
    banner.hidden = state === "ready" || state === "idle";
    banner.textContent = state === "closed" ? "Disconnected. Reload the page to join again." : "Connection lost — reconnecting…";
  }

  // ---- status ----------------------------------------------------------------------------
  async function applyStatus(available, { share }) {
    S.available = available;
    store.set("status:" + S.name, available ? "available" : "away");
    renderStatus();
    if (share) S.channel?.postMessage({ type: "status", available });
    try {
      await S.client.setStatus({ available });
    } catch {
      // Offline: the client sends it when it is back.
    }
  }

  // ---- drawers ---------------------------------------------------------------------------
  function closeDrawers() {
    $("app").classList.remove("show-nav", "show-people");
    $("scrim").hidden = true;
  }
  function openDrawer(which) {
    $("app").classList.add(which);
    $("scrim").hidden = false;
  }

  // ---- start -----------------------------------------------------------------------------
  async function start(name) {
    S.name = name;
    S.available = store.get("status:" + name) !== "away";
    const client = new Switchboard.SwitchboardClient({
      url: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws",
      identity: { name },
      reconnect: { initialDelayMs: 250, maxDelayMs: 4000 },
    });
    S.client = client;
    client.on("state", ({ state }) => renderConnection(state));
    client.on("ready", (welcome) => { S.conn = welcome.conn; });
    client.onDm((dm) => {
      const from = dm.from.user || dm.from.alias || "anonymous";
      const data = dm.data || {};
      const { text, code } = textOf(data);
      const c = conversation(from);
      addMessage(c, { from, text, code, when: typeof data.ts === "number" ? new Date(data.ts) : new Date() });
      bump(c);
    });
    const welcome = await client.connect();
    S.conn = welcome.conn;
    if (!S.available) await client.setStatus({ available: false });
    store.set("name", name);
    document.body.classList.add("signed-in");
    $("me-name").textContent = name;
    $("me-avatar").replaceWith(Object.assign(avatar(name, true), { id: "me-avatar" }));
    if ("BroadcastChannel" in window) {
      S.channel = new BroadcastChannel("switchboard-demo:" + name);
      S.channel.onmessage = ({ data }) => {
        if (data.type === "status" && data.available !== S.available) applyStatus(data.available, { share: false });
        if (data.type === "dm-out") addMessage(conversation(data.to), { from: S.name, mine: true, text: data.text, when: new Date(data.ts) });
      };
    }
    renderStatus();
    let saved = DEFAULT_ROOMS;
    try { saved = JSON.parse(store.get("rooms:" + name) || "null") || DEFAULT_ROOMS; } catch { saved = DEFAULT_ROOMS; }
    await joinRoom(LOBBY);
    show({ kind: "room", id: LOBBY });
    for (const r of saved) if (typeof r === "string" && r !== LOBBY) joinRoom(r).catch(() => {});
  }

  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    if (!name) return;
    $("join").disabled = true;
    $("login-error").hidden = true;
    start(name).catch((err) => {
      $("join").disabled = false;
      $("login-error").hidden = false;
      $("login-error").textContent = "Could not join: " + (err && err.message ? err.message : String(err));
      if (S.client) S.client.close().catch(() => {});
    });
  });
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const view = S.view;
    try {
      if (view.kind === "room") {
        await S.client.publish("room/" + view.id, { text, ts: Date.now() }, { echo: true, key: crypto.randomUUID ? crypto.randomUUID() : undefined });
      } else {
        await sendDm(view.id, text);
      }
    } catch (err) {
      const conv = view.kind === "room" ? S.rooms.get(view.id) : conversation(view.id);
      if (conv) addSys(conv, "Not sent (" + (err.code || "error") + "): " + err.message, true);
    }
  });
  $("new-room").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("room-name");
    const name = input.value.trim().replace(/^#/, "");
    if (!name || !input.checkValidity()) { input.reportValidity(); return; }
    input.value = "";
    try {
      await joinRoom(name);
      show({ kind: "room", id: name });
    } catch (err) {
      addSys(current() || S.rooms.get(LOBBY), "Could not join #" + name + ": " + err.message, true);
    }
  });
  $("leave-room").addEventListener("click", () => leaveRoom(S.view.id));
  $("status").addEventListener("click", () => applyStatus(!S.available, { share: true }));
  $("sign-out").addEventListener("click", async () => {
    store.remove("name");
    if (S.client) await S.client.close().catch(() => {});
    location.reload();
  });
  $("open-nav").addEventListener("click", () => openDrawer("show-nav"));
  $("open-people").addEventListener("click", () => {
    if (window.matchMedia("(max-width: 1020px)").matches) openDrawer("show-people");
  });
  $("close-people").addEventListener("click", closeDrawers);
  $("scrim").addEventListener("click", closeDrawers);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDrawers(); });
  document.addEventListener("visibilitychange", () => {
    const conv = current();
    if (!document.hidden && conv && conv.unread) { conv.unread = 0; renderNav(); }
  });

  const remembered = store.get("name");
  if (remembered) {
    $("name").value = remembered;
    $("login-form").requestSubmit();
  }
})();
