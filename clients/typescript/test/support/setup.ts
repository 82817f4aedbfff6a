/** A client wired to a fake transport and a fake clock. */
import { SwitchboardClient, type ClientOptions } from "../../src/index.js";
import { FakeClock, flush } from "./fake-clock.js";
import { FakeTransport } from "./fake-transport.js";

export function fakeClient(options: Partial<ClientOptions> = {}) {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  const client = new SwitchboardClient({
    url: "ws://test/ws",
    identity: { user: "ann", password: "pw-ann" },
    transport,
    clock,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000, random: () => 0.5 },
    ...options,
  });
  return { client, clock, transport };
}

/** Connects a fake client and accepts it; returns once it is ready. */
export async function readyClient(options: Partial<ClientOptions> = {}) {
  const setup = fakeClient(options);
  const welcome = setup.client.connect();
  await flush();
  setup.transport.last.accept();
  await welcome;
  return setup;
}
