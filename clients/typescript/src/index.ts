/**
 * Switchboard's TypeScript client: browsers and Node (inject `WebSocket` from `ws` on Node 20).
 *
 * ```ts
 * const client = new SwitchboardClient({ url, identity: () => ({ user: "ann", password: "pw-ann" }) });
 * await client.connect();
 * const sum = await client.call<number>("add", { a: 1, b: 2 }, { timeoutMs: 5000 });
 * ```
 */
export { MAX_PUBLISH_KEY_BYTES, SwitchboardClient } from "./client.js";
export type { ClientEvents, ClientOptions, IdentityProvider, PublishOptions, ReconnectOptions, StatusChange } from "./client.js";
export { SwitchboardError, isWireError } from "./errors.js";
export type { ErrorCode, StandardCode } from "./errors.js";
export { Subscription } from "./subscription.js";
export type { RecoveryInfo, SubscribedInfo, SubscriptionEvents, SubscriptionState } from "./subscription.js";
export type { SubscribeOptions } from "./topics.js";
export type { HistoryOptions } from "./history.js";
export { Directory, TopicPresence } from "./presence.js";
export type { PresenceEvents } from "./presence.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CloseCode, describeClose, shouldReconnect } from "./close.js";
export { jsonCodec } from "./codec.js";
export type { Codec, Frame } from "./codec.js";
export { msgpackCodec, encodeMsgpack, decodeMsgpack } from "./msgpack.js";
export { upgradeRefusal, webSocketUrl, WebSocketTransport } from "./transport.js";
export type { CloseDetail, Transport, TransportConnection, TransportListener, WebSocketConstructor, WebSocketLike } from "./transport.js";
export { systemClock } from "./timer.js";
export type { Clock, TimerHandle } from "./timer.js";
export type { Emitter, EventMap } from "./emitter.js";
export type * from "./types.js";
