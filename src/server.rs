//! Server start-up and graceful shutdown.
//!
//! [`start`] builds a grpcio server with the Fibonacci service, the
//! standard health and reflection services, the configured transport
//! security and limits, binds it and starts it. [`RunningServer::shutdown`]
//! stops it the way an operator expects: health turns NOT_SERVING first,
//! then no new calls are accepted, calls in flight get a grace period to
//! finish, and what is left after it is cancelled.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use grpcio::{
    ChannelBuilder, EnvBuilder, Environment, ResourceQuota, Server, ServerBuilder,
    ServerCredentials,
};

use crate::calls::CallTracker;
use crate::certificates::TlsFiles;
pub use crate::health::HEALTH_SERVICE;
use crate::health::{self, HealthStatus, ServingStatus};
use crate::inbound;
use crate::limits::core_limits;
pub use crate::limits::Limits;
use crate::memory;
use crate::metrics::{Metrics, MetricsEndpoint};
use crate::open_files;
use crate::reflection;
use crate::service::create_service;
use crate::shutdown;

/// The service name health reports on, besides "" (the whole server).
pub const FIBONACCI_SERVICE: &str = "fibonacci.Fibonacci";

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Host to bind: an IP address or name; `[::]` (or `::`) is every
    /// interface, IPv4 and IPv6.
    pub host: String,
    /// Port to bind; 0 lets the system pick one.
    pub port: u16,
    /// Let other processes bind the same port (SO_REUSEPORT). Off by
    /// default, so a second server on a taken port fails instead of
    /// silently sharing it (the C core turns it on unless told otherwise).
    pub reuse_port: bool,
    /// TLS, if any; plaintext otherwise.
    pub tls: Option<TlsFiles>,
    /// What one client, and all of them together, may take.
    pub limits: Limits,
    /// Completion queues, each polled by a thread of its own; 0 means one
    /// per CPU (grpcio's default).
    pub completion_queues: usize,
    /// Port of the Prometheus endpoint (`GET /metrics`, on `host`), if
    /// any; 0 lets the system pick one.
    pub metrics_port: Option<u16>,
    /// Port of a plaintext gRPC listener serving the health service alone
    /// (on `host`), if any; 0 lets the system pick one. For probes that
    /// cannot speak TLS, such as the kubelet's gRPC probes.
    pub health_port: Option<u16>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "[::]".to_string(),
            port: 1337,
            reuse_port: false,
            tls: None,
            limits: Limits::default(),
            completion_queues: 0,
            metrics_port: None,
            health_port: None,
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

    /// "plaintext", "TLS" or "mutual TLS".
    pub fn security(&self) -> &'static str {
        match &self.tls {
            None => "plaintext",
            Some(TlsFiles {
                client_ca: None, ..
            }) => "TLS",
            Some(_) => "mutual TLS",
        }
    }

    fn credentials(&self) -> ServerCredentials {
        match &self.tls {
            None => ServerCredentials::insecure(),
            Some(files) => files.credentials(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The address could not be bound, with the system's reason when known.
    Bind {
        /// The address as asked for, `HOST:PORT`.
        address: String,
        /// The system's reason, from a bind tried before the C core's;
        /// `None` when only the C core's failed (it gives no reason).
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
                "cannot listen on {address}: the port is in use, the address is not local, \
                 or the TLS certificate and key do not match"
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
    health: HealthStatus,
    calls: CallTracker,
    metrics: Option<MetricsEndpoint>,
    /// The plaintext health listener, and its address.
    health_only: Option<(Server, String)>,
}

/// How a graceful shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls that were in flight when shutdown began and finished in time.
    pub drained: usize,
    /// Calls still open when the grace period ran out, cancelled.
    pub cancelled: usize,
}

/// The C core's experiments the server turns on: `fuse_filters` merges the
/// server's filters (message size, HTTP, compression, auth) into one, which
/// makes the message size filter, and with it the receive limit the core
/// enforces while decompressing, cost nothing per message (BENCHMARKS.md).
/// An experiment of the core, off by default in its release: `GRPC_EXPERIMENTS=-fuse_filters`
/// turns it off again.
pub const CORE_EXPERIMENTS: &str = "fuse_filters";

/// Turns on [`CORE_EXPERIMENTS`] for this process, ahead of any the
/// environment's `GRPC_EXPERIMENTS` names (the core applies the list in
/// order, so a `-fuse_filters` there still wins). Call it first thing in
/// `main`: the core reads the variable once, at its first use, and setting
/// a variable is only safe while the process has one thread.
pub fn enable_core_experiments() {
    let named = std::env::var("GRPC_EXPERIMENTS").unwrap_or_default();
    let experiments = if named.trim().is_empty() {
        CORE_EXPERIMENTS.to_string()
    } else {
        format!("{CORE_EXPERIMENTS},{named}")
    };
    std::env::set_var("GRPC_EXPERIMENTS", experiments);
}

/// Open files the server needs besides its gRPC connections: the metrics
/// endpoint's connections (at most a quarter of the limit, and 512), the
/// listeners, log files, and the C core's own (epoll, wake-up and timer
/// descriptors; a dozen).
const FILES_BESIDES_CONNECTIONS: u64 = 640;

/// Builds, binds and starts the server.
pub fn start(config: &ServerConfig) -> Result<RunningServer, StartError> {
    memory::fix_malloc_thresholds();
    let open_files = u64::from(config.limits.max_connections) + FILES_BESIDES_CONNECTIONS;
    if let Err(error) = open_files::set_soft_limit(open_files) {
        log::warn!("cannot set the limit on open files: {error}");
    }
    let mut env = EnvBuilder::new().name_prefix("fibonacci-cq");
    if config.completion_queues > 0 {
        env = env.cq_count(config.completion_queues);
    }
    let env = Arc::new(env.build());
    let limits = &config.limits;
    let args = channel_args(&env, config).build_args();

    inbound::set_receive_limit(limits.max_message_size as usize);
    let calls = CallTracker::default();
    let health = HealthStatus::default();
    let metrics = Arc::new(Metrics::new());
    let catalog = reflection::Catalog::new(
        &[
            FIBONACCI_SERVICE,
            HEALTH_SERVICE,
            reflection::V1_SERVICE,
            reflection::V1ALPHA_SERVICE,
        ],
        &[
            crate::proto::FILE_DESCRIPTOR,
            health::HEALTH_FILE_DESCRIPTOR,
            reflection::V1_FILE_DESCRIPTOR,
        ],
    )
    .map_err(|error| StartError::Build(grpcio::Error::Codec(Box::new(error))))?;
    let [reflection_v1, reflection_v1alpha] = reflection::services(catalog, &metrics);

    let mut server = ServerBuilder::new(Arc::clone(&env))
        .channel_args(args)
        .register_service(create_service(calls.clone(), &metrics))
        .register_service(health::create_service(health.clone(), &metrics))
        .register_service(reflection_v1)
        .register_service(reflection_v1alpha)
        .build()
        .map_err(StartError::Build)?;

    let host = config.bracketed_host();
    let port = bind(
        &mut server,
        &host,
        config.port,
        config.credentials(),
        config.reuse_port,
    )?;
    // A server of its own, so that the plaintext port answers the health
    // service and nothing else, whatever the main port's security.
    let mut health_only = match config.health_port {
        None => None,
        Some(health_port) => {
            let mut health_server = ServerBuilder::new(Arc::clone(&env))
                .channel_args(channel_args(&env, config).build_args())
                .register_service(health::create_service(health.clone(), &metrics))
                .build()
                .map_err(StartError::Build)?;
            let port = bind(
                &mut health_server,
                &host,
                health_port,
                ServerCredentials::insecure(),
                config.reuse_port,
            )?;
            Some((health_server, format!("{host}:{port}")))
        }
    };
    let metrics = match config.metrics_port {
        None => None,
        Some(metrics_port) => {
            let endpoint =
                MetricsEndpoint::start(&host, metrics_port, metrics).map_err(|reason| {
                    StartError::Bind {
                        address: format!("{host}:{metrics_port}"),
                        reason: Some(reason),
                    }
                })?;
            Some(endpoint)
        }
    };
    server.start();
    if let Some((health_server, _)) = &mut health_only {
        health_server.start();
    }
    memory::spawn_trimmer(calls.clone());
    health.set_serving_status("", ServingStatus::SERVING);
    health.set_serving_status(FIBONACCI_SERVICE, ServingStatus::SERVING);
    Ok(RunningServer {
        server,
        address: format!("{host}:{port}"),
        health,
        calls,
        metrics,
        health_only,
    })
}

/// The C core's channel arguments for a server of `config`: its limits and
/// its memory quota.
fn channel_args(env: &Arc<Environment>, config: &ServerConfig) -> ChannelBuilder {
    let limits = &config.limits;
    let mut channel = ChannelBuilder::new(Arc::clone(env)).reuse_port(config.reuse_port);
    for limit in core_limits(limits) {
        channel = channel.raw_cfg_int(limit.arg.into(), limit.value);
    }
    channel.set_resource_quota(
        ResourceQuota::new(Some("fibonacci-server"))
            .resize_memory(limits.memory_quota_mib as usize * 1024 * 1024),
    )
}

/// Binds `host:port` on `server`; returns the port bound.
fn bind(
    server: &mut Server,
    host: &str,
    port: u16,
    credentials: ServerCredentials,
    reuse_port: bool,
) -> Result<u16, StartError> {
    let requested = format!("{host}:{port}");
    // The C core reports a failed bind only as a multi-line log entry, so
    // the address is tried first with the system's own bind, which gives
    // the reason in one line ("Address already in use"). A fixed port only:
    // port 0 always binds, and with SO_REUSEPORT a taken port is expected.
    if port != 0 && !reuse_port {
        if let Err(reason) = TcpListener::bind(&requested) {
            return Err(StartError::Bind {
                address: requested,
                reason: Some(reason),
            });
        }
    }
    server
        .add_listening_port(requested.as_str(), credentials)
        .map_err(|_| StartError::Bind {
            address: requested,
            reason: None,
        })
}

impl RunningServer {
    /// The address served, with the port the system picked if 0 was asked.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The plaintext health listener's address, if it serves one.
    pub fn health_address(&self) -> Option<&str> {
        self.health_only
            .as_ref()
            .map(|(_, address)| address.as_str())
    }

    /// The metrics endpoint's URL, `http://HOST:PORT/metrics`, if it serves
    /// one.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics.as_ref().map(MetricsEndpoint::url)
    }

    /// Turns health to NOT_SERVING, so load balancers and probes stop
    /// sending new calls here; the listener stays open until [`shutdown`].
    ///
    /// [`shutdown`]: RunningServer::shutdown
    pub fn stop_serving(&self) {
        self.health.shutdown();
    }

    /// Stops accepting calls at once, lets the calls in flight finish for up
    /// to `grace_period`, then cancels the rest.
    pub fn shutdown(mut self, grace_period: Duration) -> ShutdownReport {
        self.stop_serving();
        let in_flight = self.calls.in_flight();
        let drained = self.server.shutdown();
        // grpcio has no timer of its own, so the shutdown future is awaited
        // on a thread and the grace period is a timed wait for it.
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = futures_executor::block_on(drained);
            let _ = done_tx.send(());
        });
        let cancelled = match done_rx.recv_timeout(grace_period) {
            Ok(()) => 0,
            Err(_) => {
                let open = self.calls.in_flight();
                self.server.cancel_all_calls();
                let _ = done_rx.recv();
                open
            }
        };
        // Last, so that probes saw NOT_SERVING while the calls drained.
        if let Some((mut health_server, _)) = self.health_only.take() {
            health_server.cancel_all_calls();
            let _ = futures_executor::block_on(health_server.shutdown());
        }
        ShutdownReport {
            drained: in_flight.saturating_sub(cancelled),
            cancelled,
        }
    }
}

/// Serves as `config` says until SIGINT or SIGTERM, then shuts down with
/// `grace_period` for the calls in flight, logging each step: the
/// `listening on` line (and `metrics at`, `health at`), the signal, what was drained
/// and cancelled. What `bin/server.rs` runs.
pub fn serve(config: &ServerConfig, grace_period: Duration) -> Result<(), String> {
    let mut signals = shutdown::listen()
        .map_err(|error| format!("cannot install the SIGINT/SIGTERM handlers: {error}"))?;
    let running = start(config).map_err(|error| error.to_string())?;
    log::info!(
        "listening on {} ({}, fibonacci-grpc {}, gRPC C core {})",
        running.address(),
        config.security(),
        env!("CARGO_PKG_VERSION"),
        grpcio_sys::GRPC_CORE_RELEASE
    );
    // After the listening line, which scripts expect first.
    if let Some(url) = running.metrics_url() {
        log::info!("metrics at {url}");
    }
    if let Some(address) = running.health_address() {
        log::info!("health at {address} (plaintext, the health service only)");
    }

    let signal = shutdown::wait(&mut signals);
    log::info!("{signal}: shutting down, grace period {grace_period:?}");
    let report = running.shutdown(grace_period);
    log::info!(
        "stopped: {} calls drained, {} cancelled",
        report.drained,
        report.cancelled
    );
    Ok(())
}
