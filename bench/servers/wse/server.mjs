// `wse` 2.0.5 peer for the bench, "wse" dialect (bench/DIALECTS.md): wse is a wrapper around `ws` 7
// with a login step and a JSON message protocol ({"c": name, "dat": data}). It has no topics, only
// srv.broadcast to everyone, so topics are Sets of clients kept by the application, the way a wse
// user would add them; publish = client.send('m', payload) to each subscriber.
// Every client is let in (on_auth resolves a fresh id: WseServer allows one connection per id).
// Default settings: no heartbeat, permessage-deflate off (the ws 7 default).
import wse from 'wse';

const { WseServer } = wse;
const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const topics = new Map(); // topic -> Set<WseClientConnection>
let nextId = 0;

const srv = new WseServer({ host: '127.0.0.1', port }, (payload, resolve) =>
  resolve(String(++nextId)),
);

srv.on('m:sub', (client, topic) => {
  let subs = topics.get(topic);
  if (!subs) topics.set(topic, (subs = new Set()));
  subs.add(client);
  (client.meta.topics ??= new Set()).add(topic);
  client.send('k');
});

srv.on('m:pub', (client, [topic, payload]) => {
  const subs = topics.get(topic);
  if (subs) for (const sub of subs) sub.send('m', payload);
});

srv.on('m:echo', (client, dat) => {
  client.send('echo', dat);
});

srv.on('leave', (client) => {
  for (const topic of client.meta.topics ?? []) {
    const subs = topics.get(topic);
    subs.delete(client);
    if (subs.size === 0) topics.delete(topic);
  }
});

srv.init();
srv.ws_server.on('listening', () => {
  console.log(`listening ${srv.ws_server.address().port}`);
});
