/**
 * The transport is the only part that touches a socket. It is injectable: the default wraps a
 * WebSocket constructor (the browser's, or `ws` in Node 20), and tests plug in a fake one.
 */
import type { Frame } from "./codec.js";
import { SwitchboardError } from "./errors.js";

/** What a transport reports about one connection. Called at most once for `open` and `close`. */
export interface TransportListener {
  /** The socket is open; `protocol` is the subprotocol the server picked ("" if none). */
  open(protocol: string): void;
  message(frame: Frame): void;
  /**
   * The socket is closed, or could not be opened (1006 when it died without a close frame).
   * `detail` says more when the transport knows it: the HTTP status that refused the upgrade,
   * and `fatal`, a cause that no retry can fix (the client stops and reports it).
   */
  close(code: number, reason: string, detail?: CloseDetail): void;
}

/** What a transport knows about a connection that failed before or instead of closing normally. */
export interface CloseDetail {
  /** The HTTP status that answered the upgrade instead of 101 (only `ws` in Node can see it). */
  readonly status?: number;
  /** Set when retrying cannot help (an HTTP 4xx at the upgrade): the client stops with this error. */
  readonly fatal?: SwitchboardError;
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
interface ErrorEventLike {
  readonly message?: unknown;
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

/**
 * The URL a WebSocket can open: `ws:` and `wss:` as they are, `http:` and `https:` mapped to
 * `ws:` and `wss:`; in a browser, a relative URL (`/ws`) is resolved against the page. Anything
 * else throws `BAD_REQUEST` (retrying cannot fix a URL).
 *
 * ```ts
 * webSocketUrl("https://example.com/ws"); // "wss://example.com/ws"
 * ```
 */
export function webSocketUrl(url: string): string {
  let absolute = url;
  const base = (globalThis as { location?: { href?: unknown } }).location?.href;
  const UrlImpl = (globalThis as { URL?: new (url: string, base?: string) => { href: string } }).URL;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(url) && typeof base === "string" && UrlImpl !== undefined && url.length > 0) {
    try {
      absolute = new UrlImpl(url, base).href;
    } catch {
      // left as is: refused below
    }
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/[^/?#]/i.exec(absolute);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme === "ws" || scheme === "wss") return absolute;
  if (scheme === "http" || scheme === "https") return `${scheme === "http" ? "ws" : "wss"}${absolute.slice(scheme.length)}`;
  throw new SwitchboardError(
    "BAD_REQUEST",
    `cannot connect to ${JSON.stringify(url)}: the URL must start with ws:, wss:, http: or https: followed by //host`,
    { url },
  );
}

/**
 * The error for an HTTP status that refused the WebSocket upgrade, when retrying cannot help:
 * every 4xx but 408 (request timeout) and 429 (too many requests), which are worth a retry.
 * 400, 401, 403 and 404 map to `BAD_REQUEST`, `NOT_AUTHORIZED`, `FORBIDDEN` and `NOT_FOUND`;
 * other 4xx to `UPGRADE_REFUSED`. `data` is `{status}`.
 */
export function upgradeRefusal(status: number, url: string): SwitchboardError | undefined {
  if (status < 400 || status > 499 || status === 408 || status === 429) return undefined;
  const code = ({ 400: "BAD_REQUEST", 401: "NOT_AUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND" } as Record<number, string>)[status];
  return new SwitchboardError(
    code ?? "UPGRADE_REFUSED",
    `the server answered HTTP ${status} to the WebSocket upgrade of ${url}${status === 404 ? " (check the path)" : ""}`,
    { status },
  );
}

/**
 * The default transport: one WebSocket per connection.
 *
 * A socket that fails before it opens ends the attempt at once, on its `error` event: Node's
 * built-in WebSocket (Node 20 and 21) fires no `close` for a refused connection. With `ws` in
 * Node, the HTTP status of a refused upgrade is read from its `unexpected-response` event; a
 * browser is never told that status (it sees only `error` then `close` 1006).
 */
export class WebSocketTransport implements Transport {
  constructor(private readonly WebSocketImpl: WebSocketConstructor) {}

  connect(url: string, protocols: readonly string[], listener: TransportListener): TransportConnection {
    const target = webSocketUrl(url);
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketImpl(target, [...protocols]);
    } catch (err) {
      // Browsers throw a SyntaxError for a URL they cannot use: retrying cannot fix it.
      const why = err instanceof Error ? err.message : String(err);
      throw new SwitchboardError("BAD_REQUEST", `cannot open a WebSocket to ${url}: ${why}`, { url });
    }
    ws.binaryType = "arraybuffer";
    let opened = false;
    let closed = false;
    let status: number | undefined;
    const end = (code: number, reason: string): void => {
      if (closed) return;
      closed = true;
      const fatal = status === undefined ? undefined : upgradeRefusal(status, url);
      const detail: CloseDetail | undefined =
        status === undefined ? undefined : { status, ...(fatal === undefined ? {} : { fatal }) };
      listener.close(code, status === undefined ? reason : `the server answered HTTP ${status} to the upgrade`, detail);
    };
    ws.addEventListener("open", () => {
      if (closed) return;
      opened = true;
      listener.open(ws.protocol ?? "");
    });
    ws.addEventListener("message", (event: MessageEventLike) => {
      const frame = toFrame(event.data);
      if (frame !== undefined && !closed) listener.message(frame);
    });
    ws.addEventListener("close", (event: CloseEventLike) => end(event.code ?? 1006, event.reason ?? ""));
    ws.addEventListener("error", (event: ErrorEventLike) => {
      // Once open, the close event follows an error. Before, some implementations never send
      // one (Node 20's built-in WebSocket): the attempt has failed, say so now.
      if (opened) return;
      const why = typeof event?.message === "string" && event.message.length > 0 ? event.message : "";
      end(1006, why === "" ? "connection failed" : `connection failed: ${why}`);
    });
    // `ws` (Node) shows the response that refused the upgrade; with a listener it leaves
    // aborting to us, and `close()` while connecting does that (then `error`, then `close`).
    const emitter = ws as unknown as { on?: (event: string, listener: (...args: unknown[]) => void) => unknown };
    if (typeof emitter.on === "function") {
      emitter.on.call(ws, "unexpected-response", (_request: unknown, response: unknown) => {
        const code = (response as { statusCode?: unknown } | undefined)?.statusCode;
        status = typeof code === "number" ? code : 0;
        try {
          ws.close();
        } catch {
          end(1006, "");
        }
      });
    }
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
