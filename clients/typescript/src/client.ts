/**
 * `SwitchboardClient`: the lifecycle (state machine, reconnects), the offline buffer, and the
 * routing of what the server sends. Sockets live in `Connection`, topics in `Topics`,
 * presence in `presence.ts`.
 */
import { Backoff, type BackoffOptions } from "./backoff.js";
import { describeClose, shouldReconnect as defaultPolicy } from "./close.js";
import { jsonCodec, type Codec } from "./codec.js";
import { Connection, type ConnectionEnd } from "./connection.js";
import { RecentIds } from "./dedupe.js";
import { Emitter } from "./emitter.js";
import { SwitchboardError, disconnectedError } from "./errors.js";
import { Handlers } from "./handlers.js";
import { historyReply, historyRequest, type HistoryOptions } from "./history.js";
import { msgpackCodec } from "./msgpack.js";
import { Outbox } from "./outbox.js";
import { Directory } from "./presence.js";
import { PendingRequests } from "./request.js";
import { StateMachine } from "./state.js";
import type { RecoveryInfo, Subscription } from "./subscription.js";
import { systemClock, Timer, type Clock } from "./timer.js";
import { Topics, type SubscribeOptions } from "./topics.js";
import { globalWebSocket, WebSocketTransport, type Transport, type WebSocketConstructor } from "./transport.js";
import type {
  Bye,
  CallOptions,
  ClientState,
  CloseInfo,
  DirectMessage,
  DmTarget,
  EventHandler,
  History,
  MaybePromise,
  Message,
  Peer,
  PeerUpdate,
  Publication,
  RequestHandler,
  Welcome,
} from "./types.js";

/** Returns the identity to send in `~hello`; called again before every (re)connection. */
export type IdentityProvider = () => MaybePromise<unknown>;

export interface ReconnectOptions extends BackoffOptions {
  /** Consecutive failed attempts before giving up (default: never give up). */
  readonly maxAttempts?: number;
  /** Overrides the close-code policy (default: `shouldReconnect` from `close.ts`). */
  readonly shouldReconnect?: (code: number, reason: string) => boolean;
}

export interface ClientOptions {
  /** `ws://host:port/ws` or `wss://…`. */
  readonly url: string;
  /** The namespace to identify in (server default: `"main"`). */
  readonly namespace?: string;
  /** A fixed identity, or a provider called before every (re)connection (e.g. to fetch a fresh token). */
  readonly identity?: IdentityProvider | unknown;
  /** Free client data sent in `~hello` (device, version); a function is called at every connection. */
  readonly meta?: unknown;
  /** Answers the server's `~challenge`; throwing gives up (the error is sent as `~err`). */
  readonly onChallenge?: (quest: unknown) => MaybePromise<unknown>;
  /** A WebSocket constructor (Node 20: `WebSocket` from the `ws` package). Default: `globalThis.WebSocket`. */
  readonly WebSocket?: WebSocketConstructor;
  /** Replaces the WebSocket transport entirely (tests, other runtimes). */
  readonly transport?: Transport;
  /** `"json"` (default), `"msgpack"`, or a custom codec. */
  readonly codec?: "json" | "msgpack" | Codec;
  /** Default timeout of requests (ms, default 10 000). */
  readonly requestTimeoutMs?: number;
  /** From opening the socket to the welcome (ms, default 10 000). */
  readonly connectTimeoutMs?: number;
  /** `~ping` interval (ms). Default: the `heartbeat` the server announces; 0 turns it off. */
  readonly heartbeatIntervalMs?: number;
  /** How long a `~ping` may go unanswered before the link counts as dead (default: the interval). */
  readonly heartbeatTimeoutMs?: number;
  /** `false` never reconnects; options tune the backoff. Default: on. */
  readonly reconnect?: boolean | ReconnectOptions;
  /** Messages kept while offline (default 100); beyond, sends fail with `LIMIT`. */
  readonly offlineBufferSize?: number;
  /** Timers (tests inject a fake clock). */
  readonly clock?: Clock;
}

/** The client's own events. */
export type ClientEvents = {
  /** Every change of `state`; `error` (also in `lastError`) says why when it is `reconnecting` or `closed`. */
  state: { readonly state: ClientState; readonly previous: ClientState; readonly error?: SwitchboardError };
  /** Identified (first time and after every reconnect). */
  ready: Welcome;
  /** A connection ended; `willReconnect` says what comes next. */
  close: CloseInfo;
  reconnecting: { readonly attempt: number; readonly delayMs: number; readonly url: string };
  /** Problems that belong to no request: `~err` pushes, undecodable frames, provider failures. */
  error: SwitchboardError;
  /** Every publication, including those of server-side groups we never subscribed to. */
  message: Publication;
  dm: DirectMessage;
  peer: PeerUpdate;
  bye: Bye;
  /** A topic was resubscribed after a reconnect; `recovered: false` means publications were lost. */
  recovery: RecoveryInfo;
};

/** A change of this connection's public profile (`~status`): absent fields stay as they are. */
export interface StatusChange {
  /** The new alias (1 to 128 bytes), or `null` to clear it (which leaves the directory). */
  readonly alias?: string | null;
  /** Whether others may see and reach this connection (directory, direct messages). */
  readonly available?: boolean;
}

export interface PublishOptions extends CallOptions {
  readonly event?: string;
  /** Also deliver the publication to this connection. */
  readonly echo?: boolean;
  /**
   * An idempotency key (a string of at most 64 UTF-8 bytes): a publication whose key the topic
   * has already seen within its history is not published again, and the reply is the first
   * one's, so a retry after `TIMEOUT` or `DISCONNECTED` is safe.
   */
  readonly key?: string;
}

/** The longest publication key, in UTF-8 bytes (protocol §5). */
export const MAX_PUBLISH_KEY_BYTES = 64;

/** Hello refusals that no retry can fix. */
const FINAL_REFUSALS = new Set(["NOT_AUTHORIZED", "NOT_FOUND", "BAD_REQUEST", "FORBIDDEN", "LIMIT", "ALREADY_IDENTIFIED"]);

export class SwitchboardClient {
  /** The directory of available peers (`~who` + `~peer`). Call `directory.sync()` to start tracking it. */
  readonly directory: Directory;

  private readonly emitter = new Emitter<ClientEvents>();
  private readonly machine = new StateMachine((state, previous) => {
    const error = state === "reconnecting" || state === "closed" ? this.failure : undefined;
    this.emitter.emit("state", { state, previous, ...(error === undefined ? {} : { error }) });
  });
  private readonly clock: Clock;
  private readonly transport: Transport;
  private readonly codec: Codec;
  private readonly pending: PendingRequests;
  private readonly outbox: Outbox;
  private readonly backoff: Backoff;
  private readonly handlers = new Handlers();
  private readonly topics: Topics;
  private readonly recent = new RecentIds();
  private readonly retryTimer: Timer;
  private readonly requestTimeoutMs: number;
  private connection: Connection | undefined;
  private currentUrl: string;
  private welcomeInfo: Welcome | undefined;
  private lastClose: CloseInfo | undefined;
  /** Why the client is reconnecting or closed (undefined when ready, or closed by the application). */
  private failure: SwitchboardError | undefined;
  private attemptToken = 0;
  private waiters: { resolve: (w: Welcome) => void; reject: (e: SwitchboardError) => void }[] = [];
  /** Every `setStatus` merged: re-applied after each reconnect (the server forgets it). */
  private status: StatusChange | undefined;

  constructor(private readonly options: ClientOptions) {
    this.clock = options.clock ?? systemClock;
    this.currentUrl = options.url;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.codec = options.codec === "msgpack" ? msgpackCodec : options.codec === undefined || options.codec === "json" ? jsonCodec : options.codec;
    this.transport = options.transport ?? new WebSocketTransport(this.webSocketImpl());
    this.outbox = new Outbox(options.offlineBufferSize ?? 100);
    this.pending = new PendingRequests(this.clock, (id) => this.outbox.remove(id));
    this.backoff = new Backoff(typeof options.reconnect === "object" ? options.reconnect : {});
    this.retryTimer = new Timer(this.clock, () => void this.attempt());
    const isReady = (): boolean => this.connection?.ready === true;
    const link = {
      get ready(): boolean {
        return isReady();
      },
      request: <R>(type: string, payload: unknown, timeoutMs?: number): Promise<R> => this.direct<R>(type, payload, timeoutMs),
    };
    this.topics = new Topics(link, this.clock, this.requestTimeoutMs, (info) => this.emitter.emit("recovery", info));
    this.directory = new Directory(() => this.direct("~who", {}));
  }

  // ---- observation -----------------------------------------------------------------------

  get state(): ClientState {
    return this.machine.state;
  }

  /** The welcome of the current (or last) connection. */
  get welcome(): Welcome | undefined {
    return this.welcomeInfo;
  }

  /** The URL the next connection goes to (changes when the server sends `~bye.jump`). */
  get url(): string {
    return this.currentUrl;
  }

  /** How the last connection ended. */
  get closeInfo(): CloseInfo | undefined {
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
  get lastError(): SwitchboardError | undefined {
    return this.failure;
  }

  /** Messages waiting in the offline buffer. */
  get buffered(): number {
    return this.outbox.size;
  }

  /** Topics we are subscribed to (or subscribing). */
  get topicsSubscribed(): string[] {
    return this.topics.topics;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  once<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    return this.emitter.once(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): void {
    this.emitter.off(event, listener);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Connects and identifies. Resolves with the welcome once ready (retrying transient failures
   * with backoff); rejects when the client closes first, e.g. `NOT_AUTHORIZED`.
   */
  connect(): Promise<Welcome> {
    if (this.machine.state === "ready" && this.welcomeInfo !== undefined) return Promise.resolve(this.welcomeInfo);
    const promise = new Promise<Welcome>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.machine.state === "idle" || this.machine.state === "closed") {
      this.backoff.reset();
      this.failure = undefined;
      this.machine.transition("connecting");
      void this.attempt();
    }
    return promise;
  }

  /**
   * Closes for good (code 1000 unless given): pending requests reject with `DISCONNECTED`,
   * subscriptions end. Resolves when the socket is closed (at most `timeoutMs` later).
   */
  close(code = 1000, reason = "client closed", timeoutMs = 1000): Promise<void> {
    const conn = this.connection;
    if (this.machine.state !== "closed") {
      this.failure = undefined;
      this.terminate(new SwitchboardError("DISCONNECTED", "the client was closed"), code, reason);
      const info: CloseInfo = { code, reason, byUser: true, willReconnect: false };
      this.lastClose = info;
      this.emitter.emit("close", info);
    }
    if (conn === undefined || conn.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
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
  call<R = unknown>(type: string, payload: unknown = null, options: CallOptions = {}): Promise<R> {
    if (this.machine.state === "closed") return Promise.reject(this.closedError());
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const { id, promise } = this.pending.create<R>(type, timeoutMs, options.signal);
    if (!this.pending.has(id)) return promise; // already aborted
    const message: Message = { type, payload, id };
    try {
      if (this.machine.state === "ready" && this.connection?.send(message) === true) this.pending.markSent(id);
      else if (!this.outbox.push(message)) this.pending.fail(id, this.bufferFull());
    } catch (err) {
      this.pending.fail(id, err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", String(err)));
    }
    return promise;
  }

  /** Sends an event (no reply). Buffered while offline; throws `LIMIT` when the buffer is full. */
  send(type: string, payload: unknown = null): void {
    if (this.machine.state === "closed") throw this.closedError();
    const message: Message = { type, payload };
    if (this.machine.state === "ready" && this.connection?.send(message) === true) return;
    if (!this.outbox.push(message)) throw this.bufferFull();
  }

  /** Handles the server's events of one type (also acknowledged deliveries: they are acked for you). */
  onEvent<T = unknown>(type: string, handler: EventHandler<T>): () => void {
    return this.handlers.onEvent(type, handler);
  }

  /** Answers the server's requests of one type; the handler's result is the reply, a thrown error the `~err`. */
  handle<T = unknown, R = unknown>(type: string, handler: RequestHandler<T, R>): () => void {
    return this.handlers.handle(type, handler);
  }

  // ---- topics ----------------------------------------------------------------------------

  /**
   * Subscribes to a topic; the subscription survives reconnects (resubscribing with its last
   * position). Subscribing twice to a topic returns the same `Subscription`.
   */
  subscribe<T = unknown>(
    topic: string,
    onMessage?: (pub: Publication<T>) => void,
    options: Omit<SubscribeOptions<T>, "onMessage"> = {},
  ): Promise<Subscription<T>> {
    if (this.machine.state === "closed") return Promise.reject(this.closedError());
    return this.topics.subscribe<T>(topic, onMessage === undefined ? options : { ...options, onMessage });
  }

  /** The subscription of a topic, if any. */
  subscription<T = unknown>(topic: string): Subscription<T> | undefined {
    return this.topics.get(topic) as Subscription<T> | undefined;
  }

  /** Leaves every topic equal to `prefix` or under `prefix/` (all topics without a prefix). */
  unsubscribeAll(prefix?: string): Promise<void> {
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
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<{ seq: number }> {
    const { event, echo, key, ...call } = options;
    if (key !== undefined && (typeof key !== "string" || utf8Length(key) > MAX_PUBLISH_KEY_BYTES)) {
      const got = typeof key === "string" ? `${utf8Length(key)} bytes` : typeof key;
      return Promise.reject(new SwitchboardError("BAD_REQUEST", `a publication key is a string of at most ${MAX_PUBLISH_KEY_BYTES} UTF-8 bytes (got ${got})`));
    }
    const payload = {
      topic,
      data,
      ...(event === undefined ? {} : { event }),
      ...(echo === undefined ? {} : { echo }),
      ...(key === undefined ? {} : { key }),
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
  async history<T = unknown>(topic: string, options: HistoryOptions = {}): Promise<History<T>> {
    const payload = historyRequest(topic, options);
    const { limit: _limit, since: _since, ...call } = options;
    return historyReply<T>(await this.call("~history", payload, call));
  }

  // ---- users and presence ----------------------------------------------------------------

  /** `~who`: the directory (no topic) or a topic's presence. */
  async who(topic?: string, options?: CallOptions): Promise<Peer[]> {
    const reply = await this.call<{ peers?: Peer[] }>("~who", topic === undefined ? {} : { topic }, options);
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
  setStatus(status: StatusChange, options?: CallOptions): Promise<Peer> {
    const { alias, available } = (isObject(status) ? status : {}) as { alias?: unknown; available?: unknown };
    if (!isObject(status) || (alias !== undefined && alias !== null && typeof alias !== "string") || (available !== undefined && typeof available !== "boolean")) {
      return Promise.reject(new SwitchboardError("BAD_REQUEST", "a status is {alias?: string | null, available?: boolean}"));
    }
    const change: StatusChange = { ...(alias === undefined ? {} : { alias }), ...(available === undefined ? {} : { available }) };
    if (this.machine.state !== "closed") this.status = { ...this.status, ...change };
    return this.call<Peer>("~status", change, options).then((peer) => {
      this.directory.status(peer);
      return peer;
    });
  }

  /** Sends a direct message; rejects `UNAVAILABLE` or `NOT_FOUND` when it cannot be delivered. */
  dm(to: DmTarget, data: unknown, options?: CallOptions): Promise<unknown> {
    return this.call("~dm", { to, data }, options);
  }

  /** Listens to direct messages. */
  onDm<T = unknown>(handler: (dm: DirectMessage<T>) => void): () => void {
    return this.on("dm", handler as (dm: DirectMessage) => void);
  }

  /** Renews credentials without reconnecting (`~refresh`); default: asks the identity provider. */
  async refresh(identity?: unknown, options?: CallOptions): Promise<unknown> {
    return this.call("~refresh", { identity: identity === undefined ? await this.identity() : identity }, options);
  }

  /** Server statistics (`~info`), where the server allows it. */
  info(detail = false, options?: CallOptions): Promise<unknown> {
    return this.call("~info", { detail }, options);
  }

  // ---- connection lifecycle (private) ---------------------------------------------------

  private async attempt(): Promise<void> {
    const token = ++this.attemptToken;
    let identity: unknown;
    let meta: unknown;
    try {
      identity = await this.identity();
      meta = typeof this.options.meta === "function" ? await (this.options.meta as () => unknown)() : this.options.meta;
    } catch (err) {
      if (token !== this.attemptToken || this.machine.state === "closed") return;
      const message = err instanceof Error ? err.message : String(err);
      this.emitter.emit("error", new SwitchboardError("FAILED", `identity provider failed: ${message}`));
      return this.ended({ code: 1006, reason: `identity provider failed: ${message}` });
    }
    if (token !== this.attemptToken || this.machine.state === "closed") return;
    const hello = {
      ...(this.options.namespace === undefined ? {} : { ns: this.options.namespace }),
      ...(identity === undefined ? {} : { identity }),
      ...(meta === undefined ? {} : { meta }),
    };
    const conn: Connection = new Connection(
      {
        url: this.currentUrl,
        transport: this.transport,
        codec: this.codec,
        clock: this.clock,
        pending: this.pending,
        hello,
        connectTimeoutMs: this.options.connectTimeoutMs ?? 10_000,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs,
        heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
        onChallenge: this.options.onChallenge,
      },
      {
        ready: (welcome) => this.onReady(conn, welcome),
        message: (message) => this.onMessage(conn, message),
        error: (err) => this.emitter.emit("error", err),
        closed: (end) => {
          if (conn !== this.connection) return;
          this.connection = undefined;
          this.ended(end);
        },
      },
    );
    this.connection = conn;
    try {
      conn.open();
    } catch (err) {
      // The transport cannot even start (a URL it cannot open): retrying cannot help.
      this.connection = undefined;
      const error =
        err instanceof SwitchboardError
          ? err
          : new SwitchboardError("BAD_REQUEST", `cannot open ${this.currentUrl}: ${err instanceof Error ? err.message : String(err)}`);
      const info: CloseInfo = { code: 1006, reason: error.message, byUser: false, willReconnect: false };
      this.lastClose = info;
      this.failure = error;
      this.emitter.emit("close", info);
      this.terminate(error);
    }
  }

  private identity(): MaybePromise<unknown> {
    const identity = this.options.identity;
    return typeof identity === "function" ? (identity as IdentityProvider)() : identity;
  }

  private onReady(conn: Connection, welcome: Welcome): void {
    if (conn !== this.connection) return;
    this.welcomeInfo = welcome;
    this.failure = undefined;
    this.backoff.reset();
    this.recent.clear();
    this.directory.connected(welcome.conn);
    if (this.status !== undefined) this.reapplyStatus(conn, this.status);
    this.topics.ready();
    this.directory.ready();
    for (const message of this.outbox.drain()) {
      if (message.id !== undefined && !this.pending.has(message.id)) continue;
      if (conn.send(message) && message.id !== undefined) this.pending.markSent(message.id);
    }
    this.machine.transition("ready");
    for (const w of this.waiters.splice(0)) w.resolve(welcome);
    this.emitter.emit("ready", welcome);
  }

  /**
   * Sends the remembered status on a new connection. `setStatus` calls that waited in the
   * offline buffer are part of it: they leave the buffer and settle with its reply.
   */
  private reapplyStatus(conn: Connection, status: StatusChange): void {
    const waiting: number[] = [];
    for (const m of this.outbox.take((m) => m.type === "~status")) {
      if (m.id !== undefined && this.pending.has(m.id)) (waiting.push(m.id), this.pending.markSent(m.id));
    }
    conn.request<Peer>("~status", status, this.requestTimeoutMs).then(
      (peer) => {
        for (const id of waiting) this.pending.settle({ type: "~ok", payload: peer, id });
        if (waiting.length === 0) this.directory.status(peer); // else their own `then` does it
      },
      (err: unknown) => {
        const error = err instanceof SwitchboardError ? err : new SwitchboardError("FAILED", String(err));
        for (const id of waiting) this.pending.fail(id, error);
        if (waiting.length === 0 && error.code !== "DISCONNECTED") {
          this.emitter.emit("error", new SwitchboardError(error.code, `the status could not be applied again after reconnecting: ${error.message}`, error.data));
        }
      },
    );
  }

  /**
   * A connection ended on its own (not by `close()`): reconnect or stop. Never again after a
   * cause that retrying cannot fix (protocol §8): a close code 4500–4999, a final `~hello`
   * refusal (`NOT_AUTHORIZED`…), an HTTP 4xx at the upgrade.
   */
  private ended(end: ConnectionEnd): void {
    this.pending.failSent(disconnectedError());
    this.topics.disconnected();
    if (this.machine.state === "closed") return;
    const reconnect = this.options.reconnect ?? true;
    const policy = typeof reconnect === "object" && reconnect.shouldReconnect !== undefined ? reconnect.shouldReconnect : defaultPolicy;
    const jump = end.bye?.jump;
    let again: boolean;
    if (end.fatal !== undefined || (end.code >= 4500 && end.code <= 4999)) again = false;
    else if (end.refusal !== undefined && FINAL_REFUSALS.has(end.refusal.code)) again = false;
    else if (reconnect === false) again = false;
    else if (jump !== undefined) again = true;
    else again = end.refusal !== undefined || policy(end.code, end.reason);
    let cause = causeOf(end);
    const maxAttempts = typeof reconnect === "object" ? (reconnect.maxAttempts ?? Infinity) : Infinity;
    if (again && jump === undefined && this.backoff.attempt >= maxAttempts) {
      again = false;
      cause = new SwitchboardError("DISCONNECTED", `gave up after ${maxAttempts} retries; the last attempt: ${cause.message}`, cause.data);
    }
    this.failure = cause;
    const info: CloseInfo = {
      code: end.code,
      reason: end.reason,
      byUser: false,
      willReconnect: again,
      ...(end.bye === undefined ? {} : { bye: end.bye }),
    };
    this.lastClose = info;
    this.emitter.emit("close", info);
    if (!again) return this.terminate(cause);
    if (jump !== undefined) this.currentUrl = jump;
    const delayMs = jump !== undefined ? 0 : this.backoff.next();
    this.machine.transition("reconnecting");
    this.emitter.emit("reconnecting", { attempt: this.backoff.attempt, delayMs, url: this.currentUrl });
    this.retryTimer.start(delayMs);
  }

  /**
   * Moves to `closed` and fails everything that waits with `error`: `connect()`, subscriptions,
   * and the requests still in the offline buffer (they never went out; those that did were
   * failed with `DISCONNECTED` when their link dropped).
   */
  private terminate(error: SwitchboardError, code = 1000, reason = "client closed"): void {
    this.attemptToken++;
    this.retryTimer.cancel();
    const conn = this.connection;
    this.connection = undefined;
    if (conn !== undefined && !conn.closed) conn.close(code, reason);
    this.machine.transition("closed");
    this.outbox.clear();
    this.pending.failAll(error);
    this.topics.closeAll(error);
    this.directory.clear();
    this.recent.clear();
    this.status = undefined;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  /** What `call()` and friends reject with once the client is closed. */
  private closedError(): SwitchboardError {
    const why = this.failure === undefined ? "" : `: ${this.failure.message}`;
    return new SwitchboardError("DISCONNECTED", `the client is closed${why}`, this.failure?.data);
  }

  // ---- incoming (private) ---------------------------------------------------------------

  private onMessage(conn: Connection, message: Message): void {
    if (conn !== this.connection) return;
    const { type, payload, id } = message;
    switch (type) {
      case "~ok":
        return; // a reply that came after its request timed out
      case "~err":
        if (id === undefined) this.emitter.emit("error", SwitchboardError.fromWire(payload));
        return;
      case "~msg":
        return this.acked(conn, id, () => this.onPublication(payload, id));
      case "~dm":
        return this.acked(conn, id, () => this.emitter.emit("dm", payload as DirectMessage));
      case "~presence":
        if (isObject(payload)) this.topics.presence(payload);
        return;
      case "~peer":
        if (isObject(payload) && typeof payload["conn"] === "string") {
          this.directory.update(payload as unknown as PeerUpdate);
          this.emitter.emit("peer", payload as unknown as PeerUpdate);
        }
        return;
      case "~bye":
        if (isObject(payload)) this.emitter.emit("bye", payload as unknown as Bye);
        return;
    }
    if (id === undefined) return this.handlers.dispatchEvent(payload, { type });
    if (type.startsWith("~") || this.handlers.hasRequest(type)) return void this.answer(conn, message);
    if (this.handlers.hasEvent(type)) return this.acked(conn, id, () => this.handlers.dispatchEvent(payload, { type, id }));
    void this.answer(conn, message); // NOT_FOUND
  }

  private onPublication(payload: unknown, id: number | undefined): void {
    if (!isObject(payload) || typeof payload["topic"] !== "string") return;
    const pub = (id === undefined ? payload : { ...payload, ackId: id }) as unknown as Publication;
    this.topics.deliver(pub);
    this.emitter.emit("message", pub);
  }

  /** Delivers once per id and acknowledges every copy (acknowledged delivery, protocol §5). */
  private acked(conn: Connection, id: number | undefined, deliver: () => void): void {
    if (id === undefined) return deliver();
    if (this.recent.add(id)) deliver();
    conn.send({ type: "~ok", payload: null, id });
  }

  private async answer(conn: Connection, message: Message): Promise<void> {
    const ctx = { type: message.type, id: message.id as number };
    const answer = await this.handlers.answer(message.payload, ctx);
    const reply: Message = answer.ok
      ? { type: "~ok", payload: answer.result, id: ctx.id }
      : { type: "~err", payload: answer.error, id: ctx.id };
    try {
      conn.send(reply);
    } catch (err) {
      const error = err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", String(err));
      conn.send({ type: "~err", payload: { code: "FAILED", message: `the reply cannot be encoded: ${error.message}` }, id: ctx.id });
    }
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** A request on the current connection only (internal traffic: resubscribe, presence sync). */
  private direct<R>(type: string, payload: unknown, timeoutMs?: number): Promise<R> {
    const conn = this.connection;
    if (conn === undefined || !conn.ready) return Promise.reject(new SwitchboardError("DISCONNECTED", "not connected"));
    return conn.request<R>(type, payload, timeoutMs ?? this.requestTimeoutMs);
  }

  private bufferFull(): SwitchboardError {
    return new SwitchboardError("LIMIT", `offline buffer full (${this.outbox.capacity} messages)`);
  }

  private webSocketImpl(): WebSocketConstructor {
    const impl = this.options.WebSocket ?? globalWebSocket();
    if (impl === undefined) {
      throw new TypeError("no WebSocket available: pass `WebSocket` (e.g. from the `ws` package) or a `transport`");
    }
    return impl;
  }
}

/** The error that describes how a connection ended. */
function causeOf(end: ConnectionEnd): SwitchboardError {
  if (end.fatal !== undefined) return end.fatal;
  if (end.refusal !== undefined) return end.refusal;
  const why = `connection closed: ${end.code} ${describeClose(end.code)}${end.reason ? ` (${end.reason})` : ""}`;
  const data = { code: end.code, reason: end.reason, ...(end.status === undefined ? {} : { status: end.status }) };
  return new SwitchboardError(end.code === 4500 ? "NOT_AUTHORIZED" : "DISCONNECTED", why, data);
}

/** The length of a string in UTF-8 bytes (a lone surrogate counts 3, as its replacement). */
function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
