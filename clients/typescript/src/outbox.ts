/**
 * The offline buffer: messages the application sent while the client was not ready, bounded so a
 * long outage cannot grow memory without limit. Requests keep their timeout while they wait
 * (their timer lives in `PendingRequests`); a request that times out leaves the buffer.
 */
import type { Id, Message } from "./types.js";

export class Outbox {
  private readonly queue: Message[] = [];

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.queue.length;
  }

  /** Queues a message; false when the buffer is full. */
  push(message: Message): boolean {
    if (this.queue.length >= this.capacity) return false;
    this.queue.push(message);
    return true;
  }

  /** Drops the queued request with this id (it timed out or was aborted). */
  remove(id: Id): void {
    const i = this.queue.findIndex((m) => m.id === id);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** Takes the messages that match, oldest first, leaving the others in order. */
  take(predicate: (message: Message) => boolean): Message[] {
    const taken = this.queue.filter(predicate);
    if (taken.length > 0) this.queue.splice(0, this.queue.length, ...this.queue.filter((m) => !predicate(m)));
    return taken;
  }

  /** Takes everything, oldest first. */
  drain(): Message[] {
    return this.queue.splice(0, this.queue.length);
  }

  clear(): void {
    this.queue.length = 0;
  }
}
