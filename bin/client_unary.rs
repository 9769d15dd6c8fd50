//! The guide's `client_unary.py`: asks for an index, prints F(index).

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientOptions};
use fibonacci_grpc::proto::Number;
use structopt::StructOpt;

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::from_args(), |session| {
        let index = session.terminal.ask_index("enter an index integer: ")?;
        let reply = session.client.at_index(&Number::from(index))?;
        session
            .terminal
            .say(&format!("Fibonacci #{index}: {}", reply.value))?;
        Ok(())
    })
}
// guide:end main
