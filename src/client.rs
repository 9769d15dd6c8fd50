//! What the four client binaries share: the command line, connecting, the
//! prompt-and-read loop of the guide's `input()`, and turning every failure
//! into one line on stderr and an exit code.
//!
//! Each binary in `bin/` is only its call: it gets a [`Session`] (a
//! connected client plus the terminal) from [`run`] and returns a
//! `Result<(), ClientError>`.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{ChannelBuilder, EnvBuilder, RpcStatus};
use structopt::StructOpt;

use crate::proto::FibonacciClient;
use crate::status::code_name;

/// The guide's clients talk to `localhost:1337`.
pub const DEFAULT_ADDRESS: &str = "localhost:1337";

/// The command line every client takes.
#[derive(Debug, StructOpt)]
pub struct ClientOptions {
    /// Server address, host:port (IPv6 hosts in brackets).
    #[structopt(default_value = DEFAULT_ADDRESS)]
    pub address: String,

    /// Seconds to wait for the connection before giving up.
    #[structopt(long, default_value = "3")]
    pub connect_timeout: u64,
}

/// Why a client stopped early; each kind has its exit code.
#[derive(Debug)]
pub enum ClientError {
    /// The input was not an int32 where one was required (exit 2).
    NotAnInteger(String),
    /// The server answered with a non-OK status (exit 1).
    Status(RpcStatus),
    /// No connection within the timeout (exit 1).
    Unreachable { address: String, timeout: Duration },
    /// The server ended the call while the client was still sending, and
    /// with an OK status (exit 1; this server never does).
    CallEnded,
    /// Any other gRPC failure (exit 1).
    Grpc(grpcio::Error),
    /// The terminal failed (exit 1).
    Io(io::Error),
}

impl ClientError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::NotAnInteger(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotAnInteger(text) => write!(
                f,
                "{text:?} is not an integer index (a whole number from {} to {})",
                i32::MIN,
                i32::MAX
            ),
            ClientError::Status(status) if status.message().is_empty() => {
                write!(f, "the server answered {}", code_name(status.code()))
            }
            ClientError::Status(status) => {
                write!(
                    f,
                    "the server answered {}: {}",
                    code_name(status.code()),
                    status.message()
                )
            }
            ClientError::Unreachable { address, timeout } => write!(
                f,
                "cannot reach the server at {address} (no connection within {}s)",
                timeout.as_secs()
            ),
            ClientError::CallEnded => write!(f, "the server ended the call before the input did"),
            ClientError::Grpc(error) => write!(f, "gRPC failure: {error}"),
            ClientError::Io(error) => write!(f, "terminal: {error}"),
        }
    }
}

impl From<grpcio::Error> for ClientError {
    fn from(error: grpcio::Error) -> Self {
        match error {
            grpcio::Error::RpcFailure(status) => ClientError::Status(status),
            other => ClientError::Grpc(other),
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        ClientError::Io(error)
    }
}

/// A connected client and the terminal it talks through.
pub struct Session {
    pub client: FibonacciClient,
    pub terminal: Prompter<File, io::Stdout>,
}

/// Parses the command line, connects, and runs `call`. Every error ends as
/// one line on stderr and the error's exit code.
pub fn run(call: impl FnOnce(&mut Session) -> Result<(), ClientError>) -> ExitCode {
    let options = ClientOptions::from_args();
    let result = connect(&options).and_then(|client| {
        let mut session = Session {
            client,
            terminal: Prompter::new(raw_stdin()?, io::stdout()),
        };
        let result = call(&mut session);
        // Python's `print` lines reach the terminal even when the call then
        // fails; make sure ours do too, before the error line.
        session.terminal.output.flush()?;
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

/// Standard input without Rust's 8 KiB buffer in front of it. The prompter
/// reads byte by byte and stops at the newline, so clients run one after
/// another on one piped input (`make run-clients < answers`) each take
/// only their own lines, as a terminal would give them.
fn raw_stdin() -> io::Result<File> {
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

/// Connects before anything is asked of the user, so an unreachable server
/// is reported at once instead of after the input is typed.
pub fn connect(options: &ClientOptions) -> Result<FibonacciClient, ClientError> {
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("fibonacci-client")
            .build(),
    );
    let channel = ChannelBuilder::new(env).connect(&options.address);
    let timeout = Duration::from_secs(options.connect_timeout);
    if !futures_executor::block_on(channel.wait_for_connected(timeout)) {
        return Err(ClientError::Unreachable {
            address: options.address.clone(),
            timeout,
        });
    }
    Ok(FibonacciClient::new(channel))
}

/// Prompts and reads lines the way Python's `input()` does: the prompt goes
/// to the output without a newline and is flushed, then one line is read.
pub struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: Read, W: Write> Prompter<R, W> {
    pub fn new(input: R, output: W) -> Self {
        Prompter { input, output }
    }

    /// Shows `prompt` and reads one line without its line ending; `None` at
    /// the end of the input.
    pub fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        self.output.write_all(prompt.as_bytes())?;
        self.output.flush()?;
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            match self.input.read(&mut byte) {
                Ok(0) if line.is_empty() => return Ok(None),
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Asks for an index that must be an int32 (the unary and server-stream
    /// clients, whose guide versions crash on anything else).
    pub fn ask_index(&mut self, prompt: &str) -> Result<i32, ClientError> {
        let line = self.ask(prompt)?.unwrap_or_default();
        parse_index(&line).ok_or(ClientError::NotAnInteger(line))
    }

    /// Asks for the next index of a stream; `None` (stop sending) for an
    /// empty line, the end of the input, or anything that is not an int32,
    /// as the guide's streaming clients stop on any exception.
    pub fn ask_next_index(&mut self, prompt: &str) -> io::Result<Option<i32>> {
        Ok(self.ask(prompt)?.as_deref().and_then(parse_index))
    }

    /// Prints one line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.output, "{line}")
    }
}

/// An int32 as Python's `int()` reads one: surrounding whitespace and a
/// sign allowed. Values that Python would accept but protobuf's int32
/// would not are refused here, as the guide's clients fail on them too.
pub fn parse_index(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompter(input: &str) -> Prompter<&[u8], Vec<u8>> {
        Prompter::new(input.as_bytes(), Vec::new())
    }

    #[test]
    fn prompts_without_newline_and_reads_lines() {
        let mut terminal = prompter("7\r\n\nlast");
        assert_eq!(terminal.ask("a: ").unwrap().as_deref(), Some("7"));
        assert_eq!(terminal.ask("b: ").unwrap().as_deref(), Some(""));
        assert_eq!(terminal.ask("c: ").unwrap().as_deref(), Some("last"));
        assert_eq!(terminal.ask("d: ").unwrap(), None);
        terminal.say("done").unwrap();
        assert_eq!(terminal.output, b"a: b: c: d: done\n");
    }

    #[test]
    fn reads_no_further_than_its_own_line() {
        let mut input: &[u8] = b"7\n5\n";
        let mut terminal = Prompter::new(&mut input, Vec::new());
        assert_eq!(terminal.ask("").unwrap().as_deref(), Some("7"));
        assert_eq!(input, b"5\n");
    }

    #[test]
    fn index_parsing_follows_python_int() {
        assert_eq!(parse_index(" 7 "), Some(7));
        assert_eq!(parse_index("+5"), Some(5));
        assert_eq!(parse_index("-1"), Some(-1));
        assert_eq!(parse_index("2147483647"), Some(i32::MAX));
        assert_eq!(parse_index("2147483648"), None);
        assert_eq!(parse_index(""), None);
        assert_eq!(parse_index("seven"), None);
        assert_eq!(parse_index("7.0"), None);
    }

    #[test]
    fn required_index_refuses_non_integers() {
        let mut terminal = prompter("x7\n");
        match terminal.ask_index("? ") {
            Err(ClientError::NotAnInteger(text)) => assert_eq!(text, "x7"),
            other => panic!("expected NotAnInteger, got {other:?}"),
        }
        assert!(matches!(
            prompter("").ask_index("? "),
            Err(ClientError::NotAnInteger(_))
        ));
    }

    #[test]
    fn stream_input_stops_on_anything_but_an_integer() {
        let mut terminal = prompter("4\nfour\n");
        assert_eq!(terminal.ask_next_index("? ").unwrap(), Some(4));
        assert_eq!(terminal.ask_next_index("? ").unwrap(), None);
        assert_eq!(terminal.ask_next_index("? ").unwrap(), None);
    }
}
