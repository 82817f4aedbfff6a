// Checks every installed peer server over real sockets (run from anywhere after
// scripts/install-peers.sh):
//
//   node bench/servers/check.mjs [--quick] [peer ...]
//
// For each peer in bench/peers/peers.json (or only those named): starts its cmd exactly as
// listed (cwd = repository root, env PORT=<free port>), waits for exactly `listening <port>`,
// checks that the started PID is not a shell, subscribes 3 clients to a topic (a 4th client is
// subscribed to another topic only), publishes from one subscriber, checks that the 3 got the
// payload exactly once and byte for byte and the 4th got nothing, checks echo (plain, wse) / ack
// (socketio, in raw Engine.IO v4 frames), and for socketio peers that long-polling is refused and
// (unless --quick) that the server pings and the connection survives the client's pong. Kills the
// server. Exits non-zero on any mismatch.
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.filter((a) => !a.startsWith('--'));
const peers = JSON.parse(readFileSync(path.join(ROOT, 'bench/peers/peers.json'), 'utf8'));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TIMEOUT = 5000;

class Mismatch extends Error {}
function expect(cond, what) {
  if (!cond) throw new Mismatch(what);
}
function expectEq(got, want, what) {
  if (got !== want) throw new Mismatch(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// A client that queues every text frame it receives, so tests can await the next one.
class Client {
  constructor(url, protocols) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(url, protocols);
    this.ws.on('message', (data, isBinary) => {
      const frame = isBinary ? `<binary ${data.length} bytes>` : data.toString();
      if (this.onFrame && this.onFrame(frame)) return; // consumed (e.g. an Engine.IO ping)
      this.frames.push(frame);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.closed = new Promise((r) => this.ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      setTimeout(() => reject(new Mismatch('connect timeout')), TIMEOUT);
    });
  }
  async next(what, ms = TIMEOUT) {
    const deadline = Date.now() + ms;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Mismatch(`timeout waiting for ${what}`);
      await Promise.race([new Promise((r) => this.waiters.push(r)), sleep(left)]);
    }
    return this.frames.shift();
  }
  send(s) {
    this.ws.send(s);
  }
  close() {
    this.ws.terminate();
  }
}

const PAYLOAD = '#0000000042#' + 'x'.repeat(88); // 100 bytes, like S1
const ODD_PAYLOAD = 'two words  and "quotes" \\ é ✓'; // spaces, JSON escapes, non-ASCII

// --- plain -------------------------------------------------------------------------------------
async function checkPlain(port) {
  const url = `ws://127.0.0.1:${port}/`;
  const subs = [new Client(url), new Client(url), new Client(url)];
  const other = new Client(url);
  const all = [...subs, other];
  try {
    await Promise.all(all.map((c) => c.open()));
    for (const c of subs) c.send('st1');
    other.send('st2');
    for (const c of all) expectEq(await c.next('subscribe reply'), 'k', 'subscribe reply');

    for (const payload of [PAYLOAD, ODD_PAYLOAD]) {
      subs[0].send(`pt1 ${payload}`); // the publisher is a subscriber: it gets it too
      for (const [i, c] of subs.entries()) expectEq(await c.next(`publication on subscriber ${i}`), payload, `publication on subscriber ${i}`);
    }
    other.send(`pt2 ${PAYLOAD}`);
    expectEq(await other.next('publication on t2'), PAYLOAD, 'publication on t2 (sender subscribed)');

    for (const [i, c] of all.entries()) {
      for (const req of [`e${i}`, `e ${ODD_PAYLOAD}`, `e${PAYLOAD}`]) {
        c.send(req);
        expectEq(await c.next('echo'), req, `echo on client ${i}`);
      }
    }
    await sleep(300);
    for (const [i, c] of all.entries()) expectEq(c.frames.length, 0, `client ${i}: extra frames ${JSON.stringify(c.frames)}`);
    return 'subscribe ×4, publish ×3 to 3 subscribers (+ isolation of another topic), echo ×12: exact';
  } finally {
    all.forEach((c) => c.close());
  }
}

// --- wse (JSON {"c","dat"} messages after a login; see DIALECTS.md) ---------------------------
async function checkWse(port) {
  const url = `ws://127.0.0.1:${port}/`;
  // Without the subprotocol the server must refuse.
  const bad = new Client(url);
  await bad.open();
  const badClose = await Promise.race([bad.closed, sleep(TIMEOUT).then(() => null)]);
  expect(badClose && badClose.reason === 'wse-invalid-protocol', `no subprotocol: want close 'wse-invalid-protocol', got ${JSON.stringify(badClose)}`);

  const mk = () => new Client(url, 'wse-default-json');
  const subs = [mk(), mk(), mk()];
  const other = mk();
  const all = [...subs, other];
  try {
    await Promise.all(all.map((c) => c.open()));
    for (const c of all) c.send(JSON.stringify({ c: 'hi', dat: { payload: {} } }));
    for (const c of all) expectEq(await c.next('welcome'), '{"c":"welcome"}', 'welcome');
    for (const c of subs) c.send('{"c":"sub","dat":"t1"}');
    other.send('{"c":"sub","dat":"t2"}');
    for (const c of all) expectEq(await c.next('subscribe reply'), '{"c":"k"}', 'subscribe reply');

    for (const payload of [PAYLOAD, ODD_PAYLOAD]) {
      subs[0].send(JSON.stringify({ c: 'pub', dat: ['t1', payload] }));
      const want = JSON.stringify({ c: 'm', dat: payload });
      for (const [i, c] of subs.entries()) expectEq(await c.next(`publication on subscriber ${i}`), want, `publication on subscriber ${i}`);
    }
    for (const [i, c] of all.entries()) {
      for (const dat of [`${i}`, ODD_PAYLOAD, PAYLOAD]) {
        c.send(JSON.stringify({ c: 'echo', dat }));
        expectEq(await c.next('echo'), JSON.stringify({ c: 'echo', dat }), `echo on client ${i}`);
      }
    }
    await sleep(300);
    for (const [i, c] of all.entries()) expectEq(c.frames.length, 0, `client ${i}: extra frames ${JSON.stringify(c.frames)}`);
    return 'subprotocol required, login ×4, subscribe ×4, publish ×2 to 3 subscribers (+ isolation), echo ×12: exact';
  } finally {
    all.forEach((c) => c.close());
  }
}

// --- socketio (raw Engine.IO v4 / Socket.IO v5 packets) ---------------------------------------
async function checkSocketio(port) {
  // Long-polling must be refused.
  const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`);
  await res.arrayBuffer();
  expect(res.status >= 400, `long-polling handshake answered ${res.status}, want an error status`);

  const url = `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`;
  const mk = () => {
    const c = new Client(url);
    c.pings = 0;
    c.onFrame = (f) => {
      if (f !== '2') return false;
      c.pings++;
      c.send('3');
      return true;
    };
    return c;
  };
  const subs = [mk(), mk(), mk()];
  const other = mk();
  const all = [...subs, other];
  let open;
  try {
    await Promise.all(all.map((c) => c.open()));
    for (const c of all) {
      const f = await c.next('Engine.IO open packet');
      expect(f[0] === '0', `open packet: ${f}`);
      open = JSON.parse(f.slice(1));
      expectEq(open.pingInterval, 25000, 'pingInterval');
      expectEq(open.pingTimeout, 20000, 'pingTimeout');
      expectEq(JSON.stringify(open.upgrades), '[]', 'upgrades');
      c.send('40');
      const connect = await c.next('Socket.IO connect');
      expect(connect.startsWith('40{') && typeof JSON.parse(connect.slice(2)).sid === 'string', `connect: ${connect}`);
    }
    for (const [i, c] of subs.entries()) c.send(`42${i + 1}["sub","t1"]`);
    other.send('427["sub","t2"]');
    for (const [i, c] of subs.entries()) expectEq(await c.next('sub ack'), `43${i + 1}[]`, 'sub ack');
    expectEq(await other.next('sub ack'), '437[]', 'sub ack');

    for (const payload of [PAYLOAD, ODD_PAYLOAD]) {
      subs[0].send(`42${JSON.stringify(['pub', 't1', payload])}`);
      const want = `42${JSON.stringify(['m', payload])}`;
      for (const [i, c] of subs.entries()) expectEq(await c.next(`publication on subscriber ${i}`), want, `publication on subscriber ${i}`);
    }
    for (const [i, c] of all.entries()) {
      for (const [n, payload] of [`${i}`, ODD_PAYLOAD, PAYLOAD].entries()) {
        const ack = 100 + n;
        c.send(`42${ack}${JSON.stringify(['echo', payload])}`);
        expectEq(await c.next('echo ack'), `43${ack}${JSON.stringify([payload])}`, `echo ack on client ${i}`);
      }
    }
    await sleep(300);
    for (const [i, c] of all.entries()) expectEq(c.frames.length, 0, `client ${i}: extra frames ${JSON.stringify(c.frames)}`);
    let heartbeat = 'heartbeat not waited for (--quick)';
    if (!quick) {
      // Wait for a server ping on every connection (pingInterval), answered by the client,
      // then check the connections still work after pingTimeout would have run out.
      const deadline = Date.now() + open.pingInterval + 5000;
      while (all.some((c) => c.pings === 0) && Date.now() < deadline) await sleep(100);
      for (const [i, c] of all.entries()) expect(c.pings > 0, `client ${i}: no ping within pingInterval + 5 s`);
      await sleep(1000);
      for (const [i, c] of all.entries()) {
        c.send(`42999["echo","alive"]`);
        expectEq(await c.next('echo ack after ping'), '43999["alive"]', `echo after ping on client ${i}`);
      }
      heartbeat = `ping "2" received and answered "3" on 4 connections, still alive`;
    }
    return `polling refused (${res.status}), open packet ok, connect ×4, sub acks ×4, publish ×2 to 3 subscribers (+ isolation), echo acks ×12: exact; ${heartbeat}`;
  } finally {
    all.forEach((c) => c.close());
  }
}

const CHECKS = { plain: checkPlain, socketio: checkSocketio, wse: checkWse };

async function startPeer(name, peer) {
  const port = await freePort();
  const [cmd, ...argv] = peer.cmd;
  const child = spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const ready = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`no "listening ${port}" within 30 s`), 30000);
    child.on('exit', (code, sig) => resolve(`exited (${code ?? sig}) before listening`));
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out === `listening ${port}\n` ? null : `first stdout line ${JSON.stringify(out)}, want "listening ${port}\\n"`);
      }
    });
  });
  return { child, port, ready, stdout: () => out, stderr: () => err };
}

let failures = 0;
for (const [name, peer] of Object.entries(peers)) {
  if (only.length && !only.includes(name)) continue;
  if (!peer.installed) {
    console.log(`SKIP ${name}: not installed: ${peer.why}`);
    continue;
  }
  const t0 = Date.now();
  const p = await startPeer(name, peer);
  try {
    if (p.ready) throw new Mismatch(p.ready);
    const exe = readlinkSync(`/proc/${p.child.pid}/exe`);
    expect(!/\/(ba|da)?sh$/.test(exe), `PID ${p.child.pid} is a shell (${exe}), not the server`);
    const summary = await CHECKS[peer.dialect](p.port);
    expectEq(p.stdout(), `listening ${p.port}\n`, 'stdout (nothing but the listening line)');
    expect(p.child.exitCode === null, 'server exited during the check');
    console.log(`PASS ${name} (${peer.dialect}, ${peer.version}, pid ${p.child.pid} = ${path.basename(exe)}, ${Date.now() - t0} ms): ${summary}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name} (${peer.dialect}): ${e instanceof Mismatch ? e.message : e.stack}`);
    if (p.stderr()) console.log(`  server stderr: ${p.stderr().trim().split('\n').join('\n  ')}`);
  } finally {
    p.child.kill('SIGKILL');
  }
}
process.exit(failures ? 1 : 0);
