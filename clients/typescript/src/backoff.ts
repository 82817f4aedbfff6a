/**
 * Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, base · factor^n)).
 * Spreads reconnecting clients so a restarted server is not hit by all of them at once.
 */

export interface BackoffOptions {
  /** Ceiling of the first delay in ms (default 500). */
  readonly initialDelayMs?: number;
  /** Cap of every delay in ms (default 30 000). */
  readonly maxDelayMs?: number;
  /** Growth of the ceiling per attempt (default 2). */
  readonly factor?: number;
  /** Source of randomness in [0, 1) (default `Math.random`). */
  readonly random?: () => number;
}

export class Backoff {
  private readonly initial: number;
  private readonly max: number;
  private readonly factor: number;
  private readonly random: () => number;
  private attempts = 0;

  constructor(options: BackoffOptions = {}) {
    this.initial = options.initialDelayMs ?? 500;
    this.max = options.maxDelayMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
    if (!(this.initial >= 0) || !(this.max >= 0) || !(this.factor >= 1)) {
      throw new RangeError("backoff needs initialDelayMs >= 0, maxDelayMs >= 0, factor >= 1");
    }
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The ceiling of the next delay (without jitter). */
  ceiling(): number {
    return Math.min(this.max, this.initial * this.factor ** this.attempts);
  }

  /** The next delay, and counts one more attempt. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempts++;
    return delay;
  }

  /** Back to the first attempt (after a successful connection). */
  reset(): void {
    this.attempts = 0;
  }
}
