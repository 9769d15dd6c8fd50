//! Prometheus metrics, named and labelled as the grpc-ecosystem servers
//! (grpc-go's go-grpc-prometheus and its Java and Python ports) name them,
//! so that existing dashboards and alerts work unchanged; and the HTTP
//! endpoint that serves them (`server --metrics-port`).
//!
//! grpcio has no server interceptors, so each handler counts its own call:
//! [`Metrics::method`] gives a handler the counters of its method, and
//! [`MethodMetrics::start`] the record of one call, which counts its
//! messages and, when it is finished or dropped, its status and duration.
//! The counters of every method and status code exist from the start, at 0,
//! as go-grpc-prometheus's `InitializeMetrics` makes them: a dashboard's
//! `rate()` sees a series that did not move, not a missing one.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use grpcio::{Method, MethodType, RpcStatusCode};
use log::warn;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

mod endpoint;

pub use endpoint::MetricsEndpoint;

/// The label values of `grpc_code`: Go's names of the status codes, which
/// go-grpc-prometheus writes (`Canceled`, with one l), indexed by code.
const CODE_LABELS: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The registry of one server: the gRPC counters of every method, the
/// calls in flight, and the process's own figures (memory, CPU, file
/// descriptors, start time).
pub struct Metrics {
    registry: Registry,
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling_seconds: HistogramVec,
    in_flight: IntGauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

const METHOD_LABELS: [&str; 3] = ["grpc_type", "grpc_service", "grpc_method"];

impl Metrics {
    /// The metrics, registered; [`Metrics::method`] adds each method's
    /// series.
    pub fn new() -> Metrics {
        // The `expect`s below run once, at start-up on the main thread
        // (server::start), before any completion-queue thread exists, on
        // names and labels that are constants here and valid Prometheus
        // identifiers; they can fail only if one of these constants is
        // edited into an invalid one, which every test that starts a server
        // would show at once.
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name")
        };
        let handled_labels = [METHOD_LABELS.as_slice(), &["grpc_code"]].concat();
        let metrics = Metrics {
            registry: Registry::new(),
            started: counter(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &METHOD_LABELS,
            ),
            handled: counter(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &handled_labels,
            ),
            received: counter(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                &METHOD_LABELS,
            ),
            sent: counter(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                &METHOD_LABELS,
            ),
            handling_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "grpc_server_handling_seconds",
                    "Histogram of response latency (seconds) of gRPC that had been \
                     application-level handled by the server.",
                ),
                &METHOD_LABELS,
            )
            .expect("a valid metric name"),
            in_flight: IntGauge::new(
                "fibonacci_server_calls_in_flight",
                "Calls started and not yet finished, on every service.",
            )
            .expect("a valid metric name"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.started.clone()),
            Box::new(metrics.handled.clone()),
            Box::new(metrics.received.clone()),
            Box::new(metrics.sent.clone()),
            Box::new(metrics.handling_seconds.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(ProcessCollector::for_self()),
        ];
        // Each collector is registered once, into a registry of its own,
        // under distinct names: registering cannot fail.
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("each metric is registered once");
        }
        metrics
    }

    /// The counters of `method`, labelled with its path (e.g.
    /// `/fibonacci.Fibonacci/AtIndex`) and type, created at 0 with every
    /// status code.
    pub fn method<Req, Resp>(&self, method: &Method<Req, Resp>) -> Arc<MethodMetrics> {
        self.counters(method.name, method.ty)
    }

    fn counters(&self, path: &str, method_type: MethodType) -> Arc<MethodMetrics> {
        let (service, method) = split_path(path);
        let labels = [type_label(method_type), service, method];
        let handled = CODE_LABELS.map(|code| {
            self.handled
                .with_label_values(&[labels[0], labels[1], labels[2], code])
        });
        Arc::new(MethodMetrics {
            started: self.started.with_label_values(&labels),
            handled,
            received: self.received.with_label_values(&labels),
            sent: self.sent.with_label_values(&labels),
            handling_seconds: self.handling_seconds.with_label_values(&labels),
            in_flight: self.in_flight.clone(),
        })
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into memory fails only on a metric family with no
        // metrics, which a registry never gathers.
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut text) {
            warn!("cannot encode the metrics: {error}");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `/package.Service/Method` as (`package.Service`, `Method`).
fn split_path(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.rsplit_once('/').unwrap_or(("", path))
}

fn type_label(method_type: MethodType) -> &'static str {
    match method_type {
        MethodType::Unary => "unary",
        MethodType::ClientStreaming => "client_stream",
        MethodType::ServerStreaming => "server_stream",
        MethodType::Duplex => "bidi_stream",
    }
}

/// The counters of one method.
#[derive(Debug)]
pub struct MethodMetrics {
    started: IntCounter,
    /// By status code.
    handled: [IntCounter; 17],
    received: IntCounter,
    sent: IntCounter,
    handling_seconds: Histogram,
    in_flight: IntGauge,
}

impl MethodMetrics {
    /// Counts a call as started; the record counts the rest of it.
    pub fn start(self: &Arc<Self>) -> MeteredCall {
        self.started.inc();
        self.in_flight.inc();
        MeteredCall {
            method: Arc::clone(self),
            started: Instant::now(),
            code: RpcStatusCode::CANCELLED,
        }
    }
}

/// One call being counted. Dropping it without [`finish`] counts it as
/// CANCELLED: its future was dropped, i.e. the server cancelled it.
///
/// [`finish`]: MeteredCall::finish
#[derive(Debug)]
pub struct MeteredCall {
    method: Arc<MethodMetrics>,
    started: Instant,
    code: RpcStatusCode,
}

impl MeteredCall {
    /// A request message arrived (and was decoded).
    pub fn received(&self) {
        self.method.received.inc();
    }

    /// A reply message was handed to the C core to send.
    pub fn sent(&self) {
        self.method.sent.inc();
    }

    /// The call ended with `code`: counted now.
    pub fn finish(mut self, code: RpcStatusCode) {
        self.ended_with(code);
    }

    /// The call ended with `code`: counted when the record is dropped.
    pub fn ended_with(&mut self, code: RpcStatusCode) {
        self.code = code;
    }
}

impl Drop for MeteredCall {
    fn drop(&mut self) {
        let method = &self.method;
        let index = usize::try_from(i32::from(self.code)).unwrap_or(usize::MAX);
        // A code outside gRPC's 17 is counted as Unknown, as grpc-go does.
        let handled = method.handled.get(index).unwrap_or(&method.handled[2]);
        handled.inc();
        method
            .handling_seconds
            .observe(self.started.elapsed().as_secs_f64());
        method.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_starting(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/fibonacci.Fibonacci/AtIndex"),
            ("fibonacci.Fibonacci", "AtIndex")
        );
        assert_eq!(
            split_path("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            (
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo"
            )
        );
    }

    #[test]
    fn a_call_is_counted_with_its_messages_code_and_duration() {
        let metrics = Metrics::new();
        let method = metrics.counters(
            "/fibonacci.Fibonacci/GetSequence",
            MethodType::ServerStreaming,
        );
        let call = method.start();
        call.received();
        call.sent();
        call.sent();
        call.finish(RpcStatusCode::OK);
        drop(method.start()); // dropped unfinished: cancelled
        let text = metrics.encode();
        let labels = r#"grpc_method="GetSequence",grpc_service="fibonacci.Fibonacci",grpc_type="server_stream""#;
        assert_eq!(
            lines_starting(&text, "grpc_server_started_total{"),
            [format!("grpc_server_started_total{{{labels}}} 2")]
        );
        assert_eq!(
            lines_starting(&text, "grpc_server_msg_sent_total{"),
            [format!("grpc_server_msg_sent_total{{{labels}}} 2")]
        );
        assert_eq!(
            lines_starting(&text, "grpc_server_msg_received_total{"),
            [format!("grpc_server_msg_received_total{{{labels}}} 1")]
        );
        let handled = lines_starting(&text, "grpc_server_handled_total{");
        assert_eq!(handled.len(), 17);
        let code = |name: &str| {
            handled
                .iter()
                .find(|line| line.contains(&format!("grpc_code=\"{name}\"")))
                .and_then(|line| line.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(code("OK").as_deref(), Some("1"));
        assert_eq!(code("Canceled").as_deref(), Some("1"));
        assert_eq!(code("OutOfRange").as_deref(), Some("0"));
        assert_eq!(
            lines_starting(&text, "grpc_server_handling_seconds_count{"),
            [format!("grpc_server_handling_seconds_count{{{labels}}} 2")]
        );
        assert_eq!(
            lines_starting(&text, "fibonacci_server_calls_in_flight "),
            ["fibonacci_server_calls_in_flight 0"]
        );
        assert_eq!(
            lines_starting(&text, "process_resident_memory_bytes ").len(),
            1
        );
    }
}
