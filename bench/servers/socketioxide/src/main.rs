//! socketioxide peer for the bench, "socketio" dialect (bench/DIALECTS.md):
//! `sub` joins a room and acks, `pub` emits `m` to the room, `echo` acks its payload.
//! WebSocket transport only; default heartbeat (pingInterval 25 s, pingTimeout 20 s).

use socketioxide::{
    SocketIo, TransportType,
    extract::{AckSender, Data, SocketRef},
};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "3000".into())
        .parse()
        .expect("port");

    let (layer, io) = SocketIo::builder()
        .transports([TransportType::Websocket])
        .build_layer();

    io.ns("/", async |socket: SocketRef| {
        socket.on("sub", async |socket: SocketRef, Data::<String>(topic), ack: AckSender| {
            socket.join(topic);
            // An ack without arguments (`43<id>[]`, like `ack()` in Socket.IO); `&()` would send `[null]`.
            ack.send(&[(); 0]).ok();
        });
        socket.on("pub", async |io: SocketIo, Data::<(String, String)>((topic, payload))| {
            io.to(topic).emit("m", &payload).await.ok();
        });
        socket.on("echo", async |Data::<String>(payload), ack: AckSender| {
            ack.send(&payload).ok();
        });
    });

    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("listening {}", listener.local_addr().unwrap().port());
    axum::serve(listener, app).await.unwrap();
}
