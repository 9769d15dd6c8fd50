//! Server start-up and graceful shutdown.
//!
//! [`start`] builds a grpcio server with the Fibonacci service, binds it and
//! starts it; [`RunningServer::shutdown`] stops it the way an operator
//! expects: no new calls, calls in flight get a grace period to finish, what
//! is left after it is cancelled.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use grpcio::{ChannelBuilder, EnvBuilder, Server, ServerBuilder, ServerCredentials};

use crate::proto::create_fibonacci;
use crate::service::FibonacciService;

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Host to bind: an IP address or name; `[::]` (or `::`) is every
    /// interface, IPv4 and IPv6.
    pub host: String,
    /// Port to bind; 0 lets the system pick one (see
    /// [`RunningServer::port`]).
    pub port: u16,
    /// Let other processes bind the same port (SO_REUSEPORT). Off by
    /// default, so a second server on a taken port fails instead of
    /// silently sharing it (the C core turns it on unless told otherwise).
    pub reuse_port: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "[::]".to_string(),
            port: 1337,
            reuse_port: false,
        }
    }
}

impl ServerConfig {
    /// The host with IPv6 literals in brackets, as gRPC addresses want.
    fn bracketed_host(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The address could not be bound, with the system's reason when known.
    Bind {
        address: String,
        reason: Option<io::Error>,
    },
    /// grpcio refused to build the server.
    Build(grpcio::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind {
                address,
                reason: Some(reason),
            } => {
                write!(f, "cannot listen on {address}: {reason}")
            }
            StartError::Bind {
                address,
                reason: None,
            } => write!(
                f,
                "cannot listen on {address}: the port is in use or the address is not local"
            ),
            StartError::Build(error) => write!(f, "cannot build the gRPC server: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A server that is bound and serving.
pub struct RunningServer {
    server: Server,
    address: String,
}

/// How a graceful shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every call in flight finished within the grace period.
    Drained,
    /// The grace period ran out; the calls still open were cancelled.
    CancelledAfterGrace,
}

/// Builds, binds and starts the server.
pub fn start(config: &ServerConfig) -> Result<RunningServer, StartError> {
    let env = Arc::new(EnvBuilder::new().name_prefix("fibonacci-cq").build());
    let args = ChannelBuilder::new(Arc::clone(&env))
        .reuse_port(config.reuse_port)
        .build_args();
    let mut server = ServerBuilder::new(env)
        .channel_args(args)
        .register_service(create_fibonacci(FibonacciService))
        .build()
        .map_err(StartError::Build)?;

    let host = config.bracketed_host();
    let requested = format!("{host}:{}", config.port);
    // The C core reports a failed bind only as a multi-line log entry, so
    // the address is tried first with the system's own bind, which gives
    // the reason in one line ("Address already in use"). A fixed port only:
    // port 0 always binds, and with SO_REUSEPORT a taken port is expected.
    if config.port != 0 && !config.reuse_port {
        if let Err(reason) = TcpListener::bind(&requested) {
            return Err(StartError::Bind {
                address: requested,
                reason: Some(reason),
            });
        }
    }
    let port = server
        .add_listening_port(requested.as_str(), ServerCredentials::insecure())
        .map_err(|_| StartError::Bind {
            address: requested,
            reason: None,
        })?;
    server.start();
    Ok(RunningServer {
        server,
        address: format!("{host}:{port}"),
    })
}

impl RunningServer {
    /// The address served, with the port the system picked if 0 was asked.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops accepting calls at once, lets the calls in flight finish for up
    /// to `grace_period`, then cancels the rest.
    pub fn shutdown(mut self, grace_period: Duration) -> ShutdownOutcome {
        let drained = self.server.shutdown();
        // grpcio has no timer of its own, so the shutdown future is awaited
        // on a thread and the grace period is a timed wait for it.
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = futures_executor::block_on(drained);
            let _ = done_tx.send(());
        });
        match done_rx.recv_timeout(grace_period) {
            Ok(()) => ShutdownOutcome::Drained,
            Err(_) => {
                self.server.cancel_all_calls();
                let _ = done_rx.recv();
                ShutdownOutcome::CancelledAfterGrace
            }
        }
    }
}
