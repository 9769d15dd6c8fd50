//! What the four client binaries share: the command line, connecting, the
//! prompt-and-read loop of the guide's `input()`, and turning every failure
//! into one line on stderr and an exit code.
//!
//! Each binary in `bin/` is only its call: it gets a [`Session`] (a
//! connected client plus the terminal) from [`run`] and returns a
//! `Result<(), ClientError>`.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{
    ChannelBuilder, ChannelCredentials, ChannelCredentialsBuilder, EnvBuilder, LbPolicy, RpcStatus,
};
use structopt::StructOpt;

use futures::{Stream, TryStreamExt};

use crate::proto::{FibonacciClient, Number};
use crate::status::code_name;

/// The guide's clients talk to `localhost:1337`.
pub const DEFAULT_ADDRESS: &str = "localhost:1337";

/// The command line every client takes.
#[derive(Debug, StructOpt)]
#[structopt(version = crate::VERSION)]
pub struct ClientOptions {
    /// Server address: host:port (IPv6 hosts in brackets); or several,
    /// comma-separated, to spread calls over them round robin; or any gRPC
    /// target URI (dns:///name:port resolves every address of the name).
    #[structopt(default_value = DEFAULT_ADDRESS)]
    pub address: String,

    /// Seconds to wait for the connection before giving up.
    #[structopt(long, default_value = "3")]
    pub connect_timeout: u64,

    /// PEM CA certificate to trust: connect with TLS.
    #[structopt(long)]
    pub tls_ca: Option<String>,

    /// PEM client certificate, for servers that require one (mutual TLS;
    /// with --tls-key and --tls-ca).
    #[structopt(long, requires_all = &["tls-key", "tls-ca"])]
    pub tls_cert: Option<String>,

    /// PEM private key of --tls-cert.
    #[structopt(long, requires = "tls-cert")]
    pub tls_key: Option<String>,

    /// Name to verify the server's certificate against, instead of the host
    /// in the address.
    #[structopt(long, requires = "tls-ca")]
    pub tls_server_name: Option<String>,
}

impl ClientOptions {
    /// The gRPC target for `address`: a list of host:port pairs becomes an
    /// `ipv4:`/`ipv6:` URI the C core resolves to all of them; anything
    /// else (one host:port, a URI) is used as it is.
    pub fn target(&self) -> String {
        const SCHEMES: [&str; 5] = ["dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"];
        let addresses: Vec<&str> = self.address.split(',').map(str::trim).collect();
        if addresses.len() < 2
            || SCHEMES
                .iter()
                .any(|scheme| self.address.starts_with(scheme))
        {
            return self.address.clone();
        }
        let scheme = if addresses.iter().all(|a| a.starts_with('[')) {
            "ipv6"
        } else {
            "ipv4"
        };
        format!("{scheme}:{}", addresses.join(","))
    }
}

/// Why a client stopped early; each kind has its exit code.
#[derive(Debug)]
pub enum ClientError {
    /// The input was not an int32 where one was required (exit 2).
    NotAnInteger(String),
    /// The server answered with a non-OK status (exit 1).
    Status(RpcStatus),
    /// No connection within the timeout (exit 1).
    Unreachable {
        address: String,
        timeout: Duration,
        tls: bool,
    },
    /// A certificate or key file could not be read (exit 1).
    File { path: String, error: io::Error },
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
            // The C core does not say why a connection failed, so the
            // likely causes of each case are named.
            ClientError::Unreachable {
                address,
                timeout,
                tls: false,
            } => write!(
                f,
                "cannot reach the server at {address} (no connection within {}s; \
                 is it running, and does it serve plaintext?)",
                timeout.as_secs()
            ),
            ClientError::Unreachable {
                address,
                timeout,
                tls: true,
            } => write!(
                f,
                "cannot reach the server at {address} (no TLS connection within {}s; \
                 is it running, does its certificate match the CA and name, \
                 does it require a client certificate?)",
                timeout.as_secs()
            ),
            ClientError::File { path, error } => write!(f, "cannot read {path}: {error}"),
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
    // Keeps the C core's own log lines (e.g. a failed TLS handshake) off
    // stderr: a failure is the one `error:` line below.
    crate::logging::init(log::LevelFilter::Warn);
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
    // Round robin spreads calls over every address the target resolves to,
    // and skips one that stops answering; with one address it changes
    // nothing.
    let mut builder = ChannelBuilder::new(env).load_balancing_policy(LbPolicy::RoundRobin);
    if let Some(name) = &options.tls_server_name {
        builder = builder.override_ssl_target(name.as_str());
    }
    let target = options.target();
    let channel = match tls_credentials(options)? {
        Some(credentials) => builder.set_credentials(credentials).connect(&target),
        None => builder.connect(&target),
    };
    let timeout = Duration::from_secs(options.connect_timeout);
    if !futures_executor::block_on(channel.wait_for_connected(timeout)) {
        return Err(ClientError::Unreachable {
            address: options.address.clone(),
            timeout,
            tls: options.tls_ca.is_some(),
        });
    }
    Ok(FibonacciClient::new(channel))
}

fn tls_credentials(options: &ClientOptions) -> Result<Option<ChannelCredentials>, ClientError> {
    let Some(ca) = &options.tls_ca else {
        return Ok(None);
    };
    let read = |path: &String| {
        fs::read(path).map_err(|error| ClientError::File {
            path: path.clone(),
            error,
        })
    };
    let mut builder = ChannelCredentialsBuilder::new().root_cert(read(ca)?);
    if let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) {
        builder = builder.cert(read(cert)?, read(key)?);
    }
    Ok(Some(builder.build()))
}

/// The replies of a streaming call, in the order the server sent them, its
/// status last.
///
/// grpcio 0.13 reports a failed status as soon as it arrives, ahead of the
/// messages that came before it; those are still delivered by the polls
/// that follow. Against a server that sends numbers and then fails (the
/// guide's Python server sends F(45) and F(46) before its UNKNOWN), a
/// client that stopped at the first error would drop numbers the server
/// sent. This keeps reading after the error and reports it once the
/// messages are exhausted.
pub struct Replies<S> {
    stream: S,
    failure: Option<grpcio::Error>,
}

impl<S: Stream<Item = grpcio::Result<Number>> + Unpin> Replies<S> {
    pub fn new(stream: S) -> Self {
        Replies {
            stream,
            failure: None,
        }
    }

    /// The next reply; `Ok(None)` once the call ended with OK, the status
    /// once the call failed and every earlier reply has been returned.
    pub fn next_reply(&mut self) -> Result<Option<Number>, ClientError> {
        loop {
            match futures_executor::block_on(self.stream.try_next()) {
                Ok(Some(reply)) => return Ok(Some(reply)),
                Ok(None) => {
                    return self
                        .failure
                        .take()
                        .map_or(Ok(None), |error| Err(error.into()))
                }
                // The first error is the status; later polls give what was
                // received before it, and then a second error or the end.
                Err(error) => match self.failure.take() {
                    None => self.failure = Some(error),
                    Some(status) => return Err(status.into()),
                },
            }
        }
    }
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

// Test code only, never compiled into the server: an unwrap here can only
// fail the test that runs it, not a completion-queue thread.
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
    fn address_lists_become_one_target() {
        let target = |address: &str| {
            ClientOptions::from_iter_safe(["client", address])
                .unwrap()
                .target()
        };
        assert_eq!(target("localhost:1337"), "localhost:1337");
        assert_eq!(
            target("127.0.0.1:1,127.0.0.1:2"),
            "ipv4:127.0.0.1:1,127.0.0.1:2"
        );
        assert_eq!(target("[::1]:1,[::1]:2"), "ipv6:[::1]:1,[::1]:2");
        assert_eq!(target("dns:///fibonacci:1337"), "dns:///fibonacci:1337");
        assert_eq!(
            target("ipv4:127.0.0.1:1,127.0.0.1:2"),
            "ipv4:127.0.0.1:1,127.0.0.1:2"
        );
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
