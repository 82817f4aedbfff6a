// Node `ws` 8 peer for the bench, "plain" dialect (bench/DIALECTS.md).
// Topics are Sets of sockets; publish = ws.send(payload) to each subscriber.
// Default `ws` settings (permessage-deflate off, no connection limit) plus the heartbeat from the
// ws README ("How to detect and close broken connections?"): every 30 s each connection that did not
// answer the previous ping is terminated, the others are pinged.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const topics = new Map(); // topic -> Set<WebSocket>

const wss = new WebSocketServer({ host: '127.0.0.1', port });

function heartbeat() {
  this.isAlive = true;
}

const interval = setInterval(() => {
  for (const ws of wss.clients) {
    if (ws.isAlive === false) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, 30000);

wss.on('close', () => clearInterval(interval));

wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.on('pong', heartbeat);
  const subscribed = new Set();
  ws.on('message', (data, isBinary) => {
    const msg = data.toString();
    switch (msg[0]) {
      case 's': {
        const topic = msg.slice(1);
        let subs = topics.get(topic);
        if (!subs) topics.set(topic, (subs = new Set()));
        subs.add(ws);
        subscribed.add(topic);
        ws.send('k');
        break;
      }
      case 'p': {
        const space = msg.indexOf(' ');
        if (space < 0) break;
        const subs = topics.get(msg.slice(1, space));
        if (!subs) break;
        const payload = msg.slice(space + 1);
        for (const sub of subs) sub.send(payload);
        break;
      }
      case 'e':
        ws.send(data, { binary: isBinary });
        break;
    }
  });
  ws.on('close', () => {
    for (const topic of subscribed) {
      const subs = topics.get(topic);
      subs.delete(ws);
      if (subs.size === 0) topics.delete(topic);
    }
  });
});

wss.on('listening', () => {
  console.log(`listening ${wss.address().port}`);
});
