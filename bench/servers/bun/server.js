// Bun peer for the bench, "plain" dialect (bench/DIALECTS.md).
// Bun.serve websocket (uWebSockets inside): ws.subscribe(topic) and server.publish(topic, payload).
// Default Bun settings: idleTimeout 120 s with sendPings (Bun pings a connection shortly before the
// idle timeout and keeps it while the client answers), perMessageDeflate off. server.publish sends to
// every subscriber of the topic, the publishing connection included when it is subscribed.
// Over TLS (wss://, Bun's BoringSSL) when env TLS_CERT and TLS_KEY name PEM files (the certificate
// chain, the private key), as the bench's TLS scenarios start it: the Bun TLS guide's `tls` option.
const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const { TLS_CERT: cert, TLS_KEY: key } = process.env;
if (Boolean(cert) !== Boolean(key)) {
  console.error('TLS_CERT and TLS_KEY go together: set both or neither');
  process.exit(2);
}

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  ...(cert ? { tls: { cert: Bun.file(cert), key: Bun.file(key) } } : {}),
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
