/**
 * Remembers the ids of the latest acknowledged deliveries of one connection, so that a resend
 * (same id) is acknowledged again but not delivered twice. Bounded: the oldest ids are forgotten.
 */
import type { Id } from "./types.js";

export class RecentIds {
  private readonly ids = new Set<Id>();

  constructor(private readonly capacity = 1024) {}

  /** Records `id`; returns false if it was already there (a duplicate). */
  add(id: Id): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (oldest.done !== true) this.ids.delete(oldest.value);
    }
    return true;
  }

  clear(): void {
    this.ids.clear();
  }
}
