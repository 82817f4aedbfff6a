/**
 * Time, injectable: the client never calls the global timers directly, so tests drive it with a
 * fake clock instead of sleeping.
 */

/** Opaque handle returned by `Clock.setTimeout`. */
export type TimerHandle = unknown;

/** The timer functions the client uses. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Milliseconds, monotonic enough for measuring delays. */
  now(): number;
}

interface GlobalTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The platform's timers (`setTimeout`/`clearTimeout`, `Date.now`). */
export const systemClock: Clock = {
  setTimeout: (fn, ms) => (globalThis as unknown as GlobalTimers).setTimeout(fn, ms),
  clearTimeout: (handle) => (globalThis as unknown as GlobalTimers).clearTimeout(handle),
  now: () => Date.now(),
};

/** A restartable one-shot timer (Phoenix's `timer.js`, without the retry logic). */
export class Timer {
  private handle: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly callback: () => void,
  ) {}

  /** True while a callback is scheduled. */
  get active(): boolean {
    return this.handle !== undefined;
  }

  /** (Re)schedules the callback `ms` from now. */
  start(ms: number): void {
    this.cancel();
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined;
      this.callback();
    }, ms);
  }

  cancel(): void {
    if (this.handle !== undefined) {
      this.clock.clearTimeout(this.handle);
      this.handle = undefined;
    }
  }
}
