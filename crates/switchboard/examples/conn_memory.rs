//! A server for measuring memory per connection (`scripts/conn-memory.cjs`, modes `bare` and
//! `topics`): `Switchboard::serve` on its own listener, identification as `{"user": U}` with no
//! alias (so no directory traffic), topics `t/{x}` open to subscribers, heartbeats every 25 s.
//!
//! ```text
//! cargo run --release -p switchboard --example conn_memory -- 127.0.0.1:0   # prints its port
//! ```

use serde::Deserialize;
use switchboard::{Accept, Error, Namespace, Payload, Server, TopicOptions};

#[derive(Deserialize)]
struct Identity {
    user: String,
}

async fn identify(Payload(id): Payload<Identity>) -> Result<Accept, Error> {
    Ok(Accept::user(id.user))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let mut config = switchboard::Config::default();
    // Long enough that `bare` connections stay open while they are counted.
    config.identify_timeout = std::time::Duration::from_secs(600);
    let main = Namespace::new("main").identify(identify).topic("t/{x}", TopicOptions::new());
    let board = Server::new().config(config).namespace(main).build().await.expect("valid configuration");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    board.serve(listener).await
}
