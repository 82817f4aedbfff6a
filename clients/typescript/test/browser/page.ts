/** The test page: a tiny chat built on the browser bundle (ESM or IIFE). */

const style = `
  body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  .row { display: flex; gap: 24px; }
  section { border: 1px solid #ccc; border-radius: 6px; padding: 8px 12px; min-width: 230px; }
  h2 { font-size: 14px; margin: 4px 0; }
  #state { font-weight: bold; }
  li.me { font-weight: bold; }`;

const body = `
  <h1>Switchboard chat — <span id="who">?</span> (<span id="bundle"></span>)</h1>
  <p>state: <span id="state">idle</span></p>
  <div class="row">
    <section><h2>Messages in chat/browser</h2><ul id="messages"></ul></section>
    <section><h2>Here now (topic presence)</h2><ul id="presence"></ul></section>
    <section><h2>Directory</h2><ul id="directory"></ul></section>
    <section><h2>Direct messages</h2><ul id="dms"></ul></section>
  </div>`;

/** Runs in the page: uses window.SB (the bundle's exports). */
export const appJs = `
const SB = window.SB;
const $ = (id) => document.getElementById(id);
const item = (text, cls) => { const li = document.createElement("li"); li.textContent = text; if (cls) li.className = cls; return li; };
window.sbStart = async (url, user) => {
  $("who").textContent = user;
  const client = new SB.SwitchboardClient({
    url,
    identity: async () => ({ user, password: "pw-" + user }),
    meta: { agent: "chromium" },
  });
  window.client = client;
  client.on("state", ({ state }) => { $("state").textContent = state; });
  const welcome = await client.connect();
  const render = (el, peers) => {
    el.replaceChildren(...peers.map((p) => item(p.alias + " (" + p.user + ")", p.conn === welcome.conn ? "me" : "")));
  };
  const sub = await client.subscribe("chat/browser", (p) => {
    $("messages").append(item(p.data.from + ": " + p.data.text));
  });
  sub.presence.on("change", (peers) => render($("presence"), peers));
  client.directory.on("change", (peers) => render($("directory"), peers));
  await client.directory.sync();
  client.onDm((dm) => $("dms").append(item(dm.from.alias + " → me: " + dm.data)));
  window.sbSay = (text) => client.publish("chat/browser", { from: user, text }, { echo: true });
  window.sbDm = (alias, text) => client.dm({ alias }, text);
  window.sbAdd = (a, b) => client.call("add", { a, b }, { timeoutMs: 5000 });
  window.sbFail = () => client.call("fail").then(() => "no error", (e) => e.name + ":" + e.code + ":" + e.message);
  return welcome.conn;
};
window.sbReady = true;
`;

export function page(bundle: "esm" | "iife"): string {
  const load =
    bundle === "esm"
      ? `<script type="module">import * as SB from "/dist/switchboard.esm.js"; window.SB = SB;</script>`
      : `<script src="/dist/switchboard.iife.js"></script><script>window.SB = Switchboard;</script>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>Switchboard ${bundle}</title><style>${style}</style></head>
<body>${body}${load}<script type="module">document.getElementById("bundle").textContent = "${bundle} bundle";</script>
<script type="module" src="/app.js"></script></body></html>`;
}
