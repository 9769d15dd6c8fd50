//! The server's command line (`server --help`), and the configuration it
//! describes. `bin/server.rs` parses it and calls [`crate::server::serve`].

use std::time::Duration;

use log::LevelFilter;
use structopt::StructOpt;

use crate::certificates::TlsFiles;
use crate::limits::Limits;
use crate::logging;
use crate::server::ServerConfig;

/// Serves the Fibonacci gRPC service of the Python gRPC guide (AtIndex,
/// GetSequence, SumIndicies, StreamSequence), with the standard health and
/// reflection services. Prints "listening on HOST:PORT (...)" once it
/// accepts calls; SIGINT or SIGTERM shut it down gracefully.
#[derive(Debug, StructOpt)]
// Named after the project, as the clients are: `--version` prints
// "fibonacci-grpc 0.2.0 (gRPC C core 1.85.1)".
#[structopt(version = crate::VERSION)]
pub struct ServerOptions {
    /// Host to listen on: `[::]` is every interface, IPv6 and IPv4.
    #[structopt(long, default_value = "[::]")]
    host: String,

    /// Port to listen on; 0 lets the system pick a free one (printed).
    #[structopt(long, default_value = "1337")]
    port: u16,

    /// Seconds that calls in flight get to finish after SIGINT/SIGTERM
    /// before they are cancelled.
    #[structopt(long, default_value = "5", parse(try_from_str = parse_seconds))]
    pub grace_period: Duration,

    /// Share the port with other processes (SO_REUSEPORT), e.g. replicas on
    /// one host. Off by default, so a taken port is an error.
    #[structopt(long)]
    reuse_port: bool,

    /// PEM certificate chain: serve TLS (with --tls-key).
    #[structopt(long, requires = "tls-key")]
    tls_cert: Option<String>,

    /// PEM private key of --tls-cert.
    #[structopt(long, requires = "tls-cert")]
    tls_key: Option<String>,

    /// PEM CA certificate: require clients to present a certificate it
    /// signed (mutual TLS; needs --tls-cert).
    #[structopt(long, requires = "tls-cert")]
    tls_client_ca: Option<String>,

    /// Log level: error, warn, info, debug (one line per call) or off.
    /// Default: RUST_LOG if it names a level, else info.
    #[structopt(long, parse(try_from_str = logging::parse_level))]
    log: Option<LevelFilter>,

    /// Concurrent calls one connection may have open.
    #[structopt(long, default_value = "100")]
    max_concurrent_streams: u32,

    /// Largest request message, in bytes; a larger one is refused with
    /// RESOURCE_EXHAUSTED.
    #[structopt(long, default_value = "65536")]
    max_message_size: u32,

    /// Seconds of quiet after which a connection is pinged.
    #[structopt(long, default_value = "60", parse(try_from_str = parse_seconds))]
    keepalive_time: Duration,

    /// Seconds to wait for the ping's answer before closing the connection.
    #[structopt(long, default_value = "20", parse(try_from_str = parse_seconds))]
    keepalive_timeout: Duration,

    /// Memory, in MiB, that the gRPC core may use for all connections and
    /// calls together.
    #[structopt(long, default_value = "512")]
    memory_quota_mib: u32,

    /// Calls that have arrived but not yet been taken up by a handler.
    /// Past this many, new calls are refused with RESOURCE_EXHAUSTED, a
    /// growing share of them, and all of them at three times as many.
    #[structopt(long, default_value = "1000")]
    max_pending_calls: u32,

    /// Connections the server holds open at once; past this many, a new
    /// connection is closed as soon as it is accepted.
    #[structopt(long, default_value = "2048")]
    max_connections: u32,

    /// Percent of a client's RST_STREAM frames the server answers with a
    /// PING (0-100): a client that resets streams and never reads is
    /// disconnected once the acknowledgements it owes pile up.
    #[structopt(long, default_value = "1", parse(try_from_str = parse_percent))]
    ping_on_rst_stream_percent: u32,

    /// Seconds a connection may live before the server asks the client to
    /// reconnect (GOAWAY; varied by up to 10%), so that load spreads onto
    /// replicas added later; 0: never.
    #[structopt(long, default_value = "300", parse(try_from_str = parse_seconds))]
    max_connection_age: Duration,

    /// Seconds the calls in flight on a connection past its age may take to
    /// finish before it is closed under them; 0: as long as they take.
    #[structopt(long, default_value = "0", parse(try_from_str = parse_seconds))]
    max_connection_age_grace: Duration,

    /// Seconds a connection may stay open with no call before the server
    /// closes it (GOAWAY; the client reconnects for its next call); 0:
    /// never.
    #[structopt(long, default_value = "300", parse(try_from_str = parse_seconds))]
    max_connection_idle: Duration,

    /// KiB a client may send on a call before its handler reads it (the
    /// call's flow-control window): what each open call can park in the
    /// server. 0: the core's own window, which grows to 4 MiB and more on
    /// a fast link (faster uploads, and that much parked per call).
    #[structopt(long, default_value = "32")]
    stream_window_kib: u32,

    /// Completion queues, each polled by a thread of its own; 0 is one per
    /// CPU.
    #[structopt(long, default_value = "0")]
    completion_queues: usize,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics (off unless
    /// given; 0 lets the system pick a free port, printed).
    #[structopt(long)]
    metrics_port: Option<u16>,

    /// Also serve the health service alone, in plaintext, on HOST:PORT
    /// (off unless given; 0 lets the system pick a free port, printed): for
    /// probes that cannot speak TLS, such as Kubernetes' gRPC probes.
    #[structopt(long)]
    health_port: Option<u16>,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a duration"))
}

/// A duration flag where 0 means "no limit".
fn unless_zero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

fn parse_percent(text: &str) -> Result<u32, String> {
    match text.parse() {
        Ok(percent) if percent <= 100 => Ok(percent),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

impl ServerOptions {
    /// The log level: `--log`, else `RUST_LOG` if it names a level, else
    /// info.
    pub fn log_level(&self) -> LevelFilter {
        self.log.unwrap_or_else(logging::level_from_env)
    }

    /// The server these flags describe; an error names a file that could
    /// not be read.
    pub fn config(&self) -> Result<ServerConfig, String> {
        Ok(ServerConfig {
            host: self.host.clone(),
            port: self.port,
            reuse_port: self.reuse_port,
            tls: tls_config(&self.tls_cert, &self.tls_key, &self.tls_client_ca)?,
            limits: Limits {
                max_concurrent_streams: self.max_concurrent_streams,
                max_message_size: self.max_message_size,
                keepalive_time: self.keepalive_time,
                keepalive_timeout: self.keepalive_timeout,
                memory_quota_mib: self.memory_quota_mib,
                max_pending_calls: self.max_pending_calls,
                max_connections: self.max_connections,
                ping_on_rst_stream_percent: self.ping_on_rst_stream_percent,
                max_connection_age: unless_zero(self.max_connection_age),
                max_connection_age_grace: unless_zero(self.max_connection_age_grace),
                max_connection_idle: unless_zero(self.max_connection_idle),
                stream_window: (self.stream_window_kib != 0)
                    .then(|| self.stream_window_kib.saturating_mul(1024)),
            },
            completion_queues: self.completion_queues,
            metrics_port: self.metrics_port,
            health_port: self.health_port,
        })
    }
}

fn tls_config(
    cert: &Option<String>,
    key: &Option<String>,
    client_ca: &Option<String>,
) -> Result<Option<TlsFiles>, String> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert_chain: cert.into(),
        private_key: key.into(),
        client_ca: client_ca.as_ref().map(Into::into),
    };
    // Read once here, so that a file that cannot be read stops the start
    // with its name; the server reads them again, and whenever they change.
    files.read()?;
    Ok(Some(files))
}
