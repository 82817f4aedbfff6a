"use strict";
var Switchboard = (() => {
  var __defProp = Object.defineProperty;
  var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
  var __getOwnPropNames = Object.getOwnPropertyNames;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };
  var __copyProps = (to, from, except, desc) => {
    if (from && typeof from === "object" || typeof from === "function") {
      for (let key of __getOwnPropNames(from))
        if (!__hasOwnProp.call(to, key) && key !== except)
          __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
    }
    return to;
  };
  var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);
  var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

  // src/index.ts
  var index_exports = {};
  __export(index_exports, {
    Backoff: () => Backoff,
    CloseCode: () => CloseCode,
    Directory: () => Directory,
    MAX_PUBLISH_KEY_BYTES: () => MAX_PUBLISH_KEY_BYTES,
    Subscription: () => Subscription,
    SwitchboardClient: () => SwitchboardClient,
    SwitchboardError: () => SwitchboardError,
    TopicPresence: () => TopicPresence,
    WebSocketTransport: () => WebSocketTransport,
    decodeMsgpack: () => decodeMsgpack,
    describeClose: () => describeClose,
    encodeMsgpack: () => encodeMsgpack,
    isWireError: () => isWireError,
    jsonCodec: () => jsonCodec,
    msgpackCodec: () => msgpackCodec,
    shouldReconnect: () => shouldReconnect,
    systemClock: () => systemClock,
    upgradeRefusal: () => upgradeRefusal,
    webSocketUrl: () => webSocketUrl
  });

  // src/backoff.ts
  var Backoff = class {
    constructor(options = {}) {
      __publicField(this, "initial");
      __publicField(this, "max");
      __publicField(this, "factor");
      __publicField(this, "random");
      __publicField(this, "attempts", 0);
      this.initial = options.initialDelayMs ?? 500;
      this.max = options.maxDelayMs ?? 3e4;
      this.factor = options.factor ?? 2;
      this.random = options.random ?? Math.random;
      if (!(this.initial >= 0) || !(this.max >= 0) || !(this.factor >= 1)) {
        throw new RangeError("backoff needs initialDelayMs >= 0, maxDelayMs >= 0, factor >= 1");
      }
    }
    /** How many delays were handed out since the last reset. */
    get attempt() {
      return this.attempts;
    }
    /** The ceiling of the next delay (without jitter). */
    ceiling() {
      return Math.min(this.max, this.initial * this.factor ** this.attempts);
    }
    /** The next delay, and counts one more attempt. */
    next() {
      const delay = Math.floor(this.random() * this.ceiling());
      this.attempts++;
      return delay;
    }
    /** Back to the first attempt (after a successful connection). */
    reset() {
      this.attempts = 0;
    }
  };

  // src/close.ts
  var CloseCode = {
    NORMAL: 1e3,
    GOING_AWAY: 1001,
    NO_STATUS: 1005,
    ABNORMAL: 1006,
    MESSAGE_TOO_BIG: 1009,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    RECONNECT: 4e3,
    HEARTBEAT_TIMEOUT: 4001,
    SLOW_CONSUMER: 4002,
    CREDENTIALS_EXPIRED: 4003,
    NOT_AUTHORIZED: 4500,
    PROTOCOL_ERROR: 4501,
    TOO_MANY_CONNECTIONS: 4502,
    KICKED: 4503,
    IDENTIFICATION_TIMEOUT: 4504
  };
  var meanings = {
    1e3: "normal closure",
    1001: "server going away",
    1005: "closed without a status",
    1006: "connection lost",
    1009: "message too big",
    1011: "server error",
    1012: "server restarting",
    1013: "try again later",
    4e3: "reconnect requested",
    4001: "heartbeat timeout",
    4002: "slow consumer",
    4003: "credentials expired",
    4500: "not authorized",
    4501: "protocol error",
    4502: "too many connections for this user",
    4503: "disconnected by the server",
    4504: "identification timeout"
  };
  function describeClose(code) {
    return meanings[code] ?? `close code ${code}`;
  }
  function shouldReconnect(code) {
    if (code >= 4e3 && code <= 4499) return true;
    if (code >= 4500 && code <= 4999) return false;
    return code === 1001 || code === 1005 || code === 1006 || code >= 1011 && code <= 1014;
  }

  // src/errors.ts
  var SwitchboardError = class _SwitchboardError extends Error {
    constructor(code, message, data) {
      super(message);
      /** The protocol code (`TIMEOUT`, `NOT_FOUND`, `DISCONNECTED`, an application code…). */
      __publicField(this, "code");
      /** Extra data from the server's `~err`, if any. */
      __publicField(this, "data");
      this.name = "SwitchboardError";
      this.code = code;
      this.data = data;
    }
    /** Builds the error from an `~err` payload, tolerating malformed ones. */
    static fromWire(payload) {
      if (isWireError(payload)) return new _SwitchboardError(payload.code, payload.message, payload.data);
      return new _SwitchboardError("FAILED", "malformed error reply", payload);
    }
    /** The `~err` payload for this error. */
    toWire() {
      return this.data === void 0 ? { code: this.code, message: this.message } : { code: this.code, message: this.message, data: this.data };
    }
  };
  function isWireError(value) {
    if (typeof value !== "object" || value === null) return false;
    const v = value;
    return typeof v.code === "string" && (typeof v.message === "string" || v.message === void 0);
  }
  function toWireError(err) {
    if (err instanceof SwitchboardError) return err.toWire();
    if (isWireError(err) && /^[A-Z][A-Z0-9_]*$/.test(err.code)) {
      return { code: err.code, message: err.message ?? err.code, ...err.data === void 0 ? {} : { data: err.data } };
    }
    return { code: "FAILED", message: "the client's handler failed" };
  }
  var timeoutError = (what, ms) => new SwitchboardError("TIMEOUT", `${what} did not complete within ${ms} ms`);
  var disconnectedError = (why = "the connection dropped while waiting") => new SwitchboardError("DISCONNECTED", why);

  // src/codec.ts
  var MAX_ID = Number.MAX_SAFE_INTEGER;
  function toMessage(value) {
    if (!Array.isArray(value) || value.length < 1 || value.length > 3) {
      throw protocolError("a message must be an array of one to three elements");
    }
    const [type, payload, id] = value;
    if (typeof type !== "string" || type.length === 0) throw protocolError("the message type must be a non-empty string");
    if (id === void 0 || id === null) return { type, payload: payload ?? null };
    if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > MAX_ID) {
      throw protocolError("the message id must be an integer in 1..2^53-1");
    }
    return { type, payload: payload ?? null, id };
  }
  function toArray(message) {
    const payload = message.payload === void 0 ? null : message.payload;
    return message.id === void 0 ? [message.type, payload] : [message.type, payload, message.id];
  }
  function protocolError(message) {
    return new SwitchboardError("PROTOCOL", message);
  }
  var jsonCodec = {
    subprotocol: "switchboard.v1.json",
    binary: false,
    encode: (message) => JSON.stringify(toArray(message)),
    decode(frame) {
      if (typeof frame !== "string") throw protocolError("binary frame on a JSON connection");
      let value;
      try {
        value = JSON.parse(frame);
      } catch {
        throw protocolError("frame is not valid JSON");
      }
      return toMessage(value);
    }
  };

  // src/timer.ts
  var systemClock = {
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (handle) => globalThis.clearTimeout(handle),
    now: () => Date.now()
  };
  var Timer = class {
    constructor(clock, callback) {
      __publicField(this, "clock", clock);
      __publicField(this, "callback", callback);
      __publicField(this, "handle");
    }
    /** True while a callback is scheduled. */
    get active() {
      return this.handle !== void 0;
    }
    /** (Re)schedules the callback `ms` from now. */
    start(ms) {
      this.cancel();
      this.handle = this.clock.setTimeout(() => {
        this.handle = void 0;
        this.callback();
      }, ms);
    }
    cancel() {
      if (this.handle !== void 0) {
        this.clock.clearTimeout(this.handle);
        this.handle = void 0;
      }
    }
  };

  // src/heartbeat.ts
  var Heartbeat = class {
    /**
     * `ping(timeoutMs)` sends one `~ping` and settles with its reply; `onDead` runs once when a
     * ping times out.
     */
    constructor(clock, ping, onDead) {
      __publicField(this, "ping", ping);
      __publicField(this, "onDead", onDead);
      __publicField(this, "timer");
      __publicField(this, "generation", 0);
      __publicField(this, "waiting", false);
      __publicField(this, "intervalMs", 0);
      __publicField(this, "timeoutMs", 0);
      this.timer = new Timer(clock, () => this.beat());
    }
    get running() {
      return this.timer.active || this.waiting;
    }
    start(intervalMs, timeoutMs) {
      this.stop();
      if (!(intervalMs > 0)) return;
      this.intervalMs = intervalMs;
      this.timeoutMs = timeoutMs > 0 ? timeoutMs : intervalMs;
      this.timer.start(intervalMs);
    }
    stop() {
      this.generation++;
      this.waiting = false;
      this.timer.cancel();
    }
    beat() {
      const generation = this.generation;
      this.waiting = true;
      this.timer.start(this.intervalMs);
      this.ping(this.timeoutMs).then(
        () => {
          if (generation === this.generation) this.waiting = false;
        },
        (err) => {
          if (generation !== this.generation) return;
          this.waiting = false;
          if (err instanceof SwitchboardError && err.code === "TIMEOUT") {
            this.stop();
            this.onDead(`no answer to ~ping within ${this.timeoutMs} ms`);
          }
        }
      );
    }
  };

  // src/connection.ts
  var Connection = class {
    constructor(opts, events) {
      __publicField(this, "opts", opts);
      __publicField(this, "events", events);
      __publicField(this, "socket");
      __publicField(this, "dead", false);
      __publicField(this, "identified", false);
      __publicField(this, "bye");
      __publicField(this, "helloId");
      __publicField(this, "refusal");
      __publicField(this, "connectTimer");
      __publicField(this, "heartbeat");
      __publicField(this, "closeCallbacks", []);
      this.connectTimer = new Timer(
        opts.clock,
        () => this.abandon(1006, `not identified within ${opts.connectTimeoutMs} ms`)
      );
      this.heartbeat = new Heartbeat(
        opts.clock,
        (timeoutMs) => this.request("~ping", null, timeoutMs),
        (reason) => this.abandon(1006, reason)
      );
    }
    /** True once the welcome arrived and until the end. */
    get ready() {
      return this.identified && !this.dead;
    }
    get closed() {
      return this.dead;
    }
    /** Opens the socket. Throws if the transport cannot even start (e.g. an invalid URL). */
    open() {
      this.connectTimer.start(this.opts.connectTimeoutMs);
      this.socket = this.opts.transport.connect(this.opts.url, [this.opts.codec.subprotocol], {
        open: () => this.onOpen(),
        message: (frame) => this.onFrame(frame),
        close: (code, reason, detail) => this.finish(code, reason, detail)
      });
    }
    /** Writes a message; false if the socket is not usable. */
    send(message) {
      if (this.dead || this.socket === void 0) return false;
      let frame;
      try {
        frame = this.opts.codec.encode(message);
      } catch (err) {
        throw err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", "payload cannot be encoded");
      }
      try {
        this.socket.send(frame);
      } catch {
        return false;
      }
      return true;
    }
    /** A request on this connection only (never buffered): the handshake's and liveness' own. */
    request(type, payload, timeoutMs) {
      const { id, promise } = this.opts.pending.create(type, timeoutMs);
      if (this.send({ type, payload, id })) this.opts.pending.markSent(id);
      else this.opts.pending.fail(id, new SwitchboardError("DISCONNECTED", "not connected"));
      return promise;
    }
    /** Runs `callback` once the connection has ended (at once if it already has). */
    onceClosed(callback) {
      if (this.dead) callback();
      else this.closeCallbacks.push(callback);
    }
    /** Closes the socket politely; `closed` follows with the code the close event reports. */
    close(code = 1e3, reason = "") {
      this.socket?.close(code, reason);
    }
    /** Gives up on the socket now (dead link, timeout): reports `closed` at once with `code`. */
    abandon(code, reason) {
      if (this.dead) return;
      this.socket?.close(1e3, reason.slice(0, 120));
      this.finish(code, reason);
    }
    onOpen() {
      if (this.dead) return;
      const { id, promise } = this.opts.pending.create("~hello", this.opts.connectTimeoutMs);
      promise.catch(() => void 0);
      this.helloId = id;
      if (this.send({ type: "~hello", payload: this.opts.hello, id })) this.opts.pending.markSent(id);
    }
    onHelloReply(reply) {
      this.helloId = void 0;
      this.opts.pending.settle(reply);
      if (reply.type === "~ok") return this.onWelcome(reply.payload);
      this.refusal = SwitchboardError.fromWire(reply.payload);
      this.close(1e3, "identification refused");
    }
    onWelcome(welcome) {
      if (this.dead) return;
      if (typeof welcome !== "object" || welcome === null) {
        this.events.error(new SwitchboardError("PROTOCOL", "the welcome is not an object"));
        return this.abandon(1006, "malformed welcome");
      }
      this.identified = true;
      this.connectTimer.cancel();
      const interval = this.opts.heartbeatIntervalMs ?? (typeof welcome.heartbeat === "number" ? welcome.heartbeat : 0);
      this.heartbeat.start(interval, this.opts.heartbeatTimeoutMs ?? interval);
      this.events.ready(welcome);
    }
    onFrame(frame) {
      if (this.dead) return;
      let message;
      try {
        message = this.opts.codec.decode(frame);
      } catch (err) {
        this.events.error(err instanceof SwitchboardError ? err : new SwitchboardError("PROTOCOL", "undecodable frame"));
        return;
      }
      switch (message.type) {
        case "~ok":
        case "~err":
          if (message.id !== void 0 && message.id === this.helloId) return this.onHelloReply(message);
          if (message.id !== void 0 && this.opts.pending.settle(message)) return;
          break;
        // an `~err` push (e.g. NOT_FOUND for an event) or a late reply: the client reports it
        case "~challenge":
          if (message.id !== void 0) return void this.answerChallenge(message.payload, message.id);
          break;
        case "~ping":
          if (message.id !== void 0) return void this.send({ type: "~ok", payload: null, id: message.id });
          return;
        case "~bye":
          this.bye = parseBye(message.payload);
          break;
      }
      this.events.message(message);
    }
    async answerChallenge(quest, id) {
      let reply;
      try {
        if (this.opts.onChallenge === void 0) {
          throw new SwitchboardError("NOT_AUTHORIZED", "the client has no challenge handler");
        }
        reply = { type: "~ok", payload: await this.opts.onChallenge(quest) ?? null, id };
      } catch (err) {
        reply = { type: "~err", payload: toWireError(err), id };
      }
      this.send(reply);
    }
    finish(code, reason, detail) {
      if (this.dead) return;
      this.dead = true;
      this.connectTimer.cancel();
      this.heartbeat.stop();
      const end = {
        code,
        reason,
        ...this.bye === void 0 ? {} : { bye: this.bye },
        ...this.refusal === void 0 ? {} : { refusal: this.refusal },
        ...detail?.status === void 0 ? {} : { status: detail.status },
        ...detail?.fatal === void 0 ? {} : { fatal: detail.fatal }
      };
      this.events.closed(end);
      for (const callback of this.closeCallbacks.splice(0)) callback();
    }
  };
  function parseBye(payload) {
    if (typeof payload !== "object" || payload === null) return void 0;
    const p = payload;
    return {
      code: typeof p.code === "number" ? p.code : 0,
      reason: typeof p.reason === "string" ? p.reason : "",
      ...typeof p.jump === "string" && p.jump.length > 0 ? { jump: p.jump } : {}
    };
  }

  // src/dedupe.ts
  var RecentIds = class {
    constructor(capacity = 1024) {
      __publicField(this, "capacity", capacity);
      __publicField(this, "ids", /* @__PURE__ */ new Set());
    }
    /** Records `id`; returns false if it was already there (a duplicate). */
    add(id) {
      if (this.ids.has(id)) return false;
      this.ids.add(id);
      if (this.ids.size > this.capacity) {
        const oldest = this.ids.values().next();
        if (oldest.done !== true) this.ids.delete(oldest.value);
      }
      return true;
    }
    clear() {
      this.ids.clear();
    }
  };

  // src/emitter.ts
  var Emitter = class {
    constructor() {
      __publicField(this, "listeners", /* @__PURE__ */ new Map());
    }
    /** Adds a listener; returns a function that removes it. */
    on(event, listener) {
      let set = this.listeners.get(event);
      if (set === void 0) this.listeners.set(event, set = /* @__PURE__ */ new Set());
      set.add(listener);
      return () => this.off(event, listener);
    }
    /** Adds a listener that runs at most once. */
    once(event, listener) {
      const off = this.on(event, (payload) => {
        off();
        listener(payload);
      });
      return off;
    }
    off(event, listener) {
      this.listeners.get(event)?.delete(listener);
    }
    /** Number of listeners of an event. */
    listenerCount(event) {
      return this.listeners.get(event)?.size ?? 0;
    }
    /**
     * Calls every listener of `event`. A throwing listener does not stop the others nor the
     * client: its error is rethrown as an unhandled rejection so it is still seen.
     */
    emit(event, payload) {
      const set = this.listeners.get(event);
      if (set === void 0) return;
      for (const listener of [...set]) {
        try {
          listener(payload);
        } catch (err) {
          void Promise.reject(err);
        }
      }
    }
    removeAll() {
      this.listeners.clear();
    }
  };

  // src/handlers.ts
  var Handlers = class {
    constructor() {
      __publicField(this, "events", /* @__PURE__ */ new Map());
      __publicField(this, "requests", /* @__PURE__ */ new Map());
    }
    /** Adds an event handler; returns a function that removes it. */
    onEvent(type, handler) {
      let set = this.events.get(type);
      if (set === void 0) this.events.set(type, set = /* @__PURE__ */ new Set());
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0 && this.events.get(type) === set) this.events.delete(type);
      };
    }
    /** Sets the one request handler of a type (replacing any previous one). */
    handle(type, handler) {
      this.requests.set(type, handler);
      return () => {
        if (this.requests.get(type) === handler) this.requests.delete(type);
      };
    }
    hasEvent(type) {
      return this.events.has(type);
    }
    hasRequest(type) {
      return this.requests.has(type);
    }
    /** Runs the event handlers; a throwing handler does not stop the others (its error is rethrown asynchronously). */
    dispatchEvent(payload, ctx) {
      for (const handler of [...this.events.get(ctx.type) ?? []]) {
        try {
          handler(payload, ctx);
        } catch (err) {
          void Promise.reject(err);
        }
      }
    }
    /** Runs the request handler and turns its outcome into a reply. */
    async answer(payload, ctx) {
      const handler = this.requests.get(ctx.type);
      if (handler === void 0) {
        return { ok: false, error: { code: "NOT_FOUND", message: `no handler for ${ctx.type}`, data: { type: ctx.type } } };
      }
      try {
        return { ok: true, result: await handler(payload, ctx) ?? null };
      } catch (err) {
        return { ok: false, error: toWireError(err) };
      }
    }
  };

  // src/history.ts
  function historyRequest(topic, options) {
    if (typeof topic !== "string" || topic.length === 0) throw new SwitchboardError("BAD_REQUEST", "history needs a topic name");
    const { limit, since } = options;
    if (limit !== void 0 && !(typeof limit === "number" && Number.isSafeInteger(limit) && limit >= 1)) {
      throw new SwitchboardError("BAD_REQUEST", `history's limit must be an integer >= 1 (got ${String(limit)})`);
    }
    if (since !== void 0 && !isPosition(since)) {
      throw new SwitchboardError("BAD_REQUEST", "history's since must be {epoch: string, seq: integer >= 0}");
    }
    return { topic, ...limit === void 0 ? {} : { limit }, ...since === void 0 ? {} : { since: { epoch: since.epoch, seq: since.seq } } };
  }
  function historyReply(reply) {
    const r = reply;
    const ok = typeof r === "object" && r !== null && typeof r.topic === "string" && typeof r.epoch === "string" && typeof r.seq === "number" && Array.isArray(r.publications) && r.publications.every((p) => typeof p === "object" && p !== null && typeof p.seq === "number");
    if (!ok) throw new SwitchboardError("PROTOCOL", "malformed ~history reply", reply);
    return reply;
  }
  function isPosition(value) {
    const v = value;
    return typeof v === "object" && v !== null && typeof v.epoch === "string" && typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 0;
  }

  // src/msgpack.ts
  var g = globalThis;
  var utf8;
  function text() {
    if (utf8 === void 0) {
      const enc = new g.TextEncoder();
      const dec = new g.TextDecoder("utf-8", { fatal: true });
      utf8 = { encode: (s) => enc.encode(s), decode: (b) => dec.decode(b) };
    }
    return utf8;
  }
  var Writer = class {
    constructor() {
      __publicField(this, "buf", new Uint8Array(256));
      __publicField(this, "view", new DataView(this.buf.buffer));
      __publicField(this, "pos", 0);
    }
    ensure(n) {
      if (this.pos + n <= this.buf.length) return;
      let size = this.buf.length * 2;
      while (size < this.pos + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.pos));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    u8(v) {
      this.ensure(1);
      this.buf[this.pos++] = v;
    }
    u16(v) {
      this.ensure(2);
      this.view.setUint16(this.pos, v);
      this.pos += 2;
    }
    u32(v) {
      this.ensure(4);
      this.view.setUint32(this.pos, v);
      this.pos += 4;
    }
    f64(v) {
      this.ensure(8);
      this.view.setFloat64(this.pos, v);
      this.pos += 8;
    }
    u64(v) {
      this.u32(Math.floor(v / 2 ** 32));
      this.u32(v >>> 0);
    }
    i64(v) {
      this.ensure(8);
      this.view.setBigInt64(this.pos, BigInt(v));
      this.pos += 8;
    }
    bytes(b) {
      this.ensure(b.length);
      this.buf.set(b, this.pos);
      this.pos += b.length;
    }
    result() {
      return this.buf.slice(0, this.pos);
    }
  };
  function writeLength(w, n, fix, fixMax, c8, c16, c32) {
    if (n <= fixMax) w.u8(fix | n);
    else if (c8 !== null && n <= 255) w.u8(c8), w.u8(n);
    else if (n <= 65535) w.u8(c16), w.u16(n);
    else w.u8(c32), w.u32(n);
  }
  function writeNumber(w, v) {
    if (!Number.isSafeInteger(v)) return w.u8(203), w.f64(v);
    if (v >= 0) {
      if (v < 128) w.u8(v);
      else if (v <= 255) w.u8(204), w.u8(v);
      else if (v <= 65535) w.u8(205), w.u16(v);
      else if (v <= 4294967295) w.u8(206), w.u32(v);
      else w.u8(207), w.u64(v);
    } else if (v >= -32) w.u8(v & 255);
    else if (v >= -128) w.u8(208), w.u8(v & 255);
    else if (v >= -32768) w.u8(209), w.u16(v & 65535);
    else if (v >= -2147483648) w.u8(210), w.u32(v >>> 0);
    else w.u8(211), w.i64(v);
  }
  function write(w, v, depth) {
    if (depth > 512) throw new SwitchboardError("BAD_REQUEST", "value nested too deeply for MessagePack");
    if (v === null || v === void 0) return w.u8(192);
    switch (typeof v) {
      case "boolean":
        return w.u8(v ? 195 : 194);
      case "number":
        return writeNumber(w, v);
      case "bigint":
        return writeNumber(w, Number(v));
      case "string": {
        const b = text().encode(v);
        writeLength(w, b.length, 160, 31, 217, 218, 219);
        return w.bytes(b);
      }
      case "object":
        break;
      default:
        throw new SwitchboardError("BAD_REQUEST", `cannot encode a ${typeof v} as MessagePack`);
    }
    if (v instanceof Uint8Array) {
      writeLength(w, v.length, 0, -1, 196, 197, 198);
      return w.bytes(v);
    }
    if (Array.isArray(v)) {
      writeLength(w, v.length, 144, 15, null, 220, 221);
      for (const item of v) write(w, item, depth + 1);
      return;
    }
    const maybeJson = v;
    if (typeof maybeJson.toJSON === "function") return write(w, maybeJson.toJSON(), depth + 1);
    const entries = Object.entries(v).filter(([, x]) => x !== void 0);
    writeLength(w, entries.length, 128, 15, null, 222, 223);
    for (const [k, x] of entries) {
      write(w, k, depth + 1);
      write(w, x, depth + 1);
    }
  }
  function encodeMsgpack(value) {
    const w = new Writer();
    write(w, value, 0);
    return w.result();
  }
  var Reader = class {
    constructor(buf) {
      __publicField(this, "buf", buf);
      __publicField(this, "pos", 0);
      __publicField(this, "view");
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    need(n) {
      if (this.pos + n > this.buf.length) throw new SwitchboardError("PROTOCOL", "truncated MessagePack frame");
    }
    u8() {
      this.need(1);
      return this.buf[this.pos++];
    }
    num(kind) {
      const size = { u16: 2, u32: 4, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8, u64: 8, i64: 8 }[kind];
      this.need(size);
      const p = this.pos;
      this.pos += size;
      const d = this.view;
      switch (kind) {
        case "u16":
          return d.getUint16(p);
        case "u32":
          return d.getUint32(p);
        case "i8":
          return d.getInt8(p);
        case "i16":
          return d.getInt16(p);
        case "i32":
          return d.getInt32(p);
        case "f32":
          return d.getFloat32(p);
        case "f64":
          return d.getFloat64(p);
        case "u64":
          return Number(d.getBigUint64(p));
        case "i64":
          return Number(d.getBigInt64(p));
      }
    }
    bytes(n) {
      this.need(n);
      const b = this.buf.slice(this.pos, this.pos + n);
      this.pos += n;
      return b;
    }
  };
  function read(r, depth) {
    if (depth > 512) throw new SwitchboardError("PROTOCOL", "MessagePack value nested too deeply");
    const b = r.u8();
    if (b < 128) return b;
    if (b >= 224) return b - 256;
    if (b >= 160 && b <= 191) return text().decode(r.bytes(b & 31));
    if (b >= 144 && b <= 159) return readArray(r, b & 15, depth);
    if (b >= 128 && b <= 143) return readMap(r, b & 15, depth);
    switch (b) {
      case 192:
        return null;
      case 194:
        return false;
      case 195:
        return true;
      case 196:
        return r.bytes(r.u8());
      case 197:
        return r.bytes(r.num("u16"));
      case 198:
        return r.bytes(r.num("u32"));
      case 202:
        return r.num("f32");
      case 203:
        return r.num("f64");
      case 204:
        return r.u8();
      case 205:
        return r.num("u16");
      case 206:
        return r.num("u32");
      case 207:
        return r.num("u64");
      case 208:
        return r.num("i8");
      case 209:
        return r.num("i16");
      case 210:
        return r.num("i32");
      case 211:
        return r.num("i64");
      case 217:
        return text().decode(r.bytes(r.u8()));
      case 218:
        return text().decode(r.bytes(r.num("u16")));
      case 219:
        return text().decode(r.bytes(r.num("u32")));
      case 220:
        return readArray(r, r.num("u16"), depth);
      case 221:
        return readArray(r, r.num("u32"), depth);
      case 222:
        return readMap(r, r.num("u16"), depth);
      case 223:
        return readMap(r, r.num("u32"), depth);
      default:
        throw new SwitchboardError("PROTOCOL", `unsupported MessagePack type 0x${b.toString(16)}`);
    }
  }
  function readArray(r, n, depth) {
    r.need(n);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = read(r, depth + 1);
    return out;
  }
  function readMap(r, n, depth) {
    r.need(n * 2);
    const out = {};
    for (let i = 0; i < n; i++) {
      const k = read(r, depth + 1);
      if (typeof k !== "string" && typeof k !== "number") throw new SwitchboardError("PROTOCOL", "MessagePack map key must be a string");
      const v = read(r, depth + 1);
      if (k === "__proto__") Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      else out[String(k)] = v;
    }
    return out;
  }
  function decodeMsgpack(bytes) {
    const r = new Reader(bytes);
    let value;
    try {
      value = read(r, 0);
    } catch (e) {
      if (e instanceof SwitchboardError) throw e;
      throw new SwitchboardError("PROTOCOL", "invalid MessagePack frame");
    }
    if (r.pos !== bytes.length) throw new SwitchboardError("PROTOCOL", "trailing bytes after the MessagePack value");
    return value;
  }
  var msgpackCodec = {
    subprotocol: "switchboard.v1.msgpack",
    binary: true,
    encode: (message) => encodeMsgpack(toArray(message)),
    decode(frame) {
      if (typeof frame === "string") throw new SwitchboardError("PROTOCOL", "text frame on a MessagePack connection");
      return toMessage(decodeMsgpack(frame));
    }
  };

  // src/outbox.ts
  var Outbox = class {
    constructor(capacity) {
      __publicField(this, "capacity", capacity);
      __publicField(this, "queue", []);
    }
    get size() {
      return this.queue.length;
    }
    /** Queues a message; false when the buffer is full. */
    push(message) {
      if (this.queue.length >= this.capacity) return false;
      this.queue.push(message);
      return true;
    }
    /** Drops the queued request with this id (it timed out or was aborted). */
    remove(id) {
      const i = this.queue.findIndex((m) => m.id === id);
      if (i >= 0) this.queue.splice(i, 1);
    }
    /** Takes the messages that match, oldest first, leaving the others in order. */
    take(predicate) {
      const taken = this.queue.filter(predicate);
      if (taken.length > 0) this.queue.splice(0, this.queue.length, ...this.queue.filter((m) => !predicate(m)));
      return taken;
    }
    /** Takes everything, oldest first. */
    drain() {
      return this.queue.splice(0, this.queue.length);
    }
    clear() {
      this.queue.length = 0;
    }
  };

  // src/presence.ts
  var PeerView = class {
    constructor(fetch) {
      __publicField(this, "fetch", fetch);
      __publicField(this, "emitter", new Emitter());
      __publicField(this, "byConn", /* @__PURE__ */ new Map());
      __publicField(this, "held", null);
      __publicField(this, "generation", 0);
      __publicField(this, "synced", false);
    }
    on(event, listener) {
      return this.emitter.on(event, listener);
    }
    /** True once a snapshot was loaded. */
    get isSynced() {
      return this.synced;
    }
    /** The current peers. */
    list() {
      return [...this.byConn.values()];
    }
    get(conn) {
      return this.byConn.get(conn);
    }
    /** The peers of one user (all of their devices). */
    byUser(user) {
      return this.list().filter((p) => p.user === user);
    }
    byAlias(alias) {
      return this.list().find((p) => p.alias === alias);
    }
    /** Loads a fresh snapshot. */
    async sync() {
      const generation = ++this.generation;
      this.held = [];
      let peers;
      try {
        peers = await this.fetch();
      } catch (err) {
        if (generation === this.generation) this.held = null;
        throw err;
      }
      if (generation !== this.generation) return this.list();
      const held = this.held ?? [];
      this.held = null;
      this.byConn.clear();
      for (const p of peers) if (isPeer(p) && this.admits(p)) this.byConn.set(p.conn, p);
      for (const diff of held) this.applyQuietly(diff);
      this.adjust(this.byConn);
      this.synced = true;
      const list = this.list();
      this.emitter.emit("sync", list);
      this.emitter.emit("change", list);
      return list;
    }
    /** Re-syncs in the background (after a reconnect); failures are emitted as `error`. */
    resync() {
      this.sync().catch((err) => {
        if (err instanceof SwitchboardError && err.code === "DISCONNECTED") return;
        this.emitter.emit("error", err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err)));
      });
    }
    applyDiff(diff) {
      if (this.held !== null) {
        this.held.push(diff);
        return;
      }
      const { joined, left } = this.applyQuietly(diff);
      for (const p of left) this.emitter.emit("leave", p);
      for (const p of joined) this.emitter.emit("join", p);
      if (joined.length + left.length > 0) this.emitter.emit("change", this.list());
    }
    applyQuietly(diff) {
      const joined = [];
      const left = [];
      for (const p of diff.leaves) {
        if (isPeer(p) && this.byConn.delete(p.conn)) left.push(p);
      }
      for (const p of diff.joins) {
        if (!isPeer(p) || !this.admits(p)) continue;
        this.byConn.set(p.conn, p);
        joined.push(p);
      }
      return { joined, left };
    }
    /** Whether a peer that the server announces or lists may be shown (all, unless overridden). */
    admits(_peer) {
      return true;
    }
    /** Corrects a freshly loaded snapshot before it is shown (nothing, unless overridden). */
    adjust(_byConn) {
    }
    /** Forgets everything (the client closed). */
    reset() {
      this.generation++;
      this.held = null;
      this.byConn.clear();
      this.synced = false;
    }
  };
  function isPeer(p) {
    return typeof p === "object" && p !== null && typeof p.conn === "string";
  }
  function peersOf(reply) {
    const peers = reply?.peers;
    return Array.isArray(peers) ? peers.filter(isPeer) : [];
  }
  var FORMER_CONNS = 32;
  var isListed = (p) => p.available === true && typeof p.alias === "string";
  var Directory = class extends PeerView {
    /** @internal */
    constructor(who) {
      super(() => who().then(peersOf));
      __publicField(this, "tracking", false);
      /** Our current connection. */
      __publicField(this, "self");
      /** Our connections before the last reconnects: dead, never shown again. */
      __publicField(this, "former", /* @__PURE__ */ new Set());
      /** Our current connection's profile as the server last told it (`~status` reply, `~peer`). */
      __publicField(this, "own");
    }
    /** Loads the directory and keeps it current, across reconnects, until `stop()`. */
    sync() {
      this.tracking = true;
      return super.sync();
    }
    /** Stops re-syncing after reconnects (updates still apply). */
    stop() {
      this.tracking = false;
    }
    /** @internal A connection was identified as `conn`: the previous one is gone for good. */
    connected(conn) {
      if (this.self !== void 0 && this.self !== conn) {
        this.former.add(this.self);
        if (this.former.size > FORMER_CONNS) this.former.delete(this.former.values().next().value);
      }
      this.self = conn;
      this.own = void 0;
      const gone = [...this.former].map((c) => this.get(c)).filter((p) => p !== void 0);
      if (gone.length > 0) this.applyDiff({ joins: [], leaves: gone });
    }
    /** @internal */
    ready() {
      if (this.tracking) this.resync();
    }
    /** @internal A `~peer` update. */
    update(update) {
      const { online, ...peer } = update;
      if (peer.conn === this.self) this.own = online ? peer : { ...peer, available: false };
      const listed = online && isListed(peer);
      this.applyDiff(listed ? { joins: [peer], leaves: [] } : { joins: [], leaves: [peer] });
    }
    /** @internal The server's reply to our `~status`: our own profile now. */
    status(peer) {
      if (!isPeer(peer) || peer.conn !== this.self) return;
      const wasListed = this.own !== void 0 ? isListed(this.own) : this.get(peer.conn) !== void 0;
      this.own = peer;
      const listed = isListed(peer);
      this.applyDiff(listed ? { joins: [peer], leaves: [] } : { joins: [], leaves: [peer] });
      if (listed && !wasListed && this.tracking) this.resync();
    }
    admits(peer) {
      return !this.former.has(peer.conn);
    }
    adjust(byConn) {
      const own = this.own;
      if (own === void 0) return;
      if (isListed(own)) byConn.set(own.conn, own);
      else byConn.delete(own.conn);
    }
    /** @internal */
    clear() {
      this.tracking = false;
      this.self = void 0;
      this.own = void 0;
      this.former.clear();
      this.reset();
    }
  };
  var TopicPresence = class extends PeerView {
    /** @internal */
    constructor(topic, who) {
      super(() => who().then(peersOf));
      __publicField(this, "topic", topic);
    }
    /** @internal A `~presence` diff. */
    diff(payload) {
      const list = (v) => Array.isArray(v) ? v.filter(isPeer) : [];
      this.applyDiff({ joins: list(payload.joins), leaves: list(payload.leaves) });
    }
    /** @internal */
    clear() {
      this.reset();
    }
  };

  // src/request.ts
  var PendingRequests = class {
    /** `onDone(id)` runs whenever a request leaves the table (answered, timed out, aborted, failed). */
    constructor(clock, onDone = () => void 0) {
      __publicField(this, "clock", clock);
      __publicField(this, "onDone", onDone);
      __publicField(this, "lastId", 0);
      __publicField(this, "pending", /* @__PURE__ */ new Map());
    }
    get size() {
      return this.pending.size;
    }
    /** Allocates an id and a promise that settles on the reply, the timeout or the abort signal. */
    create(type, timeoutMs, signal) {
      const id = this.nextId();
      const promise = new Promise((resolve, reject) => {
        if (signal?.aborted) {
          reject(new SwitchboardError("ABORTED", `request ${type} aborted`));
          return;
        }
        const timer = Number.isFinite(timeoutMs) ? this.clock.setTimeout(() => this.fail(id, timeoutError(`request ${type}`, timeoutMs)), timeoutMs) : void 0;
        const onAbort = () => this.fail(id, new SwitchboardError("ABORTED", `request ${type} aborted`));
        signal?.addEventListener("abort", onAbort, { once: true });
        this.pending.set(id, {
          type,
          resolve,
          reject,
          timer,
          sent: false,
          detach: () => signal?.removeEventListener("abort", onAbort)
        });
      });
      return { id, promise };
    }
    has(id) {
      return this.pending.has(id);
    }
    markSent(id) {
      const p = this.pending.get(id);
      if (p !== void 0) p.sent = true;
    }
    /** Settles the request a `~ok`/`~err` answers; false if no such request is waiting. */
    settle(reply) {
      if (reply.id === void 0) return false;
      const p = this.take(reply.id);
      if (p === void 0) return false;
      if (reply.type === "~ok") p.resolve(reply.payload);
      else p.reject(SwitchboardError.fromWire(reply.payload));
      return true;
    }
    /** Rejects one request. */
    fail(id, err) {
      this.take(id)?.reject(err);
    }
    /** Rejects the requests that went out on the connection that just dropped. */
    failSent(err) {
      for (const [id, p] of [...this.pending]) if (p.sent) this.take(id), p.reject(err);
    }
    /** Rejects everything (the client is closing for good). */
    failAll(err) {
      for (const id of [...this.pending.keys()]) this.fail(id, err);
    }
    take(id) {
      const p = this.pending.get(id);
      if (p === void 0) return void 0;
      this.pending.delete(id);
      if (p.timer !== void 0) this.clock.clearTimeout(p.timer);
      p.detach();
      this.onDone(id);
      return p;
    }
    nextId() {
      this.lastId = this.lastId >= Number.MAX_SAFE_INTEGER ? 1 : this.lastId + 1;
      return this.lastId;
    }
  };

  // src/state.ts
  var allowed = {
    idle: ["connecting", "closed"],
    connecting: ["ready", "reconnecting", "closed"],
    ready: ["reconnecting", "closed"],
    reconnecting: ["ready", "closed"],
    closed: ["connecting"]
  };
  var StateMachine = class {
    constructor(onChange) {
      __publicField(this, "onChange", onChange);
      __publicField(this, "current", "idle");
    }
    get state() {
      return this.current;
    }
    /** True when `to` is reachable from the current state. */
    can(to) {
      return allowed[this.current].includes(to);
    }
    /** Moves to `to`; throws on a transition the table does not allow. */
    transition(to) {
      if (to === this.current) return;
      if (!this.can(to)) throw new Error(`invalid state transition ${this.current} \u2192 ${to}`);
      const from = this.current;
      this.current = to;
      this.onChange(to, from);
    }
  };

  // src/subscription.ts
  var Subscription = class {
    /** @internal Created by `SwitchboardClient.subscribe`. */
    constructor(topic, host, since) {
      __publicField(this, "topic", topic);
      __publicField(this, "host", host);
      __publicField(this, "emitter", new Emitter());
      __publicField(this, "position");
      __publicField(this, "held", null);
      __publicField(this, "current", "pending");
      __publicField(this, "everSubscribed", false);
      this.position = since;
    }
    get state() {
      return this.current;
    }
    /** The epoch of the topic's history, once known. */
    get epoch() {
      return this.position?.epoch;
    }
    /** The last `seq` delivered (or the topic's `seq` when we subscribed). */
    get seq() {
      return this.position?.seq;
    }
    on(event, listener) {
      return this.emitter.on(event, listener);
    }
    once(event, listener) {
      return this.emitter.once(event, listener);
    }
    /** The topic's presence, kept in sync from `~who {topic}` and `~presence` (created on first use). */
    get presence() {
      return this.host.presenceOf(this);
    }
    /** Leaves the topic. */
    unsubscribe() {
      return this.host.unsubscribe(this);
    }
    // ---- driven by the client -------------------------------------------------------------
    /** @internal The `~sub` payload for the next (re)subscription. */
    request() {
      this.held ?? (this.held = []);
      return this.position === void 0 ? { topic: this.topic } : { topic: this.topic, since: this.position };
    }
    /** @internal The server answered `~sub`. */
    subscribed(reply) {
      const since = this.position;
      const resubscribed = this.everSubscribed;
      const recovered = since !== void 0 && reply.recovered === true;
      const held = inOrder(this.held ?? []);
      this.held = null;
      this.everSubscribed = true;
      this.current = "active";
      this.position = recovered ? { epoch: reply.epoch, seq: since.seq } : { epoch: reply.epoch, seq: reply.seq };
      const info = { topic: this.topic, epoch: reply.epoch, seq: reply.seq, recovered, resubscribed };
      this.emitter.emit("subscribed", info);
      if (resubscribed && since !== void 0) {
        this.emitter.emit("recovery", { topic: this.topic, epoch: reply.epoch, seq: reply.seq, recovered, previous: since });
      }
      for (const { pub, epoch } of held) this.deliver(pub, !recovered, epoch);
      return info;
    }
    /** @internal A publication of this topic arrived. */
    receive(pub) {
      if (this.current === "closed") return;
      if (this.held !== null) this.held.push(pub);
      else this.deliver(pub, false);
    }
    /** @internal The link dropped: the next ready resubscribes. */
    disconnected() {
      if (this.current === "active") this.current = "resubscribing";
      this.held = null;
    }
    /** @internal The `~sub` failed for a reason other than the link dropping. */
    failed() {
      this.held = null;
    }
    /** @internal */
    close(error) {
      if (this.current === "closed") return;
      this.current = "closed";
      this.held = null;
      this.emitter.emit("closed", error === void 0 ? {} : { error });
      this.emitter.removeAll();
    }
    /** `epoch`: the publication's, or for a held one, the last announced before it. */
    deliver(pub, force, epoch = pub.epoch) {
      const pos = this.position;
      if (typeof pub.seq === "number" && pos !== void 0) {
        if (typeof epoch === "string" && epoch !== pos.epoch) {
          this.position = { epoch, seq: pub.seq };
          this.emitter.emit("recovery", { topic: this.topic, epoch, seq: pub.seq, recovered: false, previous: pos });
          this.emitter.emit("message", pub);
          return;
        }
        if (!force && pub.seq <= pos.seq) return;
        if (pub.seq > pos.seq) this.position = { epoch: pos.epoch, seq: pub.seq };
      }
      this.emitter.emit("message", pub);
    }
  };
  function inOrder(held) {
    const group = /* @__PURE__ */ new Map([[void 0, 0]]);
    let current;
    const keyed = held.map((pub, i) => {
      if (typeof pub.epoch === "string") {
        current = pub.epoch;
        if (!group.has(current)) group.set(current, group.size);
      }
      return { pub, epoch: current, group: group.get(current), i };
    });
    keyed.sort((a, b) => a.group - b.group || a.pub.seq - b.pub.seq || a.i - b.i);
    return keyed.map(({ pub, epoch }) => ({ pub, epoch }));
  }

  // src/topics.ts
  var Topics = class {
    constructor(link, clock, defaultTimeoutMs, onRecovery) {
      __publicField(this, "link", link);
      __publicField(this, "clock", clock);
      __publicField(this, "defaultTimeoutMs", defaultTimeoutMs);
      __publicField(this, "onRecovery", onRecovery);
      __publicField(this, "entries", /* @__PURE__ */ new Map());
    }
    get topics() {
      return [...this.entries.keys()];
    }
    get(topic) {
      return this.entries.get(topic)?.sub;
    }
    /** Subscribes (or joins the existing subscription of the same topic). */
    subscribe(topic, options = {}) {
      let entry = this.entries.get(topic);
      if (entry === void 0) {
        entry = { sub: new Subscription(topic, this, options.since), inflight: false };
        entry.sub.on("recovery", (info) => this.onRecovery(info));
        this.entries.set(topic, entry);
        this.startFirst(entry, options.timeoutMs ?? this.defaultTimeoutMs);
        if (this.link.ready) this.send(entry);
      }
      const sub = entry.sub;
      if (options.onMessage !== void 0) sub.on("message", options.onMessage);
      return entry.first === void 0 ? Promise.resolve(sub) : entry.first.promise;
    }
    /** Resubscribes everything (a new connection is ready). */
    ready() {
      for (const entry of this.entries.values()) if (!entry.inflight) this.send(entry);
    }
    /** The connection dropped. */
    disconnected() {
      for (const entry of this.entries.values()) entry.sub.disconnected();
    }
    /** Routes a `~msg`. Returns false when no subscription of ours has that topic (a server-side group). */
    deliver(pub) {
      const entry = this.entries.get(pub.topic);
      if (entry === void 0) return false;
      entry.sub.receive(pub);
      return true;
    }
    /** Routes a `~presence` diff. */
    presence(payload) {
      if (typeof payload.topic !== "string") return;
      this.entries.get(payload.topic)?.presence?.diff(payload);
    }
    presenceOf(sub) {
      const entry = this.entries.get(sub.topic);
      if (entry === void 0 || entry.sub !== sub) throw new SwitchboardError("NOT_FOUND", `not subscribed to ${sub.topic}`);
      if (entry.presence === void 0) {
        entry.presence = new TopicPresence(sub.topic, () => this.link.request("~who", { topic: sub.topic }));
        if (sub.state === "active" && this.link.ready) entry.presence.resync();
      }
      return entry.presence;
    }
    async unsubscribe(sub) {
      const entry = this.entries.get(sub.topic);
      if (entry === void 0 || entry.sub !== sub) return;
      this.remove(entry);
      if (this.link.ready) await this.ignoreDisconnect(this.link.request("~unsub", { topic: sub.topic }));
    }
    /** Leaves every topic equal to `prefix` or under `prefix/`, or all topics. */
    async unsubscribeAll(prefix) {
      for (const entry of [...this.entries.values()]) {
        const t = entry.sub.topic;
        if (prefix === void 0 || t === prefix || t.startsWith(`${prefix}/`)) this.remove(entry);
      }
      if (this.link.ready) {
        await this.ignoreDisconnect(this.link.request("~unsub", prefix === void 0 ? {} : { prefix }));
      }
    }
    /** Ends every subscription (the client closed for good). */
    closeAll(error) {
      for (const entry of [...this.entries.values()]) this.remove(entry, error);
    }
    startFirst(entry, timeoutMs) {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => (resolve = res, reject = rej));
      const timer = Number.isFinite(timeoutMs) ? this.clock.setTimeout(() => {
        const err = timeoutError(`subscription to ${entry.sub.topic}`, timeoutMs);
        const wasInflight = entry.inflight;
        this.remove(entry, err);
        if (wasInflight && this.link.ready) void this.ignoreDisconnect(this.link.request("~unsub", { topic: entry.sub.topic }));
      }, timeoutMs) : void 0;
      entry.first = { promise, resolve, reject, timer };
    }
    send(entry) {
      entry.inflight = true;
      this.link.request("~sub", entry.sub.request()).then(
        (reply) => {
          entry.inflight = false;
          if (this.entries.get(entry.sub.topic) !== entry) return;
          entry.sub.subscribed(reply);
          this.settleFirst(entry);
          entry.presence?.resync();
        },
        (err) => {
          entry.inflight = false;
          if (this.entries.get(entry.sub.topic) !== entry) return;
          const error = err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err));
          if (error.code === "DISCONNECTED") return entry.sub.disconnected();
          entry.sub.failed();
          this.remove(entry, error);
        }
      );
    }
    settleFirst(entry, error) {
      const first = entry.first;
      if (first === void 0) return;
      entry.first = void 0;
      if (first.timer !== void 0) this.clock.clearTimeout(first.timer);
      if (error === void 0) first.resolve(entry.sub);
      else first.reject(error);
    }
    remove(entry, error) {
      if (this.entries.get(entry.sub.topic) === entry) this.entries.delete(entry.sub.topic);
      this.settleFirst(entry, error ?? new SwitchboardError("ABORTED", `unsubscribed from ${entry.sub.topic}`));
      entry.presence?.clear();
      entry.sub.close(error);
    }
    async ignoreDisconnect(p) {
      try {
        await p;
      } catch (err) {
        if (!(err instanceof SwitchboardError && err.code === "DISCONNECTED")) throw err;
      }
    }
  };

  // src/transport.ts
  function globalWebSocket() {
    return globalThis.WebSocket;
  }
  function toFrame(data) {
    if (typeof data === "string") return data;
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
      const parts = data;
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) out.set(p, at), at += p.length;
      return out;
    }
    return void 0;
  }
  function webSocketUrl(url) {
    let absolute = url;
    const base = globalThis.location?.href;
    const UrlImpl = globalThis.URL;
    if (!/^[a-z][a-z0-9+.-]*:/i.test(url) && typeof base === "string" && UrlImpl !== void 0 && url.length > 0) {
      try {
        absolute = new UrlImpl(url, base).href;
      } catch {
      }
    }
    const m = /^([a-z][a-z0-9+.-]*):\/\/[^/?#]/i.exec(absolute);
    const scheme = m?.[1]?.toLowerCase();
    if (scheme === "ws" || scheme === "wss") return absolute;
    if (scheme === "http" || scheme === "https") return `${scheme === "http" ? "ws" : "wss"}${absolute.slice(scheme.length)}`;
    throw new SwitchboardError(
      "BAD_REQUEST",
      `cannot connect to ${JSON.stringify(url)}: the URL must start with ws:, wss:, http: or https: followed by //host`,
      { url }
    );
  }
  function upgradeRefusal(status, url) {
    if (status < 400 || status > 499 || status === 408 || status === 429) return void 0;
    const code = { 400: "BAD_REQUEST", 401: "NOT_AUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND" }[status];
    return new SwitchboardError(
      code ?? "UPGRADE_REFUSED",
      `the server answered HTTP ${status} to the WebSocket upgrade of ${url}${status === 404 ? " (check the path)" : ""}`,
      { status }
    );
  }
  var WebSocketTransport = class {
    constructor(WebSocketImpl) {
      __publicField(this, "WebSocketImpl", WebSocketImpl);
    }
    connect(url, protocols, listener) {
      const target = webSocketUrl(url);
      let ws;
      try {
        ws = new this.WebSocketImpl(target, [...protocols]);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new SwitchboardError("BAD_REQUEST", `cannot open a WebSocket to ${url}: ${why}`, { url });
      }
      ws.binaryType = "arraybuffer";
      let opened = false;
      let closed = false;
      let status;
      const end = (code, reason) => {
        if (closed) return;
        closed = true;
        const fatal = status === void 0 ? void 0 : upgradeRefusal(status, url);
        const detail = status === void 0 ? void 0 : { status, ...fatal === void 0 ? {} : { fatal } };
        listener.close(code, status === void 0 ? reason : `the server answered HTTP ${status} to the upgrade`, detail);
      };
      ws.addEventListener("open", () => {
        if (closed) return;
        opened = true;
        listener.open(ws.protocol ?? "");
      });
      ws.addEventListener("message", (event) => {
        const frame = toFrame(event.data);
        if (frame !== void 0 && !closed) listener.message(frame);
      });
      ws.addEventListener("close", (event) => end(event.code ?? 1006, event.reason ?? ""));
      ws.addEventListener("error", (event) => {
        if (opened) return;
        const why = typeof event?.message === "string" && event.message.length > 0 ? event.message : "";
        end(1006, why === "" ? "connection failed" : `connection failed: ${why}`);
      });
      const emitter = ws;
      if (typeof emitter.on === "function") {
        emitter.on.call(ws, "unexpected-response", (_request, response) => {
          const code = response?.statusCode;
          status = typeof code === "number" ? code : 0;
          try {
            ws.close();
          } catch {
            end(1006, "");
          }
        });
      }
      return {
        send: (frame) => ws.send(frame),
        close: (code, reason) => {
          try {
            ws.close(code, reason);
          } catch {
          }
        }
      };
    }
  };

  // src/client.ts
  var MAX_PUBLISH_KEY_BYTES = 64;
  var FINAL_REFUSALS = /* @__PURE__ */ new Set(["NOT_AUTHORIZED", "NOT_FOUND", "BAD_REQUEST", "FORBIDDEN", "LIMIT", "ALREADY_IDENTIFIED"]);
  var SwitchboardClient = class {
    constructor(options) {
      __publicField(this, "options", options);
      /** The directory of available peers (`~who` + `~peer`). Call `directory.sync()` to start tracking it. */
      __publicField(this, "directory");
      __publicField(this, "emitter", new Emitter());
      __publicField(this, "machine", new StateMachine((state, previous) => {
        const error = state === "reconnecting" || state === "closed" ? this.failure : void 0;
        this.emitter.emit("state", { state, previous, ...error === void 0 ? {} : { error } });
      }));
      __publicField(this, "clock");
      __publicField(this, "transport");
      __publicField(this, "codec");
      __publicField(this, "pending");
      __publicField(this, "outbox");
      __publicField(this, "backoff");
      __publicField(this, "handlers", new Handlers());
      __publicField(this, "topics");
      __publicField(this, "recent", new RecentIds());
      __publicField(this, "retryTimer");
      __publicField(this, "requestTimeoutMs");
      __publicField(this, "connection");
      __publicField(this, "currentUrl");
      __publicField(this, "welcomeInfo");
      __publicField(this, "lastClose");
      /** Why the client is reconnecting or closed (undefined when ready, or closed by the application). */
      __publicField(this, "failure");
      __publicField(this, "attemptToken", 0);
      __publicField(this, "waiters", []);
      /** Every `setStatus` merged: re-applied after each reconnect (the server forgets it). */
      __publicField(this, "status");
      this.clock = options.clock ?? systemClock;
      this.currentUrl = options.url;
      this.requestTimeoutMs = options.requestTimeoutMs ?? 1e4;
      this.codec = options.codec === "msgpack" ? msgpackCodec : options.codec === void 0 || options.codec === "json" ? jsonCodec : options.codec;
      this.transport = options.transport ?? new WebSocketTransport(this.webSocketImpl());
      this.outbox = new Outbox(options.offlineBufferSize ?? 100);
      this.pending = new PendingRequests(this.clock, (id) => this.outbox.remove(id));
      this.backoff = new Backoff(typeof options.reconnect === "object" ? options.reconnect : {});
      this.retryTimer = new Timer(this.clock, () => void this.attempt());
      const isReady = () => this.connection?.ready === true;
      const link = {
        get ready() {
          return isReady();
        },
        request: (type, payload, timeoutMs) => this.direct(type, payload, timeoutMs)
      };
      this.topics = new Topics(link, this.clock, this.requestTimeoutMs, (info) => this.emitter.emit("recovery", info));
      this.directory = new Directory(() => this.direct("~who", {}));
    }
    // ---- observation -----------------------------------------------------------------------
    get state() {
      return this.machine.state;
    }
    /** The welcome of the current (or last) connection. */
    get welcome() {
      return this.welcomeInfo;
    }
    /** The URL the next connection goes to (changes when the server sends `~bye.jump`). */
    get url() {
      return this.currentUrl;
    }
    /** How the last connection ended. */
    get closeInfo() {
      return this.lastClose;
    }
    /**
     * Why the client is `reconnecting` (the last attempt's failure) or `closed` (the cause that
     * stopped it: `NOT_AUTHORIZED` for a refused identification or a 4500 close, the HTTP refusal
     * of the upgrade, `BAD_REQUEST` for a URL that cannot be opened, `DISCONNECTED` with
     * `data: {code, reason}` for a close code). Undefined while connecting or ready, and after
     * `close()` by the application.
     *
     * ```ts
     * client.on("state", ({ state }) => {
     *   if (state === "closed" && client.lastError?.code === "NOT_AUTHORIZED") showLogin();
     * });
     * ```
     */
    get lastError() {
      return this.failure;
    }
    /** Messages waiting in the offline buffer. */
    get buffered() {
      return this.outbox.size;
    }
    /** Topics we are subscribed to (or subscribing). */
    get topicsSubscribed() {
      return this.topics.topics;
    }
    on(event, listener) {
      return this.emitter.on(event, listener);
    }
    once(event, listener) {
      return this.emitter.once(event, listener);
    }
    off(event, listener) {
      this.emitter.off(event, listener);
    }
    // ---- lifecycle -------------------------------------------------------------------------
    /**
     * Connects and identifies. Resolves with the welcome once ready (retrying transient failures
     * with backoff); rejects when the client closes first, e.g. `NOT_AUTHORIZED`.
     */
    connect() {
      if (this.machine.state === "ready" && this.welcomeInfo !== void 0) return Promise.resolve(this.welcomeInfo);
      const promise = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      if (this.machine.state === "idle" || this.machine.state === "closed") {
        this.backoff.reset();
        this.failure = void 0;
        this.machine.transition("connecting");
        void this.attempt();
      }
      return promise;
    }
    /**
     * Closes for good (code 1000 unless given): pending requests reject with `DISCONNECTED`,
     * subscriptions end. Resolves when the socket is closed (at most `timeoutMs` later).
     */
    close(code = 1e3, reason = "client closed", timeoutMs = 1e3) {
      const conn = this.connection;
      if (this.machine.state !== "closed") {
        this.failure = void 0;
        this.terminate(new SwitchboardError("DISCONNECTED", "the client was closed"), code, reason);
        const info = { code, reason, byUser: true, willReconnect: false };
        this.lastClose = info;
        this.emitter.emit("close", info);
      }
      if (conn === void 0 || conn.closed) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = new Timer(this.clock, () => (conn.abandon(code, reason), resolve()));
        conn.onceClosed(() => (timer.cancel(), resolve()));
        timer.start(timeoutMs);
      });
    }
    // ---- requests and events ---------------------------------------------------------------
    /**
     * Sends a request and resolves with its result. Rejects with a `SwitchboardError`: the
     * server's code, `TIMEOUT`, `DISCONNECTED` (the link dropped while waiting), `LIMIT` (offline
     * buffer full), `ABORTED`. While offline the request waits in the buffer, its timeout running.
     */
    call(type, payload = null, options = {}) {
      if (this.machine.state === "closed") return Promise.reject(this.closedError());
      const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
      const { id, promise } = this.pending.create(type, timeoutMs, options.signal);
      if (!this.pending.has(id)) return promise;
      const message = { type, payload, id };
      try {
        if (this.machine.state === "ready" && this.connection?.send(message) === true) this.pending.markSent(id);
        else if (!this.outbox.push(message)) this.pending.fail(id, this.bufferFull());
      } catch (err) {
        this.pending.fail(id, err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", String(err)));
      }
      return promise;
    }
    /** Sends an event (no reply). Buffered while offline; throws `LIMIT` when the buffer is full. */
    send(type, payload = null) {
      if (this.machine.state === "closed") throw this.closedError();
      const message = { type, payload };
      if (this.machine.state === "ready" && this.connection?.send(message) === true) return;
      if (!this.outbox.push(message)) throw this.bufferFull();
    }
    /** Handles the server's events of one type (also acknowledged deliveries: they are acked for you). */
    onEvent(type, handler) {
      return this.handlers.onEvent(type, handler);
    }
    /** Answers the server's requests of one type; the handler's result is the reply, a thrown error the `~err`. */
    handle(type, handler) {
      return this.handlers.handle(type, handler);
    }
    // ---- topics ----------------------------------------------------------------------------
    /**
     * Subscribes to a topic; the subscription survives reconnects (resubscribing with its last
     * position). Subscribing twice to a topic returns the same `Subscription`.
     */
    subscribe(topic, onMessage, options = {}) {
      if (this.machine.state === "closed") return Promise.reject(this.closedError());
      return this.topics.subscribe(topic, onMessage === void 0 ? options : { ...options, onMessage });
    }
    /** The subscription of a topic, if any. */
    subscription(topic) {
      return this.topics.get(topic);
    }
    /** Leaves every topic equal to `prefix` or under `prefix/` (all topics without a prefix). */
    unsubscribeAll(prefix) {
      return this.topics.unsubscribeAll(prefix);
    }
    /**
     * Publishes to a topic (where the server lets clients publish) and resolves with its `seq`.
     * With a `key`, retrying is safe: the server publishes a key only once per topic history.
     * A key that is not a string of at most 64 UTF-8 bytes is refused with `BAD_REQUEST`.
     *
     * ```ts
     * const key = crypto.randomUUID();
     * const publish = () => client.publish("chat/lobby", { text: "hi" }, { event: "said", key });
     * await publish().catch((e) => (e.code === "DISCONNECTED" ? publish() : Promise.reject(e)));
     * ```
     */
    publish(topic, data, options = {}) {
      const { event, echo, key, ...call } = options;
      if (key !== void 0 && (typeof key !== "string" || utf8Length(key) > MAX_PUBLISH_KEY_BYTES)) {
        const got = typeof key === "string" ? `${utf8Length(key)} bytes` : typeof key;
        return Promise.reject(new SwitchboardError("BAD_REQUEST", `a publication key is a string of at most ${MAX_PUBLISH_KEY_BYTES} UTF-8 bytes (got ${got})`));
      }
      const payload = {
        topic,
        data,
        ...event === void 0 ? {} : { event },
        ...echo === void 0 ? {} : { echo },
        ...key === void 0 ? {} : { key }
      };
      return this.call("~pub", payload, call);
    }
    /**
     * Reads a topic's retained publications without subscribing (`~history`): the newest `limit`,
     * or those after `since`, oldest first, with where the topic stands (`epoch`, `seq`). Rejects
     * `FORBIDDEN` (not allowed to subscribe to it), `NOT_FOUND` (the topic keeps no history),
     * `BAD_REQUEST` (a bad topic, `limit` or `since`: checked before sending), or as `call()`.
     *
     * ```ts
     * const { epoch, seq, publications } = await client.history<Msg>("chat/lobby", { limit: 50 });
     * render(publications.map((p) => p.data));
     * await client.subscribe("chat/lobby", onMessage, { since: { epoch, seq } }); // no gap, no overlap
     * ```
     */
    async history(topic, options = {}) {
      const payload = historyRequest(topic, options);
      const { limit: _limit, since: _since, ...call } = options;
      return historyReply(await this.call("~history", payload, call));
    }
    // ---- users and presence ----------------------------------------------------------------
    /** `~who`: the directory (no topic) or a topic's presence. */
    async who(topic, options) {
      const reply = await this.call("~who", topic === void 0 ? {} : { topic }, options);
      return Array.isArray(reply?.peers) ? reply.peers : [];
    }
    /**
     * Changes this connection's alias and/or availability (`~status`) and resolves with the
     * profile the server now shows (a `Peer`). The client remembers every change and applies it
     * again after each reconnect, before re-syncing the directory; `directory` shows our own
     * entry as the server last described it. A re-applied status that the server refuses is
     * reported on `error`. Rejects `BAD_REQUEST` without sending for a malformed change.
     *
     * ```ts
     * await client.setStatus({ alias: "annie" });
     * await client.setStatus({ available: false }); // away: out of the directory, no direct messages
     * ```
     */
    setStatus(status, options) {
      const { alias, available } = isObject(status) ? status : {};
      if (!isObject(status) || alias !== void 0 && alias !== null && typeof alias !== "string" || available !== void 0 && typeof available !== "boolean") {
        return Promise.reject(new SwitchboardError("BAD_REQUEST", "a status is {alias?: string | null, available?: boolean}"));
      }
      const change = { ...alias === void 0 ? {} : { alias }, ...available === void 0 ? {} : { available } };
      if (this.machine.state !== "closed") this.status = { ...this.status, ...change };
      return this.call("~status", change, options).then((peer) => {
        this.directory.status(peer);
        return peer;
      });
    }
    /** Sends a direct message; rejects `UNAVAILABLE` or `NOT_FOUND` when it cannot be delivered. */
    dm(to, data, options) {
      return this.call("~dm", { to, data }, options);
    }
    /** Listens to direct messages. */
    onDm(handler) {
      return this.on("dm", handler);
    }
    /** Renews credentials without reconnecting (`~refresh`); default: asks the identity provider. */
    async refresh(identity, options) {
      return this.call("~refresh", { identity: identity === void 0 ? await this.identity() : identity }, options);
    }
    /** Server statistics (`~info`), where the server allows it. */
    info(detail = false, options) {
      return this.call("~info", { detail }, options);
    }
    // ---- connection lifecycle (private) ---------------------------------------------------
    async attempt() {
      const token = ++this.attemptToken;
      let identity;
      let meta;
      try {
        identity = await this.identity();
        meta = typeof this.options.meta === "function" ? await this.options.meta() : this.options.meta;
      } catch (err) {
        if (token !== this.attemptToken || this.machine.state === "closed") return;
        const message = err instanceof Error ? err.message : String(err);
        this.emitter.emit("error", new SwitchboardError("FAILED", `identity provider failed: ${message}`));
        return this.ended({ code: 1006, reason: `identity provider failed: ${message}` });
      }
      if (token !== this.attemptToken || this.machine.state === "closed") return;
      const hello = {
        ...this.options.namespace === void 0 ? {} : { ns: this.options.namespace },
        ...identity === void 0 ? {} : { identity },
        ...meta === void 0 ? {} : { meta }
      };
      const conn = new Connection(
        {
          url: this.currentUrl,
          transport: this.transport,
          codec: this.codec,
          clock: this.clock,
          pending: this.pending,
          hello,
          connectTimeoutMs: this.options.connectTimeoutMs ?? 1e4,
          heartbeatIntervalMs: this.options.heartbeatIntervalMs,
          heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
          onChallenge: this.options.onChallenge
        },
        {
          ready: (welcome) => this.onReady(conn, welcome),
          message: (message) => this.onMessage(conn, message),
          error: (err) => this.emitter.emit("error", err),
          closed: (end) => {
            if (conn !== this.connection) return;
            this.connection = void 0;
            this.ended(end);
          }
        }
      );
      this.connection = conn;
      try {
        conn.open();
      } catch (err) {
        this.connection = void 0;
        const error = err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", `cannot open ${this.currentUrl}: ${err instanceof Error ? err.message : String(err)}`);
        const info = { code: 1006, reason: error.message, byUser: false, willReconnect: false };
        this.lastClose = info;
        this.failure = error;
        this.emitter.emit("close", info);
        this.terminate(error);
      }
    }
    identity() {
      const identity = this.options.identity;
      return typeof identity === "function" ? identity() : identity;
    }
    onReady(conn, welcome) {
      if (conn !== this.connection) return;
      this.welcomeInfo = welcome;
      this.failure = void 0;
      this.backoff.reset();
      this.recent.clear();
      this.directory.connected(welcome.conn);
      if (this.status !== void 0) this.reapplyStatus(conn, this.status);
      this.topics.ready();
      this.directory.ready();
      for (const message of this.outbox.drain()) {
        if (message.id !== void 0 && !this.pending.has(message.id)) continue;
        if (conn.send(message) && message.id !== void 0) this.pending.markSent(message.id);
      }
      this.machine.transition("ready");
      for (const w of this.waiters.splice(0)) w.resolve(welcome);
      this.emitter.emit("ready", welcome);
    }
    /**
     * Sends the remembered status on a new connection. `setStatus` calls that waited in the
     * offline buffer are part of it: they leave the buffer and settle with its reply.
     */
    reapplyStatus(conn, status) {
      const waiting = [];
      for (const m of this.outbox.take((m2) => m2.type === "~status")) {
        if (m.id !== void 0 && this.pending.has(m.id)) waiting.push(m.id), this.pending.markSent(m.id);
      }
      conn.request("~status", status, this.requestTimeoutMs).then(
        (peer) => {
          for (const id of waiting) this.pending.settle({ type: "~ok", payload: peer, id });
          if (waiting.length === 0) this.directory.status(peer);
        },
        (err) => {
          const error = err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err));
          for (const id of waiting) this.pending.fail(id, error);
          if (waiting.length === 0 && error.code !== "DISCONNECTED") {
            this.emitter.emit("error", new SwitchboardError(error.code, `the status could not be applied again after reconnecting: ${error.message}`, error.data));
          }
        }
      );
    }
    /**
     * A connection ended on its own (not by `close()`): reconnect or stop. Never again after a
     * cause that retrying cannot fix (protocol §8): a close code 4500–4999, a final `~hello`
     * refusal (`NOT_AUTHORIZED`…), an HTTP 4xx at the upgrade.
     */
    ended(end) {
      this.pending.failSent(disconnectedError());
      this.topics.disconnected();
      if (this.machine.state === "closed") return;
      const reconnect = this.options.reconnect ?? true;
      const policy = typeof reconnect === "object" && reconnect.shouldReconnect !== void 0 ? reconnect.shouldReconnect : shouldReconnect;
      const jump = end.bye?.jump;
      let again;
      if (end.fatal !== void 0 || end.code >= 4500 && end.code <= 4999) again = false;
      else if (end.refusal !== void 0 && FINAL_REFUSALS.has(end.refusal.code)) again = false;
      else if (reconnect === false) again = false;
      else if (jump !== void 0) again = true;
      else again = end.refusal !== void 0 || policy(end.code, end.reason);
      let cause = causeOf(end);
      const maxAttempts = typeof reconnect === "object" ? reconnect.maxAttempts ?? Infinity : Infinity;
      if (again && jump === void 0 && this.backoff.attempt >= maxAttempts) {
        again = false;
        cause = new SwitchboardError("DISCONNECTED", `gave up after ${maxAttempts} retries; the last attempt: ${cause.message}`, cause.data);
      }
      this.failure = cause;
      const info = {
        code: end.code,
        reason: end.reason,
        byUser: false,
        willReconnect: again,
        ...end.bye === void 0 ? {} : { bye: end.bye }
      };
      this.lastClose = info;
      this.emitter.emit("close", info);
      if (!again) return this.terminate(cause);
      if (jump !== void 0) this.currentUrl = jump;
      const delayMs = jump !== void 0 ? 0 : this.backoff.next();
      this.machine.transition("reconnecting");
      this.emitter.emit("reconnecting", { attempt: this.backoff.attempt, delayMs, url: this.currentUrl });
      this.retryTimer.start(delayMs);
    }
    /**
     * Moves to `closed` and fails everything that waits with `error`: `connect()`, subscriptions,
     * and the requests still in the offline buffer (they never went out; those that did were
     * failed with `DISCONNECTED` when their link dropped).
     */
    terminate(error, code = 1e3, reason = "client closed") {
      this.attemptToken++;
      this.retryTimer.cancel();
      const conn = this.connection;
      this.connection = void 0;
      if (conn !== void 0 && !conn.closed) conn.close(code, reason);
      this.machine.transition("closed");
      this.outbox.clear();
      this.pending.failAll(error);
      this.topics.closeAll(error);
      this.directory.clear();
      this.recent.clear();
      this.status = void 0;
      for (const w of this.waiters.splice(0)) w.reject(error);
    }
    /** What `call()` and friends reject with once the client is closed. */
    closedError() {
      const why = this.failure === void 0 ? "" : `: ${this.failure.message}`;
      return new SwitchboardError("DISCONNECTED", `the client is closed${why}`, this.failure?.data);
    }
    // ---- incoming (private) ---------------------------------------------------------------
    onMessage(conn, message) {
      if (conn !== this.connection) return;
      const { type, payload, id } = message;
      switch (type) {
        case "~ok":
          return;
        // a reply that came after its request timed out
        case "~err":
          if (id === void 0) this.emitter.emit("error", SwitchboardError.fromWire(payload));
          return;
        case "~msg":
          return this.acked(conn, id, () => this.onPublication(payload, id));
        case "~dm":
          return this.acked(conn, id, () => this.emitter.emit("dm", payload));
        case "~presence":
          if (isObject(payload)) this.topics.presence(payload);
          return;
        case "~peer":
          if (isObject(payload) && typeof payload["conn"] === "string") {
            this.directory.update(payload);
            this.emitter.emit("peer", payload);
          }
          return;
        case "~bye":
          if (isObject(payload)) this.emitter.emit("bye", payload);
          return;
      }
      if (id === void 0) return this.handlers.dispatchEvent(payload, { type });
      if (type.startsWith("~") || this.handlers.hasRequest(type)) return void this.answer(conn, message);
      if (this.handlers.hasEvent(type)) return this.acked(conn, id, () => this.handlers.dispatchEvent(payload, { type, id }));
      void this.answer(conn, message);
    }
    onPublication(payload, id) {
      if (!isObject(payload) || typeof payload["topic"] !== "string") return;
      const pub = id === void 0 ? payload : { ...payload, ackId: id };
      this.topics.deliver(pub);
      this.emitter.emit("message", pub);
    }
    /** Delivers once per id and acknowledges every copy (acknowledged delivery, protocol §5). */
    acked(conn, id, deliver) {
      if (id === void 0) return deliver();
      if (this.recent.add(id)) deliver();
      conn.send({ type: "~ok", payload: null, id });
    }
    async answer(conn, message) {
      const ctx = { type: message.type, id: message.id };
      const answer = await this.handlers.answer(message.payload, ctx);
      const reply = answer.ok ? { type: "~ok", payload: answer.result, id: ctx.id } : { type: "~err", payload: answer.error, id: ctx.id };
      try {
        conn.send(reply);
      } catch (err) {
        const error = err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", String(err));
        conn.send({ type: "~err", payload: { code: "FAILED", message: `the reply cannot be encoded: ${error.message}` }, id: ctx.id });
      }
    }
    // ---- helpers ---------------------------------------------------------------------------
    /** A request on the current connection only (internal traffic: resubscribe, presence sync). */
    direct(type, payload, timeoutMs) {
      const conn = this.connection;
      if (conn === void 0 || !conn.ready) return Promise.reject(new SwitchboardError("DISCONNECTED", "not connected"));
      return conn.request(type, payload, timeoutMs ?? this.requestTimeoutMs);
    }
    bufferFull() {
      return new SwitchboardError("LIMIT", `offline buffer full (${this.outbox.capacity} messages)`);
    }
    webSocketImpl() {
      const impl = this.options.WebSocket ?? globalWebSocket();
      if (impl === void 0) {
        throw new TypeError("no WebSocket available: pass `WebSocket` (e.g. from the `ws` package) or a `transport`");
      }
      return impl;
    }
  };
  function causeOf(end) {
    if (end.fatal !== void 0) return end.fatal;
    if (end.refusal !== void 0) return end.refusal;
    const why = `connection closed: ${end.code} ${describeClose(end.code)}${end.reason ? ` (${end.reason})` : ""}`;
    const data = { code: end.code, reason: end.reason, ...end.status === void 0 ? {} : { status: end.status } };
    return new SwitchboardError(end.code === 4500 ? "NOT_AUTHORIZED" : "DISCONNECTED", why, data);
  }
  function utf8Length(s) {
    let n = 0;
    for (const ch of s) {
      const cp = ch.codePointAt(0);
      n += cp < 128 ? 1 : cp < 2048 ? 2 : cp < 65536 ? 3 : 4;
    }
    return n;
  }
  function isObject(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
  }
  return __toCommonJS(index_exports);
})();
//# sourceMappingURL=switchboard.iife.js.map
