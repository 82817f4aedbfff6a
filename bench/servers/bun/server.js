// Bun peer for the bench, "plain" dialect (bench/DIALECTS.md).
// Bun.serve websocket (uWebSockets inside): ws.subscribe(topic) and server.publish(topic, payload).
// Default Bun settings: idleTimeout 120 s with sendPings (Bun pings a connection shortly before the
// idle timeout and keeps it while the client answers), perMessageDeflate off. server.publish sends to
// every subscriber of the topic, the publishing connection included when it is subscribed.
const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response('WebSocket only', { status: 426 });
  },
  websocket: {
    message(ws, message) {
      const msg = typeof message === 'string' ? message : message.toString();
      switch (msg[0]) {
        case 's':
          ws.subscribe(msg.slice(1));
          ws.send('k');
          break;
        case 'p': {
          const space = msg.indexOf(' ');
          if (space < 0) break;
          server.publish(msg.slice(1, space), msg.slice(space + 1));
          break;
        }
        case 'e':
          ws.send(message);
          break;
      }
    },
  },
});

console.log(`listening ${server.port}`);
