/**
 * Pending requests: id allocation, timeouts, and settling by `~ok`/`~err` (Phoenix's `push.js`).
 * A request's timer starts when it is made, so time spent in the offline buffer counts.
 */
import { SwitchboardError, timeoutError } from "./errors.js";
import type { Clock, TimerHandle } from "./timer.js";
import type { AbortSignalLike, Id, Message } from "./types.js";

interface Pending {
  readonly type: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: SwitchboardError) => void;
  readonly timer: TimerHandle | undefined;
  readonly detach: () => void;
  /** True once the request was written to a socket. */
  sent: boolean;
}

export interface NewRequest<R> {
  readonly id: Id;
  readonly promise: Promise<R>;
}

export class PendingRequests {
  private lastId = 0;
  private readonly pending = new Map<Id, Pending>();

  /** `onDone(id)` runs whenever a request leaves the table (answered, timed out, aborted, failed). */
  constructor(
    private readonly clock: Clock,
    private readonly onDone: (id: Id) => void = () => undefined,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Allocates an id and a promise that settles on the reply, the timeout or the abort signal. */
  create<R>(type: string, timeoutMs: number, signal?: AbortSignalLike): NewRequest<R> {
    const id = this.nextId();
    const promise = new Promise<R>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new SwitchboardError("ABORTED", `request ${type} aborted`));
        return;
      }
      const timer = Number.isFinite(timeoutMs)
        ? this.clock.setTimeout(() => this.fail(id, timeoutError(`request ${type}`, timeoutMs)), timeoutMs)
        : undefined;
      const onAbort = () => this.fail(id, new SwitchboardError("ABORTED", `request ${type} aborted`));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        type,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer,
        sent: false,
        detach: () => signal?.removeEventListener("abort", onAbort),
      });
    });
    return { id, promise };
  }

  has(id: Id): boolean {
    return this.pending.has(id);
  }

  markSent(id: Id): void {
    const p = this.pending.get(id);
    if (p !== undefined) p.sent = true;
  }

  /** Settles the request a `~ok`/`~err` answers; false if no such request is waiting. */
  settle(reply: Message): boolean {
    if (reply.id === undefined) return false;
    const p = this.take(reply.id);
    if (p === undefined) return false;
    if (reply.type === "~ok") p.resolve(reply.payload);
    else p.reject(SwitchboardError.fromWire(reply.payload));
    return true;
  }

  /** Rejects one request. */
  fail(id: Id, err: SwitchboardError): void {
    this.take(id)?.reject(err);
  }

  /** Rejects the requests that went out on the connection that just dropped. */
  failSent(err: SwitchboardError): void {
    for (const [id, p] of [...this.pending]) if (p.sent) (this.take(id), p.reject(err));
  }

  /** Rejects everything (the client is closing for good). */
  failAll(err: SwitchboardError): void {
    for (const id of [...this.pending.keys()]) this.fail(id, err);
  }

  private take(id: Id): Pending | undefined {
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    if (p.timer !== undefined) this.clock.clearTimeout(p.timer);
    p.detach();
    this.onDone(id);
    return p;
  }

  private nextId(): Id {
    this.lastId = this.lastId >= Number.MAX_SAFE_INTEGER ? 1 : this.lastId + 1;
    return this.lastId;
  }
}
