import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StateMachine } from "../../src/state.js";
import type { ClientState } from "../../src/index.js";

describe("StateMachine", () => {
  it("follows the allowed transitions and reports each change", () => {
    const seen: string[] = [];
    const m = new StateMachine((to, from) => seen.push(`${from}>${to}`));
    const path: ClientState[] = ["connecting", "reconnecting", "ready", "reconnecting", "ready", "closed", "connecting", "ready"];
    for (const s of path) m.transition(s);
    assert.equal(m.state, "ready");
    assert.deepEqual(seen, [
      "idle>connecting", "connecting>reconnecting", "reconnecting>ready", "ready>reconnecting",
      "reconnecting>ready", "ready>closed", "closed>connecting", "connecting>ready",
    ]);
  });

  it("refuses transitions the table does not allow", () => {
    const m = new StateMachine(() => undefined);
    assert.throws(() => m.transition("ready"), /idle → ready/);
    m.transition("connecting");
    assert.equal(m.can("idle"), false);
    m.transition("closed");
    assert.throws(() => m.transition("reconnecting"));
  });

  it("ignores a transition to the current state", () => {
    let n = 0;
    const m = new StateMachine(() => n++);
    m.transition("connecting");
    m.transition("connecting");
    assert.equal(n, 1);
  });
});
