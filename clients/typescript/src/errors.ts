/**
 * The one error type of the client. Every rejection carries a protocol code.
 */
import type { WireError } from "./types.js";

/** Codes defined by the protocol, plus the client-side ones. Applications add their own. */
export type StandardCode =
  | "BAD_REQUEST"
  | "NOT_AUTHENTICATED"
  | "NOT_AUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "FAILED"
  | "TIMEOUT"
  | "RATE_LIMITED"
  | "UNAVAILABLE"
  | "LIMIT"
  | "ALREADY_IDENTIFIED"
  | "DISCONNECTED"
  // client side only:
  | "ABORTED"
  | "PROTOCOL";

/** A standard code or an application's own (`[A-Z][A-Z0-9_]*`). */
export type ErrorCode = StandardCode | (string & {});

/** A failed request, a refused connection or a broken link. */
export class SwitchboardError extends Error {
  /** The protocol code (`TIMEOUT`, `NOT_FOUND`, `DISCONNECTED`, an application code…). */
  readonly code: ErrorCode;
  /** Extra data from the server's `~err`, if any. */
  readonly data: unknown;

  constructor(code: ErrorCode, message: string, data?: unknown) {
    super(message);
    this.name = "SwitchboardError";
    this.code = code;
    this.data = data;
  }

  /** Builds the error from an `~err` payload, tolerating malformed ones. */
  static fromWire(payload: unknown): SwitchboardError {
    if (isWireError(payload)) return new SwitchboardError(payload.code, payload.message, payload.data);
    return new SwitchboardError("FAILED", "malformed error reply", payload);
  }

  /** The `~err` payload for this error. */
  toWire(): WireError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** True for `{code: string, message: string}` shaped values. */
export function isWireError(value: unknown): value is WireError {
  if (typeof value !== "object" || value === null) return false;
  const v = value as { code?: unknown; message?: unknown };
  return typeof v.code === "string" && (typeof v.message === "string" || v.message === undefined);
}

/** Converts anything thrown by an application handler into a wire error (no stack traces leak). */
export function toWireError(err: unknown): WireError {
  if (err instanceof SwitchboardError) return err.toWire();
  if (isWireError(err) && /^[A-Z][A-Z0-9_]*$/.test(err.code)) {
    return { code: err.code, message: err.message ?? err.code, ...(err.data === undefined ? {} : { data: err.data }) };
  }
  return { code: "FAILED", message: "the client's handler failed" };
}

export const timeoutError = (what: string, ms: number): SwitchboardError =>
  new SwitchboardError("TIMEOUT", `${what} did not complete within ${ms} ms`);

export const disconnectedError = (why = "the connection dropped while waiting"): SwitchboardError =>
  new SwitchboardError("DISCONNECTED", why);
