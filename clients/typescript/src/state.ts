/**
 * The client's explicit state machine. Every change goes through `transition`, which refuses
 * moves that the table below does not allow.
 *
 * ```
 * idle ──connect()──▶ connecting ──identified──▶ ready
 *                        │                        │ link lost (reconnecting close code)
 *                        ▼                        ▼
 *                     reconnecting ◀──────────────┘ ──identified──▶ ready
 *   any ──close() / final close code──▶ closed ──connect()──▶ connecting
 * ```
 */
import type { ClientState } from "./types.js";

const allowed: Readonly<Record<ClientState, readonly ClientState[]>> = {
  idle: ["connecting", "closed"],
  connecting: ["ready", "reconnecting", "closed"],
  ready: ["reconnecting", "closed"],
  reconnecting: ["ready", "closed"],
  closed: ["connecting"],
};

export class StateMachine {
  private current: ClientState = "idle";

  constructor(private readonly onChange: (to: ClientState, from: ClientState) => void) {}

  get state(): ClientState {
    return this.current;
  }

  /** True when `to` is reachable from the current state. */
  can(to: ClientState): boolean {
    return allowed[this.current].includes(to);
  }

  /** Moves to `to`; throws on a transition the table does not allow. */
  transition(to: ClientState): void {
    if (to === this.current) return;
    if (!this.can(to)) throw new Error(`invalid state transition ${this.current} → ${to}`);
    const from = this.current;
    this.current = to;
    this.onChange(to, from);
  }
}
