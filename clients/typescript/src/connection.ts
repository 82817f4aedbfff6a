/**
 * One socket's life: open, identify (`~hello`, answering `~challenge`), heartbeat, and the end.
 * Everything that is not handshake or liveness is handed to the client through `message`.
 * A new `Connection` is made for every (re)connection attempt; a dead one never speaks again.
 */
import type { Codec, Frame } from "./codec.js";
import { SwitchboardError, toWireError } from "./errors.js";
import { Heartbeat } from "./heartbeat.js";
import type { PendingRequests } from "./request.js";
import { Timer, type Clock } from "./timer.js";
import type { CloseDetail, Transport, TransportConnection } from "./transport.js";
import type { Bye, MaybePromise, Message, Welcome } from "./types.js";

/** The `~hello` payload. */
export interface Hello {
  readonly ns?: string;
  readonly identity?: unknown;
  readonly meta?: unknown;
}

export interface ConnectionOptions {
  readonly url: string;
  readonly transport: Transport;
  readonly codec: Codec;
  readonly clock: Clock;
  readonly pending: PendingRequests;
  readonly hello: Hello;
  /** From creating the socket to the welcome. */
  readonly connectTimeoutMs: number;
  /** `~ping` interval; undefined: the server's `heartbeat`; 0: off. */
  readonly heartbeatIntervalMs: number | undefined;
  readonly heartbeatTimeoutMs: number | undefined;
  readonly onChallenge: ((quest: unknown) => MaybePromise<unknown>) | undefined;
}

/** How a connection ended. */
export interface ConnectionEnd {
  readonly code: number;
  readonly reason: string;
  readonly bye?: Bye;
  /** Set when the server answered `~hello` with `~err`. */
  readonly refusal?: SwitchboardError;
  /** The HTTP status that refused the upgrade, when the transport could see it. */
  readonly status?: number;
  /** A cause that no retry can fix, found by the transport (an HTTP 4xx at the upgrade). */
  readonly fatal?: SwitchboardError;
}

export interface ConnectionEvents {
  ready(welcome: Welcome): void;
  message(message: Message): void;
  /** An undecodable frame or another problem worth reporting; the connection lives on. */
  error(err: SwitchboardError): void;
  closed(end: ConnectionEnd): void;
}

export class Connection {
  private socket: TransportConnection | undefined;
  private dead = false;
  private identified = false;
  private bye: Bye | undefined;
  private helloId: number | undefined;
  private refusal: SwitchboardError | undefined;
  private readonly connectTimer: Timer;
  private readonly heartbeat: Heartbeat;
  private readonly closeCallbacks: (() => void)[] = [];

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.connectTimer = new Timer(opts.clock, () =>
      this.abandon(1006, `not identified within ${opts.connectTimeoutMs} ms`),
    );
    this.heartbeat = new Heartbeat(
      opts.clock,
      (timeoutMs) => this.request("~ping", null, timeoutMs),
      (reason) => this.abandon(1006, reason),
    );
  }

  /** True once the welcome arrived and until the end. */
  get ready(): boolean {
    return this.identified && !this.dead;
  }

  get closed(): boolean {
    return this.dead;
  }

  /** Opens the socket. Throws if the transport cannot even start (e.g. an invalid URL). */
  open(): void {
    this.connectTimer.start(this.opts.connectTimeoutMs);
    this.socket = this.opts.transport.connect(this.opts.url, [this.opts.codec.subprotocol], {
      open: () => this.onOpen(),
      message: (frame) => this.onFrame(frame),
      close: (code, reason, detail) => this.finish(code, reason, detail),
    });
  }

  /** Writes a message; false if the socket is not usable. */
  send(message: Message): boolean {
    if (this.dead || this.socket === undefined) return false;
    let frame: Frame;
    try {
      frame = this.opts.codec.encode(message);
    } catch (err) {
      throw err instanceof SwitchboardError ? err : new SwitchboardError("BAD_REQUEST", "payload cannot be encoded");
    }
    try {
      this.socket.send(frame);
    } catch {
      return false; // closing: the close event follows
    }
    return true;
  }

  /** A request on this connection only (never buffered): the handshake's and liveness' own. */
  request<R>(type: string, payload: unknown, timeoutMs: number): Promise<R> {
    const { id, promise } = this.opts.pending.create<R>(type, timeoutMs);
    if (this.send({ type, payload, id })) this.opts.pending.markSent(id);
    else this.opts.pending.fail(id, new SwitchboardError("DISCONNECTED", "not connected"));
    return promise;
  }

  /** Runs `callback` once the connection has ended (at once if it already has). */
  onceClosed(callback: () => void): void {
    if (this.dead) callback();
    else this.closeCallbacks.push(callback);
  }

  /** Closes the socket politely; `closed` follows with the code the close event reports. */
  close(code = 1000, reason = ""): void {
    this.socket?.close(code, reason);
  }

  /** Gives up on the socket now (dead link, timeout): reports `closed` at once with `code`. */
  abandon(code: number, reason: string): void {
    if (this.dead) return;
    this.socket?.close(1000, reason.slice(0, 120));
    this.finish(code, reason);
  }

  private onOpen(): void {
    if (this.dead) return;
    // The reply is handled synchronously in `onFrame` (a frame right after the welcome must see
    // us ready); the promise only clears the request's timer. The connect timer decides timeouts.
    const { id, promise } = this.opts.pending.create<Welcome>("~hello", this.opts.connectTimeoutMs);
    promise.catch(() => undefined);
    this.helloId = id;
    if (this.send({ type: "~hello", payload: this.opts.hello, id })) this.opts.pending.markSent(id);
  }

  private onHelloReply(reply: Message): void {
    this.helloId = undefined;
    this.opts.pending.settle(reply);
    if (reply.type === "~ok") return this.onWelcome(reply.payload as Welcome);
    this.refusal = SwitchboardError.fromWire(reply.payload);
    this.close(1000, "identification refused");
  }

  private onWelcome(welcome: Welcome): void {
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

  private onFrame(frame: Frame): void {
    if (this.dead) return;
    let message: Message;
    try {
      message = this.opts.codec.decode(frame);
    } catch (err) {
      this.events.error(err instanceof SwitchboardError ? err : new SwitchboardError("PROTOCOL", "undecodable frame"));
      return;
    }
    switch (message.type) {
      case "~ok":
      case "~err":
        if (message.id !== undefined && message.id === this.helloId) return this.onHelloReply(message);
        if (message.id !== undefined && this.opts.pending.settle(message)) return;
        break; // an `~err` push (e.g. NOT_FOUND for an event) or a late reply: the client reports it
      case "~challenge":
        if (message.id !== undefined) return void this.answerChallenge(message.payload, message.id);
        break;
      case "~ping":
        if (message.id !== undefined) return void this.send({ type: "~ok", payload: null, id: message.id });
        return;
      case "~bye":
        this.bye = parseBye(message.payload);
        break;
    }
    this.events.message(message);
  }

  private async answerChallenge(quest: unknown, id: number): Promise<void> {
    let reply: Message;
    try {
      if (this.opts.onChallenge === undefined) {
        throw new SwitchboardError("NOT_AUTHORIZED", "the client has no challenge handler");
      }
      reply = { type: "~ok", payload: (await this.opts.onChallenge(quest)) ?? null, id };
    } catch (err) {
      reply = { type: "~err", payload: toWireError(err), id };
    }
    this.send(reply);
  }

  private finish(code: number, reason: string, detail?: CloseDetail): void {
    if (this.dead) return;
    this.dead = true;
    this.connectTimer.cancel();
    this.heartbeat.stop();
    const end: ConnectionEnd = {
      code,
      reason,
      ...(this.bye === undefined ? {} : { bye: this.bye }),
      ...(this.refusal === undefined ? {} : { refusal: this.refusal }),
      ...(detail?.status === undefined ? {} : { status: detail.status }),
      ...(detail?.fatal === undefined ? {} : { fatal: detail.fatal }),
    };
    this.events.closed(end);
    for (const callback of this.closeCallbacks.splice(0)) callback();
  }
}

function parseBye(payload: unknown): Bye | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const p = payload as { code?: unknown; reason?: unknown; jump?: unknown };
  return {
    code: typeof p.code === "number" ? p.code : 0,
    reason: typeof p.reason === "string" ? p.reason : "",
    ...(typeof p.jump === "string" && p.jump.length > 0 ? { jump: p.jump } : {}),
  };
}
