//! The guide's `client_server_stream.py`: asks for a count, prints the
//! first that many Fibonacci numbers as the server streams them.

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientOptions, Replies};
use fibonacci_grpc::proto::Number;

/// What `--help` says this client does; the address and flags follow it.
const ABOUT: &str = "\
    Asks for an index n and prints F(1) to F(n), one line per number as the \
    server streams them (GetSequence): the guide's client_server_stream.py. \
    Connects to ADDRESS (default localhost:1337), with TLS if --tls-ca is \
    given.";

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::for_client(ABOUT), |session| {
        let count = session.terminal.ask_index("enter an index integer: ")?;
        let mut replies = Replies::new(session.client.get_sequence(&Number::from(count))?);
        let mut index = 0;
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
