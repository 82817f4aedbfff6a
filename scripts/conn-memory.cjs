// Server memory per connection, measured from the outside.
//
//   cargo build --release -p switchboard-fixture
//   target/release/switchboard-fixture --listen 127.0.0.1:0 &      # prints its port
//   (ulimit -n 20000; node scripts/conn-memory.cjs PORT PID N [bare|hello|full])
//
// or, for scenario S3 without the fixture's directory traffic:
//
//   cargo build --release -p switchboard --example conn_memory
//   target/release/examples/conn_memory 127.0.0.1:0 &               # prints its port
//   (ulimit -n 20000; node scripts/conn-memory.cjs PORT PID N [bare|topics|shared])
//
// Opens N connections (spread over source addresses 127.0.0.2–51) and reports the growth of the
// server's resident memory divided by N. `bare`: upgraded, nothing sent; `hello`: identified as
// uN (the fixture gives every user an alias, so each identification is also a directory change
// sent to every listed connection); `full`: identified and subscribed to two todo/ topics;
// `topics` (the conn_memory example, no alias, so no directory traffic): identified as uN and
// subscribed to two t/ topics, one shared by 1% of the connections, one of its own (so the
// figure includes the cost of one topic per connection); `shared`: the same with two shared
// topics (1% and 10% of the connections), i.e. the cost of a connection and its two
// subscriptions without that of any topic.
// Several runs at once (other PIDs, other source addresses) stay under 20,000 files each.
// Needs the `ws` package of clients/typescript (npm ci there first).
const path = require("path");
const fs = require("fs");
const WebSocket = require(path.join(__dirname, "../clients/typescript/node_modules/ws"));

const [port, pid, n, mode = "full"] = [process.argv[2], process.argv[3], Number(process.argv[4]), process.argv[5]];
const ours = mode === "topics" || mode === "shared";
const identity = (i) => (ours ? { user: `u${i}` } : { user: `u${i}`, password: `pw-u${i}` });
const topics = (i) =>
  mode === "topics" ? [`t/a${i % 100}`, `t/b${i}`]
  : mode === "shared" ? [`t/a${i % 100}`, `t/c${i % 10}`]
  : [`todo/a${i % 100}/x`, `todo/b/${i}`];
const rss = () => Number(fs.readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]) * 4096;

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { localAddress: `127.0.0.${2 + (i % 50)}` });
    ws.on("message", (d) => {
      const m = JSON.parse(d.toString());
      if (m[0] === "~ok" && m[2] === 1 && mode === "hello") return resolve(ws);
      if (m[0] === "~ok" && m[2] === 1) {
        ws.send(JSON.stringify(["~sub", { topic: topics(i)[0] }, 2]));
        ws.send(JSON.stringify(["~sub", { topic: topics(i)[1] }, 3]));
      }
      if (m[0] === "~ok" && m[2] === 3) resolve(ws);
      if (m[0] === "~err") reject(new Error(JSON.stringify(m)));
    });
    ws.on("open", () => {
      if (mode === "bare") return resolve(ws);
      ws.send(JSON.stringify(["~hello", { identity: identity(i) }, 1]));
    });
    ws.on("error", reject);
  });
}

(async () => {
  const before = rss();
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => open(i + j)));
  }
  // Shorter than the fixture's 2 s identification timeout, so `bare` connections are still open.
  await new Promise((r) => setTimeout(r, 300));
  const after = rss();
  console.log(JSON.stringify({ mode, connections: n, rss_before: before, rss_after: after,
    bytes_per_connection: Math.round((after - before) / n) }));
  process.exit(0);
})();
