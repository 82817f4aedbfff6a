// Socket.IO 4.8 peer for the bench, "socketio" dialect (bench/DIALECTS.md).
// Rooms are topics; WebSocket transport only; default heartbeat (pingInterval 25 s, pingTimeout 20 s).
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);

const httpServer = createServer();
const io = new Server(httpServer, { transports: ['websocket'] });

io.on('connection', (socket) => {
  socket.on('sub', (topic, ack) => {
    socket.join(topic);
    ack();
  });
  socket.on('pub', (topic, payload) => {
    io.to(topic).emit('m', payload);
  });
  socket.on('echo', (payload, ack) => {
    ack(payload);
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  console.log(`listening ${httpServer.address().port}`);
});
