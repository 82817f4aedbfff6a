/**
 * Runs the conformance fixture (`switchboard-fixture`, protocol.md appendix A) for integration
 * tests. Binary: $SWITCHBOARD_FIXTURE, else ../../target/debug/switchboard-fixture from the package.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { SwitchboardClient, type ClientOptions } from "../../src/index.js";

/** The package directory (build/test/support → ../../..). */
export const packageDir = fileURLToPath(new URL("../../../", import.meta.url));

export function fixtureBinary(): string {
  return process.env["SWITCHBOARD_FIXTURE"] ?? resolve(packageDir, "../../target/debug/switchboard-fixture");
}

export interface Fixture {
  readonly addr: string;
  readonly port: number;
  readonly url: string;
  readonly process: ChildProcess;
  /** Everything the fixture wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM (default) or SIGKILL, and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function once(port: number): Promise<Fixture> {
  const binary = fixtureBinary();
  if (!existsSync(binary)) {
    return Promise.reject(new Error(`fixture binary not found at ${binary} (build it: cargo build -p switchboard-fixture, or set SWITCHBOARD_FIXTURE)`));
  }
  const child = spawn(binary, ["--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    err += d;
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  return new Promise((resolvePromise, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`fixture did not print "listening on" within 15 s; stderr:\n${err}`));
    }, 15_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`fixture exited (${code ?? signal}) before listening; stderr:\n${err.slice(-2000)}`));
    });
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      const addr = m[1] as string;
      const p = Number(addr.slice(addr.lastIndexOf(":") + 1));
      resolvePromise({
        addr,
        port: p,
        url: `ws://${addr}/ws`,
        process: child,
        stderr: () => err,
        stop: async (signal = "SIGTERM") => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          const t = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(t);
        },
      });
    });
  });
}

/** Starts a fixture on `port` (0: any free port); retries a busy port for a few seconds. */
export async function startFixture(port = 0): Promise<Fixture> {
  let last: unknown;
  for (let i = 0; i < 20; i++) {
    try {
      return await once(port);
    } catch (e) {
      last = e;
      if (port === 0 || /not found/.test(String(e))) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw last;
}

/** The sockets each client opened (through its own `ws` subclass), so a test can kill its link. */
const socketsOf = new WeakMap<SwitchboardClient, WebSocket[]>();
/** Every text frame each client sent (`> …`) and received (`< …`). */
const framesLog = new WeakMap<SwitchboardClient, string[]>();

function recordingWebSocket(sockets: WebSocket[], frames: string[]) {
  return class RecordingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
      this.on("message", (data, isBinary) => frames.push(`< ${isBinary ? "(binary)" : String(data)}`));
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    override send(data: any, ...rest: any[]): void {
      frames.push(`> ${typeof data === "string" ? data : "(binary)"}`);
      (super.send as (...args: unknown[]) => void)(data, ...rest);
    }
  };
}

/** The frames a client exchanged so far (for assertions and for quoting in reports). */
export function framesOf(client: SwitchboardClient): string[] {
  return framesLog.get(client) ?? [];
}

/** Destroys the TCP socket under the client's current connection: the client sees 1006. */
export function dropLink(client: SwitchboardClient): void {
  const ws = (socketsOf.get(client) ?? []).filter((w) => w.readyState === WebSocket.OPEN).at(-1);
  if (ws === undefined) throw new Error("no open socket to drop");
  ws.terminate();
}

/** A client of the fixture identified as `user` (password identity). */
export function clientFor(fx: { url: string }, user: string, options: Partial<ClientOptions> = {}): SwitchboardClient {
  const sockets: WebSocket[] = [];
  const frames: string[] = [];
  const client = new SwitchboardClient({
    url: fx.url,
    WebSocket: recordingWebSocket(sockets, frames),
    identity: { user, password: `pw-${user}` },
    meta: { test: true },
    requestTimeoutMs: 5000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500, maxAttempts: 40 },
    ...options,
  });
  socketsOf.set(client, sockets);
  framesLog.set(client, frames);
  return client;
}

/** Resolves when `predicate` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function eventually(predicate: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for one event of an emitter-like `on`. */
export function next<T>(on: (listener: (v: T) => void) => () => void, timeoutMs = 5000, what = "event"): Promise<T> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => (off(), rej(new Error(`timed out waiting for ${what}`))), timeoutMs);
    const off = on((v) => {
      clearTimeout(t);
      off();
      res(v);
    });
  });
}
