import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeMsgpack, encodeMsgpack, jsonCodec, msgpackCodec, SwitchboardError } from "../../src/index.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("JSON codec", () => {
  it("encodes events and requests", () => {
    assert.equal(jsonCodec.encode({ type: "add", payload: { a: 1 }, id: 3 }), '["add",{"a":1},3]');
    assert.equal(jsonCodec.encode({ type: "ping", payload: undefined }), '["ping",null]');
  });

  it("decodes and defaults a missing payload to null", () => {
    assert.deepEqual(jsonCodec.decode('["~ok",5,2]'), { type: "~ok", payload: 5, id: 2 });
    assert.deepEqual(jsonCodec.decode('["x"]'), { type: "x", payload: null });
  });

  it("refuses frames that are not messages", () => {
    for (const bad of ["nope", "{}", "[]", '[1,2]', '["",1]', '["a",1,0]', '["a",1,1.5]', '["a",1,2,3]', '["a",1,9007199254740992]']) {
      assert.throws(() => jsonCodec.decode(bad), (e: unknown) => e instanceof SwitchboardError && e.code === "PROTOCOL", bad);
    }
    assert.throws(() => jsonCodec.decode(new Uint8Array([0x91])), SwitchboardError);
  });
});

describe("MessagePack codec", () => {
  it("matches the specification's encodings", () => {
    assert.equal(hex(encodeMsgpack(null)), "c0");
    assert.equal(hex(encodeMsgpack(true)), "c3");
    assert.equal(hex(encodeMsgpack(127)), "7f");
    assert.equal(hex(encodeMsgpack(128)), "cc80");
    assert.equal(hex(encodeMsgpack(-1)), "ff");
    assert.equal(hex(encodeMsgpack(-33)), "d0df");
    assert.equal(hex(encodeMsgpack(65536)), "ce00010000");
    assert.equal(hex(encodeMsgpack(2 ** 40)), "cf0000010000000000");
    assert.equal(hex(encodeMsgpack(-(2 ** 40))), "d3ffffff0000000000");
    assert.equal(hex(encodeMsgpack(1.5)), "cb3ff8000000000000");
    assert.equal(hex(encodeMsgpack("hé")), "a368c3a9");
    assert.equal(hex(encodeMsgpack([1, "a"])), "9201a161");
    assert.equal(hex(encodeMsgpack({ a: 1 })), "81a16101");
    assert.equal(hex(encodeMsgpack(new Uint8Array([1, 2]))), "c4020102");
  });

  it("round-trips values of every size class", () => {
    const big = "x".repeat(70_000);
    const values: unknown[] = [
      null, false, 0, 1, -1, 255, 256, 65535, 65536, 2 ** 32, 2 ** 53 - 1, -(2 ** 31), -(2 ** 53 - 1), 0.1, -1e300,
      "", "a".repeat(31), "b".repeat(32), "c".repeat(300), big,
      Array.from({ length: 20 }, (_, i) => i), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
      { nested: { list: [1, { deep: ["x", null, true] }] }, unicode: "日本語 🎉" },
    ];
    for (const v of values) assert.deepEqual(decodeMsgpack(encodeMsgpack(v)), v);
  });

  it("encodes messages as arrays in binary frames", () => {
    const frame = msgpackCodec.encode({ type: "add", payload: { a: 1, b: 2 }, id: 7 });
    assert.ok(frame instanceof Uint8Array);
    assert.deepEqual(msgpackCodec.decode(frame), { type: "add", payload: { a: 1, b: 2 }, id: 7 });
  });

  it("refuses truncated, trailing or text frames", () => {
    assert.throws(() => decodeMsgpack(new Uint8Array([0x92, 0x01])), SwitchboardError);
    assert.throws(() => decodeMsgpack(new Uint8Array([0x01, 0x02])), SwitchboardError);
    assert.throws(() => decodeMsgpack(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), SwitchboardError);
    assert.throws(() => msgpackCodec.decode('["x"]'), SwitchboardError);
  });
});
