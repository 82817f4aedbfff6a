//! The command channel: what the handles ([`Client`](crate::Client),
//! [`Subscription`](crate::Subscription)) ask of the connection task. Holding a sender keeps the
//! task alive; when the last one is dropped, the client closes.

use switchboard_protocol::wire::Status;
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::presence::Roster;
use crate::requests::{Outbound, Reply};
use crate::topics::NewSink;

/// What a handle asks of the connection task.
pub(crate) enum Command {
    /// A request (with a reply) or an event (without).
    Send(Outbound),
    /// An event; `accepted` says whether it was sent or buffered.
    Event { out: Outbound, accepted: oneshot::Sender<Result<(), ClientError>> },
    /// A new local subscriber.
    Subscribe(NewSink),
    /// A local subscriber left.
    Unsubscribe { topic: String, sink: u64, done: Option<oneshot::Sender<()>> },
    /// Keep the directory, and answer once it is loaded.
    Directory(oneshot::Sender<Result<Roster, ClientError>>),
    /// `~status`, remembered and sent again after every reconnection.
    Status { status: Status, reply: Reply },
    /// Close for good; answer when done.
    Close(oneshot::Sender<()>),
}

/// The handles' end of the command channel.
#[derive(Debug, Clone)]
pub(crate) struct Commands(mpsc::UnboundedSender<Command>);

impl Commands {
    /// A channel: the handles' end and the task's.
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Sends a command; gives it back when the task is gone (the client closed).
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Command> {
        self.0.send(cmd).map_err(|e| e.0)
    }

    /// Removes a local subscriber and waits until the task did.
    pub(crate) async fn unsubscribe(&self, topic: &str, sink: u64) {
        let (done, rx) = oneshot::channel();
        if self.send(Command::Unsubscribe { topic: topic.to_owned(), sink, done: Some(done) }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Removes a local subscriber without waiting (from a `Drop`).
    pub(crate) fn unsubscribe_now(&self, topic: &str, sink: u64) {
        let _ = self.send(Command::Unsubscribe { topic: topic.to_owned(), sink, done: None });
    }
}
