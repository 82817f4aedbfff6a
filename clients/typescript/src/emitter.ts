/**
 * A small typed event emitter: `on`/`once` return an unsubscribe function.
 */

/** Maps event names to their payload types. */
export type EventMap = { [event: string]: unknown };

export type Listener<T> = (payload: T) => void;

export class Emitter<M extends EventMap> {
  private readonly listeners = new Map<keyof M, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof M>(event: K, listener: Listener<M[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Number of listeners of an event. */
  listenerCount(event: keyof M): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /**
   * Calls every listener of `event`. A throwing listener does not stop the others nor the
   * client: its error is rethrown as an unhandled rejection so it is still seen.
   */
  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<M[K]>)(payload);
      } catch (err) {
        void Promise.reject(err);
      }
    }
  }

  removeAll(): void {
    this.listeners.clear();
  }
}
