/**
 * The application's handlers for what the server sends: events (`[name, payload]`) and requests
 * (`[name, payload, id]`). A request with no request handler but with event handlers is an
 * acknowledged delivery; with neither it is answered `NOT_FOUND` (protocol §4).
 */
import { toWireError } from "./errors.js";
import type { EventHandler, IncomingContext, RequestHandler, WireError } from "./types.js";

export type Answer = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: WireError };

export class Handlers {
  private readonly events = new Map<string, Set<EventHandler>>();
  private readonly requests = new Map<string, RequestHandler>();

  /** Adds an event handler; returns a function that removes it. */
  onEvent<T>(type: string, handler: EventHandler<T>): () => void {
    let set = this.events.get(type);
    if (set === undefined) this.events.set(type, (set = new Set()));
    set.add(handler as EventHandler);
    return () => {
      set.delete(handler as EventHandler);
      if (set.size === 0 && this.events.get(type) === set) this.events.delete(type);
    };
  }

  /** Sets the one request handler of a type (replacing any previous one). */
  handle<T, R>(type: string, handler: RequestHandler<T, R>): () => void {
    this.requests.set(type, handler as RequestHandler);
    return () => {
      if (this.requests.get(type) === handler) this.requests.delete(type);
    };
  }

  hasEvent(type: string): boolean {
    return this.events.has(type);
  }

  hasRequest(type: string): boolean {
    return this.requests.has(type);
  }

  /** Runs the event handlers; a throwing handler does not stop the others (its error is rethrown asynchronously). */
  dispatchEvent(payload: unknown, ctx: IncomingContext): void {
    for (const handler of [...(this.events.get(ctx.type) ?? [])]) {
      try {
        handler(payload, ctx);
      } catch (err) {
        void Promise.reject(err);
      }
    }
  }

  /** Runs the request handler and turns its outcome into a reply. */
  async answer(payload: unknown, ctx: IncomingContext): Promise<Answer> {
    const handler = this.requests.get(ctx.type);
    if (handler === undefined) {
      return { ok: false, error: { code: "NOT_FOUND", message: `no handler for ${ctx.type}`, data: { type: ctx.type } } };
    }
    try {
      return { ok: true, result: (await handler(payload, ctx)) ?? null };
    } catch (err) {
      return { ok: false, error: toWireError(err) };
    }
  }
}
