/**
 * `switchboard.v1.msgpack`: binary frames of MessagePack with the same structure as JSON.
 * A small self-contained MessagePack implementation (no runtime dependencies): nil, booleans,
 * integers (up to 64 bits, decoded to numbers), float32/64, str, bin (as Uint8Array), array, map
 * (string-keyed objects). Extension types are rejected.
 */
import { toArray, toMessage, type Codec } from "./codec.js";
import { SwitchboardError } from "./errors.js";

interface Utf8 {
  encode(s: string): Uint8Array;
  decode(b: Uint8Array): string;
}
const g = globalThis as unknown as {
  TextEncoder: new () => { encode(s: string): Uint8Array };
  TextDecoder: new (label?: string, options?: { fatal?: boolean }) => { decode(b: Uint8Array): string };
};
let utf8: Utf8 | undefined;
function text(): Utf8 {
  if (utf8 === undefined) {
    const enc = new g.TextEncoder();
    const dec = new g.TextDecoder("utf-8", { fatal: true });
    utf8 = { encode: (s) => enc.encode(s), decode: (b) => dec.decode(b) };
  }
  return utf8;
}

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }
  u64(v: number): void {
    this.u32(Math.floor(v / 2 ** 32));
    this.u32(v >>> 0);
  }
  i64(v: number): void {
    this.ensure(8);
    this.view.setBigInt64(this.pos, BigInt(v));
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function writeLength(w: Writer, n: number, fix: number, fixMax: number, c8: number | null, c16: number, c32: number): void {
  if (n <= fixMax) w.u8(fix | n);
  else if (c8 !== null && n <= 0xff) (w.u8(c8), w.u8(n));
  else if (n <= 0xffff) (w.u8(c16), w.u16(n));
  else (w.u8(c32), w.u32(n));
}

function writeNumber(w: Writer, v: number): void {
  if (!Number.isSafeInteger(v)) return (w.u8(0xcb), w.f64(v));
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v <= 0xff) (w.u8(0xcc), w.u8(v));
    else if (v <= 0xffff) (w.u8(0xcd), w.u16(v));
    else if (v <= 0xffffffff) (w.u8(0xce), w.u32(v));
    else (w.u8(0xcf), w.u64(v));
  } else if (v >= -32) w.u8(v & 0xff);
  else if (v >= -0x80) (w.u8(0xd0), w.u8(v & 0xff));
  else if (v >= -0x8000) (w.u8(0xd1), w.u16(v & 0xffff));
  else if (v >= -0x80000000) (w.u8(0xd2), w.u32(v >>> 0));
  else (w.u8(0xd3), w.i64(v));
}

function write(w: Writer, v: unknown, depth: number): void {
  if (depth > 512) throw new SwitchboardError("BAD_REQUEST", "value nested too deeply for MessagePack");
  if (v === null || v === undefined) return w.u8(0xc0);
  switch (typeof v) {
    case "boolean":
      return w.u8(v ? 0xc3 : 0xc2);
    case "number":
      return writeNumber(w, v);
    case "bigint":
      return writeNumber(w, Number(v));
    case "string": {
      const b = text().encode(v);
      writeLength(w, b.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
      return w.bytes(b);
    }
    case "object":
      break;
    default:
      throw new SwitchboardError("BAD_REQUEST", `cannot encode a ${typeof v} as MessagePack`);
  }
  if (v instanceof Uint8Array) {
    writeLength(w, v.length, 0, -1, 0xc4, 0xc5, 0xc6);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    writeLength(w, v.length, 0x90, 15, null, 0xdc, 0xdd);
    for (const item of v) write(w, item, depth + 1);
    return;
  }
  const maybeJson = v as { toJSON?: () => unknown };
  if (typeof maybeJson.toJSON === "function") return write(w, maybeJson.toJSON(), depth + 1);
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  writeLength(w, entries.length, 0x80, 15, null, 0xde, 0xdf);
  for (const [k, x] of entries) {
    write(w, k, depth + 1);
    write(w, x, depth + 1);
  }
}

/** Encodes one value as MessagePack. */
export function encodeMsgpack(value: unknown): Uint8Array {
  const w = new Writer();
  write(w, value, 0);
  return w.result();
}

class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new SwitchboardError("PROTOCOL", "truncated MessagePack frame");
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  num(kind: "u16" | "u32" | "i8" | "i16" | "i32" | "f32" | "f64" | "u64" | "i64"): number {
    const size = { u16: 2, u32: 4, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8, u64: 8, i64: 8 }[kind];
    this.need(size);
    const p = this.pos;
    this.pos += size;
    const d = this.view;
    switch (kind) {
      case "u16": return d.getUint16(p);
      case "u32": return d.getUint32(p);
      case "i8": return d.getInt8(p);
      case "i16": return d.getInt16(p);
      case "i32": return d.getInt32(p);
      case "f32": return d.getFloat32(p);
      case "f64": return d.getFloat64(p);
      case "u64": return Number(d.getBigUint64(p));
      case "i64": return Number(d.getBigInt64(p));
    }
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

function read(r: Reader, depth: number): unknown {
  if (depth > 512) throw new SwitchboardError("PROTOCOL", "MessagePack value nested too deeply");
  const b = r.u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return text().decode(r.bytes(b & 0x1f));
  if (b >= 0x90 && b <= 0x9f) return readArray(r, b & 0x0f, depth);
  if (b >= 0x80 && b <= 0x8f) return readMap(r, b & 0x0f, depth);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.bytes(r.u8());
    case 0xc5: return r.bytes(r.num("u16"));
    case 0xc6: return r.bytes(r.num("u32"));
    case 0xca: return r.num("f32");
    case 0xcb: return r.num("f64");
    case 0xcc: return r.u8();
    case 0xcd: return r.num("u16");
    case 0xce: return r.num("u32");
    case 0xcf: return r.num("u64");
    case 0xd0: return r.num("i8");
    case 0xd1: return r.num("i16");
    case 0xd2: return r.num("i32");
    case 0xd3: return r.num("i64");
    case 0xd9: return text().decode(r.bytes(r.u8()));
    case 0xda: return text().decode(r.bytes(r.num("u16")));
    case 0xdb: return text().decode(r.bytes(r.num("u32")));
    case 0xdc: return readArray(r, r.num("u16"), depth);
    case 0xdd: return readArray(r, r.num("u32"), depth);
    case 0xde: return readMap(r, r.num("u16"), depth);
    case 0xdf: return readMap(r, r.num("u32"), depth);
    default:
      throw new SwitchboardError("PROTOCOL", `unsupported MessagePack type 0x${b.toString(16)}`);
  }
}

function readArray(r: Reader, n: number, depth: number): unknown[] {
  r.need(n); // every element takes at least one byte: refuses absurd lengths early
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) out[i] = read(r, depth + 1);
  return out;
}

function readMap(r: Reader, n: number, depth: number): Record<string, unknown> {
  r.need(n * 2);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = read(r, depth + 1);
    if (typeof k !== "string" && typeof k !== "number") throw new SwitchboardError("PROTOCOL", "MessagePack map key must be a string");
    const v = read(r, depth + 1);
    if (k === "__proto__") Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[String(k)] = v;
  }
  return out;
}

/** Decodes one MessagePack value; the whole buffer must be consumed. */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  let value: unknown;
  try {
    value = read(r, 0);
  } catch (e) {
    if (e instanceof SwitchboardError) throw e;
    throw new SwitchboardError("PROTOCOL", "invalid MessagePack frame");
  }
  if (r.pos !== bytes.length) throw new SwitchboardError("PROTOCOL", "trailing bytes after the MessagePack value");
  return value;
}

/** `switchboard.v1.msgpack`. */
export const msgpackCodec: Codec = {
  subprotocol: "switchboard.v1.msgpack",
  binary: true,
  encode: (message) => encodeMsgpack(toArray(message)),
  decode(frame) {
    if (typeof frame === "string") throw new SwitchboardError("PROTOCOL", "text frame on a MessagePack connection");
    return toMessage(decodeMsgpack(frame));
  },
};
