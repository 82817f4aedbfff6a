/**
 * An in-memory transport: the test plays the server. Frames are JSON; `sent` holds what the
 * client wrote, decoded.
 */
import type { Frame, Transport, TransportConnection, TransportListener } from "../../src/index.js";

export interface Sent {
  readonly type: string;
  readonly payload: unknown;
  readonly id?: number;
}

export class FakeSocket implements TransportConnection {
  readonly sent: Sent[] = [];
  closedWith: { code: number; reason: string } | undefined;
  private ended = false;

  constructor(
    readonly url: string,
    readonly protocols: readonly string[],
    private readonly listener: TransportListener,
  ) {}

  // ---- the client's side ----
  send(frame: Frame): void {
    if (this.ended) throw new Error("socket closed");
    const [type, payload, id] = JSON.parse(frame as string) as [string, unknown, number | undefined];
    this.sent.push(id === undefined ? { type, payload } : { type, payload, id });
  }

  close(code = 1000, reason = ""): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = { code, reason };
    // a polite server answers the close handshake
    queueMicrotask(() => this.drop(code, reason));
  }

  // ---- the server's side ----
  open(protocol = "switchboard.v1.json"): void {
    this.listener.open(protocol);
  }

  push(...message: unknown[]): void {
    if (!this.ended) this.listener.message(JSON.stringify(message));
  }

  pushRaw(frame: Frame): void {
    this.listener.message(frame);
  }

  drop(code = 1006, reason = ""): void {
    if (this.ended) return;
    this.ended = true;
    this.listener.close(code, reason);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Messages of one type the client sent. */
  ofType(type: string): Sent[] {
    return this.sent.filter((m) => m.type === type);
  }

  /** The last request of a type (throws if none). */
  request(type: string): Sent & { id: number } {
    const m = this.ofType(type).at(-1);
    if (m === undefined || m.id === undefined) throw new Error(`no ${type} request sent; sent: ${JSON.stringify(this.sent)}`);
    return m as Sent & { id: number };
  }

  /** Answers the last request of a type with `~ok`. */
  ok(type: string, result: unknown = null): void {
    this.push("~ok", result, this.request(type).id);
  }

  /** Answers the last request of a type with `~err`. */
  err(type: string, code: string, message = code, data?: unknown): void {
    this.push("~err", data === undefined ? { code, message } : { code, message, data }, this.request(type).id);
  }

  /** Opens and accepts `~hello`. */
  accept(welcome: Partial<{ conn: string; user: string | null; ns: string; data: unknown; heartbeat: number }> = {}): void {
    this.open();
    this.ok("~hello", { conn: "c1", user: "ann", ns: "main", data: null, heartbeat: 0, ...welcome });
  }
}

export class FakeTransport implements Transport {
  readonly sockets: FakeSocket[] = [];

  connect(url: string, protocols: readonly string[], listener: TransportListener): TransportConnection {
    const socket = new FakeSocket(url, protocols, listener);
    this.sockets.push(socket);
    return socket;
  }

  get last(): FakeSocket {
    const s = this.sockets.at(-1);
    if (s === undefined) throw new Error("no socket opened");
    return s;
  }
}
