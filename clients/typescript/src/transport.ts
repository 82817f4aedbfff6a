/**
 * The transport is the only part that touches a socket. It is injectable: the default wraps a
 * WebSocket constructor (the browser's, or `ws` in Node 20), and tests plug in a fake one.
 */
import type { Frame } from "./codec.js";

/** What a transport reports about one connection. Called at most once for `open` and `close`. */
export interface TransportListener {
  /** The socket is open; `protocol` is the subprotocol the server picked ("" if none). */
  open(protocol: string): void;
  message(frame: Frame): void;
  /** The socket is closed (1006 when it died without a close frame). */
  close(code: number, reason: string): void;
}

/** One open (or opening) connection. */
export interface TransportConnection {
  send(frame: Frame): void;
  /** Starts the closing handshake; `listener.close` follows. */
  close(code?: number, reason?: string): void;
}

/** Opens connections. */
export interface Transport {
  connect(url: string, protocols: readonly string[], listener: TransportListener): TransportConnection;
}

/** The subset of the WebSocket API used here; satisfied by the browser's WebSocket and by `ws`. */
export interface WebSocketLike {
  readonly protocol: string;
  binaryType: string;
  // `any`: the browser's and `ws`'s listener types differ; each event is narrowed below.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  addEventListener(type: string, listener: (event: any) => void): void;
  /** Typed `never` so every platform's signature fits; the transport passes a string or a Uint8Array. */
  send(data: never): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

interface MessageEventLike {
  readonly data: unknown;
}
interface CloseEventLike {
  readonly code?: number;
  readonly reason?: string;
}

/** Finds the platform's WebSocket, if it has one (browsers, Deno, Node ≥ 22). */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

function toFrame(data: unknown): Frame | undefined {
  if (typeof data === "string") return data;
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
    // `ws` with binaryType "fragments"
    const parts = data as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) (out.set(p, at), (at += p.length));
    return out;
  }
  return undefined;
}

/** The default transport: one WebSocket per connection. */
export class WebSocketTransport implements Transport {
  constructor(private readonly WebSocketImpl: WebSocketConstructor) {}

  connect(url: string, protocols: readonly string[], listener: TransportListener): TransportConnection {
    const ws = new this.WebSocketImpl(url, [...protocols]);
    ws.binaryType = "arraybuffer";
    let closed = false;
    ws.addEventListener("open", () => listener.open(ws.protocol ?? ""));
    ws.addEventListener("message", (event: MessageEventLike) => {
      const frame = toFrame(event.data);
      if (frame !== undefined && !closed) listener.message(frame);
    });
    ws.addEventListener("close", (event: CloseEventLike) => {
      if (closed) return;
      closed = true;
      listener.close(event.code ?? 1006, event.reason ?? "");
    });
    // An "error" event is always followed by "close"; nothing to do here, but a listener keeps
    // Node's `ws` from treating the error as unhandled.
    ws.addEventListener("error", () => undefined);
    return {
      send: (frame) => ws.send(frame as never),
      close: (code, reason) => {
        try {
          ws.close(code, reason);
        } catch {
          // already closing, or a code the platform refuses: the close event follows anyway
        }
      },
    };
  }
}
