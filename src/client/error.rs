//! Why a client stopped early: each kind of failure, the one line it
//! prints, and its exit code.

use std::fmt;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use grpcio::RpcStatus;

use crate::status::code_name;

/// Why a client stopped early; each kind has its exit code. Its `Display`
/// is the line the client prints after `error: `.
///
/// A status the server sent becomes a line that names its code as gRPC
/// does, and its message:
///
/// ```
/// use fibonacci_grpc::client::ClientError;
/// use fibonacci_grpc::fibonacci;
/// use grpcio::RpcStatus;
/// use std::process::ExitCode;
///
/// // What the server sends for AtIndex(47) (see `fibonacci_grpc::status`),
/// // as grpcio hands it to the client.
/// let status = RpcStatus::from(fibonacci::at_index(47).unwrap_err());
/// let error = ClientError::from(grpcio::Error::RpcFailure(status));
/// assert_eq!(
///     error.to_string(),
///     "the server answered OUT_OF_RANGE: index 47 is past 46, \
///      the largest index whose Fibonacci number fits in an int32"
/// );
/// assert_eq!(error.exit_code(), ExitCode::from(1));
///
/// // Input that is not an int32 is the user's mistake, not the server's.
/// let typo = ClientError::NotAnInteger("seven".to_string());
/// assert_eq!(
///     typo.to_string(),
///     r#""seven" is not an integer index (a whole number from -2147483648 to 2147483647)"#
/// );
/// assert_eq!(typo.exit_code(), ExitCode::from(2));
/// ```
#[derive(Debug)]
pub enum ClientError {
    /// The input was not an int32 where one was required (exit 2).
    NotAnInteger(String),
    /// The server answered with a non-OK status (exit 1).
    Status(RpcStatus),
    /// No connection within the timeout (exit 1).
    Unreachable {
        /// The address as given on the command line.
        address: String,
        /// How long the client waited (`--connect-timeout`).
        timeout: Duration,
        /// Whether it tried TLS (`--tls-ca`).
        tls: bool,
    },
    /// A certificate or key file could not be read (exit 1).
    File {
        /// The file, as given on the command line.
        path: String,
        /// Why it could not be read.
        error: io::Error,
    },
    /// The server ended the call while the client was still sending, and
    /// with an OK status (exit 1; this server never does).
    CallEnded,
    /// Any other gRPC failure (exit 1).
    Grpc(grpcio::Error),
    /// The terminal failed (exit 1).
    Io(io::Error),
}

impl ClientError {
    /// 2 for input that is not an index (a usage error, as a shell's tools
    /// use it), 1 for everything else.
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
