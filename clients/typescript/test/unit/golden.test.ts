/**
 * The shared golden vectors (`tests/golden/vectors.json`, generated from the Rust protocol
 * types): the TypeScript codecs must decode and encode every case to exactly the same bytes.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { jsonCodec, msgpackCodec } from "../../src/index.js";
import type { Message } from "../../src/index.js";

interface Case {
  name: string;
  message: unknown[];
  json: string;
  msgpack_hex: string;
}

const file = resolve(process.cwd(), "../../tests/golden/vectors.json");
const cases = JSON.parse(readFileSync(file, "utf8")) as Case[];

function asMessage(array: unknown[]): Message {
  const [type, payload, id] = array as [string, unknown, number | undefined];
  return id === undefined ? { type, payload } : { type, payload, id };
}

describe("golden vectors shared with the Rust code", () => {
  it("has cases", () => {
    assert.ok(cases.length >= 40, `only ${cases.length} cases in ${file}`);
  });

  for (const c of cases) {
    it(c.name, () => {
      const message = asMessage(c.message);
      assert.deepEqual(jsonCodec.decode(c.json), message, "JSON decode");
      assert.equal(jsonCodec.encode(message), c.json, "JSON encode");
      const bytes = new Uint8Array(Buffer.from(c.msgpack_hex, "hex"));
      assert.deepEqual(msgpackCodec.decode(bytes), message, "MessagePack decode");
      const encoded = msgpackCodec.encode(message) as Uint8Array;
      assert.equal(Buffer.from(encoded).toString("hex"), c.msgpack_hex, "MessagePack encode");
    });
  }
});
