//! What the four client binaries share, a module per job: the command line
//! ([`options`]), connecting ([`mod@connect`], with the retry policy), the
//! replies of a streaming call in order ([`replies`]), the guide's
//! prompt-and-read loop ([`terminal`]), and turning every failure into one line on stderr and an exit code
//! ([`error`], [`run`]). [`checked`] makes one call of each of the guide's
//! request shapes and checks every value: for the load generator and the
//! fault tests.
//!
//! Each binary in `bin/` parses its command line into [`ClientOptions`]
//! and hands [`run`] its call: [`run`] connects, gives the call a
//! [`Session`] (the connected client plus the terminal), and reports how
//! it ended.

use std::fs::File;
use std::io;
use std::process::ExitCode;

pub mod checked;
pub mod connect;
pub mod error;
pub mod options;
pub mod replies;
pub mod terminal;

pub use self::connect::connect;
pub use self::error::ClientError;
pub use self::options::{ClientOptions, DEFAULT_ADDRESS};
pub use self::replies::Replies;
pub use self::terminal::{parse_index, Prompter};

use crate::proto::FibonacciClient;

/// A connected client and the terminal it talks through.
pub struct Session {
    /// The Fibonacci client, connected.
    pub client: FibonacciClient,
    /// Standard input and output, prompted and read as the guide's
    /// `input()` does.
    pub terminal: Prompter<File, io::Stdout>,
}

/// Connects as `options` say and runs `call`. Every error ends as one line
/// on stderr and the error's exit code.
///
/// A client is its command line and one call of this; `bin/client_unary.rs`
/// is, in full (`no_run`: it needs a server):
///
/// ```no_run
/// use std::process::ExitCode;
///
/// use fibonacci_grpc::client::{self, ClientOptions};
/// use fibonacci_grpc::proto::Number;
/// use structopt::StructOpt;
///
/// fn main() -> ExitCode {
///     client::run(ClientOptions::from_args(), |session| {
///         let index = session.terminal.ask_index("enter an index integer: ")?;
///         let reply = session.client.at_index(&Number::from(index))?;
///         session
///             .terminal
///             .say(&format!("Fibonacci #{index}: {}", reply.value))?;
///         Ok(())
///     })
/// }
/// ```
pub fn run(
    options: ClientOptions,
    call: impl FnOnce(&mut Session) -> Result<(), ClientError>,
) -> ExitCode {
    // Keeps the C core's own log lines (e.g. a failed TLS handshake) off
    // stderr: a failure is the one `error:` line below.
    crate::logging::init(log::LevelFilter::Warn);
    let result = connect(&options).and_then(|client| {
        let mut session = Session {
            client,
            terminal: Prompter::new(terminal::raw_stdin()?, io::stdout()),
        };
        let result = call(&mut session);
        // Python's `print` lines reach the terminal even when the call then
        // fails; make sure ours do too, before the error line.
        session.terminal.flush()?;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}
