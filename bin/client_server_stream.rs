//! The guide's `client_server_stream.py`: asks for a count, prints the
//! first that many Fibonacci numbers as the server streams them.

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientOptions, Replies};
use fibonacci_grpc::proto::Number;
use structopt::StructOpt;

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::from_args(), |session| {
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
