import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, shouldReconnect } from "../../src/index.js";

describe("Backoff (full jitter)", () => {
  it("grows the ceiling exponentially up to the cap", () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2, random: () => 0.999999 });
    const delays = Array.from({ length: 7 }, () => b.next());
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999, 999]);
    assert.equal(b.attempt, 7);
  });

  it("draws uniformly below the ceiling", () => {
    const values = [0, 0.25, 0.5];
    const b = new Backoff({ initialDelayMs: 400, random: () => values.shift() ?? 0 });
    assert.deepEqual([b.next(), b.next(), b.next()], [0, 200, 800]);
  });

  it("stays within [0, ceiling) with Math.random", () => {
    const b = new Backoff({ initialDelayMs: 50, maxDelayMs: 3000 });
    for (let i = 0; i < 200; i++) {
      const ceiling = b.ceiling();
      const d = b.next();
      assert.ok(d >= 0 && d < ceiling, `${d} not in [0, ${ceiling})`);
    }
  });

  it("starts over after reset", () => {
    const b = new Backoff({ initialDelayMs: 100, random: () => 0.5 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.attempt, 0);
    assert.equal(b.next(), 50);
  });

  it("refuses nonsense options", () => {
    assert.throws(() => new Backoff({ factor: 0.5 }), RangeError);
    assert.throws(() => new Backoff({ initialDelayMs: -1 }), RangeError);
  });
});

describe("close-code policy", () => {
  it("reconnects for 4000-4499 and link failures, stops otherwise", () => {
    for (const code of [4000, 4001, 4002, 4003, 4499, 1001, 1006, 1005, 1012]) assert.equal(shouldReconnect(code), true, String(code));
    for (const code of [1000, 1002, 1009, 4500, 4501, 4502, 4503, 4504, 4999]) assert.equal(shouldReconnect(code), false, String(code));
  });
});
