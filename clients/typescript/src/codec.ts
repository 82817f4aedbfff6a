/**
 * Codecs turn messages into frames and back. JSON (`switchboard.v1.json`) is always available;
 * MessagePack lives in `msgpack.ts`.
 */
import { SwitchboardError } from "./errors.js";
import type { Message } from "./types.js";

/** A frame as it travels on the WebSocket. */
export type Frame = string | Uint8Array;

/** Encodes and decodes one subprotocol. */
export interface Codec {
  /** The WebSocket subprotocol this codec speaks. */
  readonly subprotocol: string;
  /** True when frames are binary. */
  readonly binary: boolean;
  encode(message: Message): Frame;
  /** Throws `SwitchboardError("PROTOCOL")` for a frame that is not a valid message. */
  decode(frame: Frame): Message;
}

const MAX_ID = Number.MAX_SAFE_INTEGER;

/** Checks the shape `[type, payload?, id?]` of a decoded value (protocol §2). */
export function toMessage(value: unknown): Message {
  if (!Array.isArray(value) || value.length < 1 || value.length > 3) {
    throw protocolError("a message must be an array of one to three elements");
  }
  const [type, payload, id] = value as [unknown, unknown, unknown];
  if (typeof type !== "string" || type.length === 0) throw protocolError("the message type must be a non-empty string");
  if (id === undefined || id === null) return { type, payload: payload ?? null };
  if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > MAX_ID) {
    throw protocolError("the message id must be an integer in 1..2^53-1");
  }
  return { type, payload: payload ?? null, id };
}

/** The array form of a message, as it goes on the wire. */
export function toArray(message: Message): unknown[] {
  const payload = message.payload === undefined ? null : message.payload;
  return message.id === undefined ? [message.type, payload] : [message.type, payload, message.id];
}

function protocolError(message: string): SwitchboardError {
  return new SwitchboardError("PROTOCOL", message);
}

/** `switchboard.v1.json`: text frames of UTF-8 JSON. */
export const jsonCodec: Codec = {
  subprotocol: "switchboard.v1.json",
  binary: false,
  encode: (message) => JSON.stringify(toArray(message)),
  decode(frame) {
    if (typeof frame !== "string") throw protocolError("binary frame on a JSON connection");
    let value: unknown;
    try {
      value = JSON.parse(frame);
    } catch {
      throw protocolError("frame is not valid JSON");
    }
    return toMessage(value);
  },
};
