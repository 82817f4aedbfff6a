/** Compile-time checks: the platform WebSocket constructors fit `WebSocketConstructor`. */
import assert from "node:assert/strict";
import { it } from "node:test";
import WebSocket from "ws";
import type { WebSocketConstructor } from "../../src/index.js";

it("accepts the ws package's and the browser's WebSocket constructors", () => {
  const fromWs: WebSocketConstructor = WebSocket;
  const fromDom: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
  assert.equal(typeof fromWs, "function");
  void fromDom;
});
