/**
 * `~history` (protocol §5): reading a topic's retained publications without subscribing. This
 * file checks the request before it goes out and the reply before it is handed over.
 */
import { SwitchboardError } from "./errors.js";
import type { CallOptions, History, StreamPosition } from "./types.js";

/** Options of `client.history()`. */
export interface HistoryOptions extends CallOptions {
  /** The newest `limit` publications: an integer ≥ 1 (default and maximum: the topic's history size). */
  readonly limit?: number;
  /** Only the publications after `seq` of this `epoch` (none if the topic is in another epoch now). */
  readonly since?: StreamPosition;
}

/** The `~history` payload, or `BAD_REQUEST` for arguments the server would refuse anyway. */
export function historyRequest(topic: unknown, options: HistoryOptions): { topic: string; limit?: number; since?: StreamPosition } {
  if (typeof topic !== "string" || topic.length === 0) throw new SwitchboardError("BAD_REQUEST", "history needs a topic name");
  const { limit, since } = options as { limit?: unknown; since?: unknown };
  if (limit !== undefined && !(typeof limit === "number" && Number.isSafeInteger(limit) && limit >= 1)) {
    throw new SwitchboardError("BAD_REQUEST", `history's limit must be an integer >= 1 (got ${String(limit)})`);
  }
  if (since !== undefined && !isPosition(since)) {
    throw new SwitchboardError("BAD_REQUEST", "history's since must be {epoch: string, seq: integer >= 0}");
  }
  return { topic, ...(limit === undefined ? {} : { limit }), ...(since === undefined ? {} : { since: { epoch: since.epoch, seq: since.seq } }) };
}

/** The reply, checked: `PROTOCOL` if it is not `{topic, epoch, seq, publications: [{seq, data}…]}`. */
export function historyReply<T>(reply: unknown): History<T> {
  const r = reply as { topic?: unknown; epoch?: unknown; seq?: unknown; publications?: unknown } | null;
  const ok =
    typeof r === "object" &&
    r !== null &&
    typeof r.topic === "string" &&
    typeof r.epoch === "string" &&
    typeof r.seq === "number" &&
    Array.isArray(r.publications) &&
    r.publications.every((p: unknown) => typeof p === "object" && p !== null && typeof (p as { seq?: unknown }).seq === "number");
  if (!ok) throw new SwitchboardError("PROTOCOL", "malformed ~history reply", reply);
  return reply as History<T>;
}

function isPosition(value: unknown): value is StreamPosition {
  const v = value as { epoch?: unknown; seq?: unknown } | null;
  return typeof v === "object" && v !== null && typeof v.epoch === "string" && typeof v.seq === "number" && Number.isSafeInteger(v.seq) && v.seq >= 0;
}
