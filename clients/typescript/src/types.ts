/**
 * Wire-level and public types shared by every part of the client.
 * The names follow the protocol (docs/protocol.md, version 1).
 */

/** A request id: an integer in 1 ..= 2^53 − 1. */
export type Id = number;

/** One protocol message: `[type, payload, id?]`. */
export interface Message {
  readonly type: string;
  readonly payload: unknown;
  readonly id?: Id;
}

/** `{code, message, data?}` as carried by `~err`. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly data?: unknown;
}

/** The payload of the `~ok` reply to `~hello`. */
export interface Welcome {
  /** Unique id of this connection. */
  readonly conn: string;
  /** The user this connection belongs to (null in anonymous namespaces). */
  readonly user: string | null;
  /** The namespace that accepted us. */
  readonly ns: string;
  /** The application's welcome payload. */
  readonly data: unknown;
  /** The server's heartbeat interval in milliseconds. */
  readonly heartbeat: number;
}

/** A connection as seen by `~who`, `~peer` and `~presence`. */
export interface Peer {
  readonly conn: string;
  readonly user: string | null;
  readonly alias: string | null;
  readonly available: boolean;
  readonly public: unknown;
}

/** A `~peer` directory update. */
export interface PeerUpdate extends Peer {
  readonly online: boolean;
}

/** Sender of a publication or a direct message. */
export interface Sender {
  readonly conn: string;
  readonly user: string | null;
  readonly alias?: string | null;
}

/** A publication delivered by `~msg`. */
export interface Publication<T = unknown> {
  readonly topic: string;
  readonly event?: string;
  readonly data: T;
  /** The publication's number in its topic's epoch: 1, 2, 3… */
  readonly seq: number;
  /**
   * Present when the topic's epoch changed since this subscriber was last told (in its `~sub`
   * reply or an earlier delivery): the stream restarted, and this is where it stands now.
   */
  readonly epoch?: string;
  readonly from?: Sender;
  /** Set when the delivery was acknowledged (the client has already answered it). */
  readonly ackId?: Id;
}

/** A publication as `~history` returns it. */
export interface HistoryPublication<T = unknown> {
  readonly seq: number;
  readonly event?: string;
  readonly data: T;
  readonly from?: Sender;
}

/** The reply to `~history`: where the topic stands, and what it retained, oldest first. */
export interface History<T = unknown> extends StreamPosition {
  readonly topic: string;
  /** Oldest first. Empty when the request's `since` was of another epoch (then `epoch` differs). */
  readonly publications: readonly HistoryPublication<T>[];
}

/** A position in a topic's history. */
export interface StreamPosition {
  readonly epoch: string;
  readonly seq: number;
}

/** The reply to `~sub`. */
export interface SubscribeReply extends StreamPosition {
  readonly topic: string;
  readonly recovered: boolean;
}

/** A received direct message (`~dm`). */
export interface DirectMessage<T = unknown> {
  readonly from: Sender;
  readonly data: T;
}

/** Target of a direct message. */
export type DmTarget = { readonly conn: string } | { readonly alias: string };

/** Observable connection state. */
export type ClientState = "idle" | "connecting" | "ready" | "reconnecting" | "closed";

/** Why and how a connection ended. */
export interface CloseInfo {
  /** WebSocket close code (1006 when the link died or was abandoned). */
  readonly code: number;
  readonly reason: string;
  /** True when `close()` was called by the application. */
  readonly byUser: boolean;
  /** True when the client is going to reconnect. */
  readonly willReconnect: boolean;
  /** The `~bye` the server sent before closing, if any. */
  readonly bye?: Bye;
}

/** The payload of `~bye`. */
export interface Bye {
  readonly code: number;
  readonly reason: string;
  readonly jump?: string;
}

/** Something that may be a value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/** Options of a single request. */
export interface CallOptions {
  /** Milliseconds before the request rejects with `TIMEOUT`; counts from the call, offline time included. */
  readonly timeoutMs?: number;
  /** Abort the request (rejects with `ABORTED`). */
  readonly signal?: AbortSignalLike;
}

/** The part of `AbortSignal` the client uses (kept structural so no DOM types are needed). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Information passed to handlers of the server's events and requests. */
export interface IncomingContext {
  /** The message type. */
  readonly type: string;
  /** Set for requests and acknowledged deliveries. */
  readonly id?: Id;
}

/** Handles an event sent by the server. */
export type EventHandler<T = unknown> = (payload: T, ctx: IncomingContext) => void;

/** Handles a request sent by the server; its result (or thrown `SwitchboardError`) is the reply. */
export type RequestHandler<T = unknown, R = unknown> = (payload: T, ctx: IncomingContext) => MaybePromise<R>;
