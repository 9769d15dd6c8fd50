//! The guide's `client_unary.py`: asks for an index, prints F(index).

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientOptions};
use fibonacci_grpc::proto::Number;

/// What `--help` says this client does; the address and flags follow it.
const ABOUT: &str = "\
    Asks for an index n and prints F(n), the n-th Fibonacci number, from one \
    AtIndex call: the guide's client_unary.py. Connects to ADDRESS (default \
    localhost:1337), with TLS if --tls-ca is given.";

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::for_client(ABOUT), |session| {
        let index = session.terminal.ask_index("enter an index integer: ")?;
        let reply = session.client.at_index(&Number::from(index))?;
        session
            .terminal
            .say(&format!("Fibonacci #{index}: {}", reply.value))?;
        Ok(())
    })
}
// guide:end main
