/**
 * Heartbeat: sends `~ping` every interval and declares the link dead when one is not answered in
 * time. Browsers cannot see WebSocket pings, and a half-open TCP link can stay silent for
 * minutes, so this is how the client notices.
 */
import { SwitchboardError } from "./errors.js";
import { Timer, type Clock } from "./timer.js";

export class Heartbeat {
  private readonly timer: Timer;
  private generation = 0;
  private waiting = false;

  /**
   * `ping(timeoutMs)` sends one `~ping` and settles with its reply; `onDead` runs once when a
   * ping times out.
   */
  constructor(
    clock: Clock,
    private readonly ping: (timeoutMs: number) => Promise<unknown>,
    private readonly onDead: (reason: string) => void,
  ) {
    this.timer = new Timer(clock, () => this.beat());
  }

  private intervalMs = 0;
  private timeoutMs = 0;

  get running(): boolean {
    return this.timer.active || this.waiting;
  }

  start(intervalMs: number, timeoutMs: number): void {
    this.stop();
    if (!(intervalMs > 0)) return;
    this.intervalMs = intervalMs;
    this.timeoutMs = timeoutMs > 0 ? timeoutMs : intervalMs;
    this.timer.start(intervalMs);
  }

  stop(): void {
    this.generation++;
    this.waiting = false;
    this.timer.cancel();
  }

  private beat(): void {
    const generation = this.generation;
    this.waiting = true;
    this.timer.start(this.intervalMs);
    this.ping(this.timeoutMs).then(
      () => {
        if (generation === this.generation) this.waiting = false;
      },
      (err: unknown) => {
        if (generation !== this.generation) return;
        this.waiting = false;
        if (err instanceof SwitchboardError && err.code === "TIMEOUT") {
          this.stop();
          this.onDead(`no answer to ~ping within ${this.timeoutMs} ms`);
        }
      },
    );
  }
}
