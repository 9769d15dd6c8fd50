//! The guide's `client_bidirectional_stream.py`: sends each increment as it
//! is typed and prints the numbers it brings back before prompting again
//! (deterministically, where the guide relies on a one-second sleep).

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientError, ClientOptions, Replies};
use fibonacci_grpc::proto::Number;
use futures::SinkExt;
use futures_executor::block_on;
use grpcio::{ClientDuplexReceiver, WriteFlags};

/// What `--help` says this client does; the address and flags follow it.
const ABOUT: &str = "\
    Asks for increments until an empty line; after each, prints that many \
    more Fibonacci numbers, streamed both ways on one call (StreamSequence): \
    the guide's client_bidirectional_stream.py. Connects to ADDRESS (default \
    localhost:1337), with TLS if --tls-ca is given.";

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::for_client(ABOUT), |session| {
        let (mut requests, replies) = session.client.stream_sequence()?;
        let mut replies = Replies::new(replies);
        let mut index = 0;
        while let Some(increment) = session
            .terminal
            .ask_next_index("enter the next increment (or nothing to stop): ")?
        {
            if block_on(requests.send((Number::from(increment), WriteFlags::default()))).is_err() {
                // The server has already ended the call: its status says why.
                return Err(drain_status(&mut replies));
            }
            // A negative increment is refused by the server: wait for no
            // reply, its status surfaces with the next read.
            for _ in 0..increment.max(0) {
                let Some(reply) = replies.next_reply()? else {
                    break;
                };
                index += 1;
                session
                    .terminal
                    .say(&format!("Fibonacci #{index}: {}", reply.value))?;
            }
        }
        session.terminal.say("done sending")?;
        let _ = block_on(requests.close());
        while let Some(reply) = replies.next_reply()? {
            index += 1;
            session
                .terminal
                .say(&format!("Fibonacci #{index}: {}", reply.value))?;
        }
        Ok(())
    })
}
// guide:end main

/// The status of a call the server has ended, skipping replies it had sent
/// before (they answered requests the server then refused to go on with).
fn drain_status(replies: &mut Replies<ClientDuplexReceiver<Number>>) -> ClientError {
    loop {
        match replies.next_reply() {
            Ok(Some(_)) => continue,
            Ok(None) => return ClientError::CallEnded,
            Err(error) => return error,
        }
    }
}
