//! Load generator for the Fibonacci service (any server that speaks
//! `proto/fibonacci.proto`: this one, the guide's Python server, ...).
//!
//! Closed loop: `--in-flight` calls are kept open at all times, spread over
//! `--channels` connections; each worker starts its next call as soon as
//! its previous one is done. Calls that complete during the warm-up are not
//! counted; calls that complete in the timed window are counted, their
//! latency recorded, and every value they return checked against
//! `fibonacci_grpc::fibonacci` (a wrong value is an error).
//!
//! The request shapes are the guide's:
//! - `AtIndex(46)`: one reply, F(46);
//! - `GetSequence(46)`: 46 replies, F(1)..F(46);
//! - `SumIndicies(7, 5)`: one reply, 18;
//! - `StreamSequence(4, 2, 1)`: sent interleaved (send 4, read 4 replies,
//!   send 2, read 2, send 1, read 1, close): the 7 values F(1)..F(7).
//!
//! `--hold-streams N` instead opens N StreamSequence calls (each sends 1
//! and reads its one reply), holds them all open, and measures the server's
//! RSS before, while they are open, and after they are closed.
//!
//! The futures run on the grpcio client environment's completion-queue
//! threads (`--client-threads`); the tool reports its own CPU use next to
//! the server's, so a saturated generator is visible.

use std::fmt::Write as _;
use std::fs;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fibonacci_grpc::fibonacci::{self, RunningSequence};
use fibonacci_grpc::proto::{FibonacciClient, Number};
use futures::channel::oneshot;
use futures::prelude::*;
use grpcio::{CallOption, ChannelBuilder, EnvBuilder, Environment, WriteFlags};
use hdrhistogram::Histogram;
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "bench",
    about = "Load generator for the Fibonacci gRPC service: calls/s, messages/s, latency \
             percentiles, errors, and the server's CPU per call and RSS (--server-pid)."
)]
struct Options {
    /// Server address, host:port.
    #[structopt(long, default_value = "127.0.0.1:1337")]
    address: String,

    /// Method to call: AtIndex, GetSequence, SumIndicies or StreamSequence
    /// (case-insensitive; at-index, get_sequence, ... also accepted).
    #[structopt(long, default_value = "AtIndex", parse(try_from_str = Method::parse))]
    method: Method,

    /// Channels (TCP connections) to spread the calls over.
    #[structopt(long, default_value = "2")]
    channels: usize,

    /// Calls kept in flight at all times (closed loop).
    #[structopt(long, default_value = "32")]
    in_flight: usize,

    /// Warm-up before the timed window, in seconds (fractions allowed).
    #[structopt(long, default_value = "1")]
    warmup: f64,

    /// Length of the timed window, in seconds (fractions allowed).
    #[structopt(long, default_value = "4")]
    duration: f64,

    /// Completion-queue threads of the generator's gRPC environment (they
    /// also run the generator's futures).
    #[structopt(long, default_value = "2")]
    client_threads: usize,

    /// Deadline of each call, in seconds; a call past it is an error. 0
    /// (the default) sends no deadline, as h2load does: a deadline costs
    /// the server a timer per call. Workers still stuck 30 s after the
    /// window are reported as unfinished either way.
    #[structopt(long, default_value = "0")]
    call_timeout: f64,

    /// The server's process id: adds its CPU time per call (over the timed
    /// window) and its RSS at the end.
    #[structopt(long)]
    server_pid: Option<u32>,

    /// Print one JSON object instead of the table.
    #[structopt(long)]
    json: bool,

    /// Instead of the load test: open N StreamSequence calls, each sends 1
    /// and reads its reply, hold them all open, and report the server's RSS
    /// (needs --server-pid) before, while open, and after closing them.
    #[structopt(long)]
    hold_streams: Option<usize>,

    /// With --hold-streams: seconds to wait for every call's first reply
    /// (a server with a bounded worker pool serves only some of them).
    #[structopt(long, default_value = "15")]
    hold_timeout: f64,

    /// With --hold-streams: seconds to wait after closing the calls before
    /// the last RSS reading.
    #[structopt(long, default_value = "3")]
    settle: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    AtIndex,
    GetSequence,
    SumIndicies,
    StreamSequence,
}

impl Method {
    fn parse(text: &str) -> Result<Method, String> {
        let key: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "atindex" => Ok(Method::AtIndex),
            "getsequence" => Ok(Method::GetSequence),
            "sumindicies" | "sumindices" => Ok(Method::SumIndicies),
            "streamsequence" => Ok(Method::StreamSequence),
            _ => Err(format!(
                "{text:?} is not a method: AtIndex, GetSequence, SumIndicies or StreamSequence"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::AtIndex => "AtIndex",
            Method::GetSequence => "GetSequence",
            Method::SumIndicies => "SumIndicies",
            Method::StreamSequence => "StreamSequence",
        }
    }

    /// The request shape, as the guide sends it.
    fn shape(self) -> &'static str {
        match self {
            Method::AtIndex => "AtIndex(46)",
            Method::GetSequence => "GetSequence(46)",
            Method::SumIndicies => "SumIndicies(7, 5)",
            Method::StreamSequence => "StreamSequence(4, 2, 1) interleaved",
        }
    }

    /// Messages per call, both directions.
    fn messages_per_call(self) -> u64 {
        match self {
            Method::AtIndex => 2,
            Method::GetSequence => 1 + 46,
            Method::SumIndicies => 2 + 1,
            Method::StreamSequence => 3 + 7,
        }
    }
}

/// Why one call did not count as a success.
#[derive(Debug)]
enum CallFailure {
    Grpc(grpcio::Error),
    Wrong(String),
}

impl From<grpcio::Error> for CallFailure {
    fn from(error: grpcio::Error) -> Self {
        CallFailure::Grpc(error)
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Grpc(error) => write!(f, "gRPC error: {error}"),
            CallFailure::Wrong(what) => write!(f, "wrong answer: {what}"),
        }
    }
}

fn expect_values(what: &str, got: &[i32], want: &[i32]) -> Result<(), CallFailure> {
    if got == want {
        Ok(())
    } else {
        Err(CallFailure::Wrong(format!(
            "{what}: got {got:?}, expected {want:?}"
        )))
    }
}

fn known(value: Result<i32, fibonacci::FibonacciError>) -> i32 {
    value.expect("the benchmark's requests are within int32")
}

/// The values every call is checked against, computed once from the
/// arithmetic module.
struct Expected {
    at_index_46: i32,
    sequence_46: Vec<i32>,
    sum_7_5: i32,
    stream_4_2_1: [Vec<i32>; 3],
}

impl Expected {
    fn new() -> Expected {
        let mut running = RunningSequence::default();
        let mut turn = |n| known_slice(running.advance(n));
        let stream_4_2_1 = [turn(4), turn(2), turn(1)];
        Expected {
            at_index_46: known(fibonacci::at_index(46)),
            sequence_46: known_slice(fibonacci::sequence(46)),
            sum_7_5: known(fibonacci::at_index(7)) + known(fibonacci::at_index(5)),
            stream_4_2_1,
        }
    }
}

fn known_slice(values: Result<&'static [i32], fibonacci::FibonacciError>) -> Vec<i32> {
    values
        .expect("the benchmark's requests are within int32")
        .to_vec()
}

/// Half-closes a request stream. grpcio's close can fail with
/// `RpcFinished` when the call's OK status overtakes the completion of the
/// close itself (the server ends the call as soon as it sees the
/// half-close); that is not a failure, and the reply side still reports the
/// real status of the call.
async fn close(sender: &mut grpcio::StreamingCallSink<Number>) -> grpcio::Result<()> {
    match sender.close().await {
        Err(grpcio::Error::RpcFinished(status))
            if status
                .as_ref()
                .is_none_or(|s| s.code() == grpcio::RpcStatusCode::OK) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// One call of `method`, every returned value checked.
async fn one_call(
    client: &FibonacciClient,
    method: Method,
    expected: &Expected,
    option: CallOption,
) -> Result<(), CallFailure> {
    match method {
        Method::AtIndex => {
            let reply = client
                .at_index_async_opt(&Number::from(46), option)?
                .await?;
            expect_values("AtIndex(46)", &[reply.value], &[expected.at_index_46])
        }
        Method::GetSequence => {
            let mut replies = client.get_sequence_opt(&Number::from(46), option)?;
            let mut got = Vec::with_capacity(46);
            while let Some(reply) = replies.try_next().await? {
                got.push(reply.value);
            }
            expect_values("GetSequence(46)", &got, &expected.sequence_46)
        }
        Method::SumIndicies => {
            let (mut sender, receiver) = client.sum_indicies_opt(option)?;
            sender
                .feed((Number::from(7), WriteFlags::default().buffer_hint(true)))
                .await?;
            sender
                .send((Number::from(5), WriteFlags::default()))
                .await?;
            close(&mut sender).await?;
            let reply = receiver.await?;
            expect_values("SumIndicies(7, 5)", &[reply.value], &[expected.sum_7_5])
        }
        Method::StreamSequence => {
            let (mut sender, mut replies) = client.stream_sequence_opt(option)?;
            for (increment, want) in [4, 2, 1].into_iter().zip(&expected.stream_4_2_1) {
                sender
                    .send((Number::from(increment), WriteFlags::default()))
                    .await?;
                let mut got = Vec::with_capacity(want.len());
                while got.len() < want.len() {
                    match replies.try_next().await? {
                        Some(reply) => got.push(reply.value),
                        None => break,
                    }
                }
                expect_values(&format!("StreamSequence turn {increment}"), &got, want)?;
            }
            close(&mut sender).await?;
            // The call ends with OK and nothing more.
            if let Some(extra) = replies.try_next().await? {
                return Err(CallFailure::Wrong(format!(
                    "StreamSequence(4, 2, 1): an 8th value {} after the 7",
                    extra.value
                )));
            }
            Ok(())
        }
    }
}

/// What one worker saw in the timed window.
struct WorkerReport {
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The shared clock of a run: calls completing before `window_start` are
/// warm-up, workers start no call after `window_end`.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

async fn worker(
    client: FibonacciClient,
    method: Method,
    expected: Arc<Expected>,
    window: Window,
    call_timeout: Option<Duration>,
    abort: Arc<AtomicBool>,
) -> WorkerReport {
    let mut report = WorkerReport {
        calls: 0,
        errors: 0,
        first_error: None,
        latency_us: new_histogram(),
    };
    loop {
        let started = Instant::now();
        if started >= window.end || abort.load(Ordering::Relaxed) {
            break;
        }
        let option = match call_timeout {
            Some(timeout) => CallOption::default().timeout(timeout),
            None => CallOption::default(),
        };
        let result = one_call(&client, method, &expected, option).await;
        let finished = Instant::now();
        if finished < window.start || finished > window.end {
            continue;
        }
        match result {
            Ok(()) => {
                report.calls += 1;
                let micros = finished.duration_since(started).as_micros();
                report
                    .latency_us
                    .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
            Err(failure) => {
                report.errors += 1;
                if report.first_error.is_none() {
                    report.first_error = Some(failure.to_string());
                }
            }
        }
    }
    report
}

/// CPU time (user + system) and RSS of a process, from /proc.
#[derive(Clone, Copy, Debug)]
struct ProcSample {
    cpu_ticks: u64,
}

fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from after its last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of a process, in kB.
fn proc_rss_kb(pid: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_kb(&status)
}

fn parse_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sample(pid: &str) -> Option<ProcSample> {
    Some(ProcSample {
        cpu_ticks: proc_cpu_ticks(pid)?,
    })
}

/// Clock ticks per second of /proc's CPU times.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        thread::sleep(when - now);
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{flag} {value} is not a duration"))
}

fn environment(options: &Options) -> Arc<Environment> {
    Arc::new(
        EnvBuilder::new()
            .cq_count(options.client_threads.max(1))
            .name_prefix("bench-cq")
            .build(),
    )
}

/// `count` clients, each on a connection of its own: a local subchannel
/// pool per channel, so grpcio does not share one TCP connection between
/// channels with the same arguments.
fn connect(
    env: &Arc<Environment>,
    address: &str,
    count: usize,
) -> Result<Vec<FibonacciClient>, String> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let channel = ChannelBuilder::new(Arc::clone(env))
            .use_local_subchannel_pool(true)
            .connect(address);
        if !futures_executor::block_on(channel.wait_for_connected(Duration::from_secs(10))) {
            return Err(format!("cannot reach {address} (no connection within 10s)"));
        }
        clients.push(FibonacciClient::new(channel));
    }
    Ok(clients)
}

/// The result of a load run.
struct LoadResult {
    method: Method,
    channels: usize,
    in_flight: usize,
    warmup: Duration,
    window: Duration,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    unfinished_workers: usize,
    latency_us: Histogram<u64>,
    bench_cpu_seconds: Option<f64>,
    server_cpu_seconds: Option<f64>,
    server_rss_kb: Option<u64>,
}

impl LoadResult {
    fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.window.as_secs_f64()
    }

    fn messages_per_second(&self) -> f64 {
        self.calls_per_second() * self.method.messages_per_call() as f64
    }

    fn percentile(&self, q: f64) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q))
    }

    fn server_cpu_us_per_call(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.calls > 0).then(|| cpu * 1e6 / self.calls as f64)
    }

    /// CPU use as a share of one core over the window, in percent.
    fn share(&self, cpu_seconds: Option<f64>) -> Option<f64> {
        cpu_seconds.map(|cpu| 100.0 * cpu / self.window.as_secs_f64())
    }
}

fn run_load(options: &Options) -> Result<LoadResult, String> {
    let warmup = seconds(options.warmup, "warmup")?;
    let window_length = seconds(options.duration, "duration")?;
    if window_length.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    let call_timeout =
        Some(seconds(options.call_timeout, "call-timeout")?).filter(|t| !t.is_zero());
    let in_flight = options.in_flight.max(1);
    let ticks = clock_ticks_per_second() as f64;
    let server_pid = options.server_pid.map(|pid| pid.to_string());
    if let Some(pid) = &server_pid {
        if sample(pid).is_none() {
            return Err(format!("no process {pid} to read /proc/{pid}/stat from"));
        }
    }

    let env = environment(options);
    let clients = connect(&env, &options.address, options.channels)?;
    let expected = Arc::new(Expected::new());
    let abort = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let window = Window {
        start: start + warmup,
        end: start + warmup + window_length,
    };

    let (report_tx, report_rx) = mpsc::channel();
    for index in 0..in_flight {
        let client = clients[index % clients.len()].clone();
        let report_tx = report_tx.clone();
        let future = worker(
            client.clone(),
            options.method,
            Arc::clone(&expected),
            window,
            call_timeout,
            Arc::clone(&abort),
        );
        client.spawn(async move {
            let _ = report_tx.send(future.await);
        });
    }
    drop(report_tx);

    sleep_until(window.start);
    let bench_before = sample("self");
    let server_before = server_pid.as_deref().and_then(sample);
    sleep_until(window.end);
    let bench_after = sample("self");
    let server_after = server_pid.as_deref().and_then(sample);
    let server_rss_kb = server_pid.as_deref().and_then(proc_rss_kb);

    let cpu = |before: Option<ProcSample>, after: Option<ProcSample>| {
        Some(after?.cpu_ticks.saturating_sub(before?.cpu_ticks) as f64 / ticks)
    };

    // Calls in flight at the end of the window finish (they are not
    // counted); a worker stuck past its call's deadline is reported.
    let mut latency_us = new_histogram();
    let (mut calls, mut errors, mut first_error, mut finished) = (0, 0, None, 0);
    let give_up = window.end + call_timeout.unwrap_or_default() + Duration::from_secs(30);
    while finished < in_flight {
        let left = give_up.saturating_duration_since(Instant::now());
        let Ok(report) = report_rx.recv_timeout(left) else {
            break;
        };
        finished += 1;
        calls += report.calls;
        errors += report.errors;
        if first_error.is_none() {
            first_error = report.first_error;
        }
        latency_us
            .add(&report.latency_us)
            .expect("histograms with the same bounds");
    }
    abort.store(true, Ordering::Relaxed);

    Ok(LoadResult {
        method: options.method,
        channels: clients.len(),
        in_flight,
        warmup,
        window: window_length,
        calls,
        errors,
        first_error,
        unfinished_workers: in_flight - finished,
        latency_us,
        bench_cpu_seconds: cpu(bench_before, bench_after),
        server_cpu_seconds: cpu(server_before, server_after),
        server_rss_kb,
    })
}

fn opt_f(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn opt_u(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn json_f(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "null".to_string(),
    }
}

fn json_u(value: Option<u64>) -> String {
    value.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn load_json(address: &str, r: &LoadResult) -> String {
    let fields = [
        ("mode", json_string("load")),
        ("address", json_string(address)),
        ("method", json_string(r.method.name())),
        ("request", json_string(r.method.shape())),
        ("channels", r.channels.to_string()),
        ("in_flight", r.in_flight.to_string()),
        ("warmup_s", format!("{:.3}", r.warmup.as_secs_f64())),
        ("window_s", format!("{:.3}", r.window.as_secs_f64())),
        ("calls", r.calls.to_string()),
        ("calls_per_s", json_f(Some(r.calls_per_second()))),
        (
            "messages_per_call",
            r.method.messages_per_call().to_string(),
        ),
        ("messages_per_s", json_f(Some(r.messages_per_second()))),
        ("latency_us_p50", json_u(r.percentile(0.5))),
        ("latency_us_p90", json_u(r.percentile(0.9))),
        ("latency_us_p99", json_u(r.percentile(0.99))),
        ("latency_us_p999", json_u(r.percentile(0.999))),
        (
            "latency_us_max",
            json_u((!r.latency_us.is_empty()).then(|| r.latency_us.max())),
        ),
        ("errors", r.errors.to_string()),
        (
            "first_error",
            r.first_error.as_deref().map_or("null".into(), json_string),
        ),
        ("unfinished_workers", r.unfinished_workers.to_string()),
        ("bench_cpu_s", json_f(r.bench_cpu_seconds)),
        ("bench_cpu_percent", json_f(r.share(r.bench_cpu_seconds))),
        ("server_cpu_s", json_f(r.server_cpu_seconds)),
        ("server_cpu_percent", json_f(r.share(r.server_cpu_seconds))),
        ("server_cpu_us_per_call", json_f(r.server_cpu_us_per_call())),
        ("server_rss_kb", json_u(r.server_rss_kb)),
    ];
    json_object(&fields)
}

fn json_object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}: {value}", json_string(key)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn load_table(address: &str, r: &LoadResult) -> String {
    let rows = [
        ("server", address.to_string()),
        ("request", r.method.shape().to_string()),
        (
            "channels x in flight",
            format!("{} x {}", r.channels, r.in_flight),
        ),
        (
            "warm-up + window",
            format!(
                "{:.1} s + {:.1} s",
                r.warmup.as_secs_f64(),
                r.window.as_secs_f64()
            ),
        ),
        ("calls", r.calls.to_string()),
        ("calls/s", format!("{:.0}", r.calls_per_second())),
        (
            "messages/s",
            format!(
                "{:.0} ({} per call)",
                r.messages_per_second(),
                r.method.messages_per_call()
            ),
        ),
        (
            "latency p50 / p90 (us)",
            format!(
                "{} / {}",
                opt_u(r.percentile(0.5)),
                opt_u(r.percentile(0.9))
            ),
        ),
        (
            "latency p99 / p99.9 (us)",
            format!(
                "{} / {}",
                opt_u(r.percentile(0.99)),
                opt_u(r.percentile(0.999))
            ),
        ),
        ("errors", r.errors.to_string()),
        (
            "server CPU per call (us)",
            opt_f(r.server_cpu_us_per_call(), 1),
        ),
        (
            "server CPU (% of a core)",
            opt_f(r.share(r.server_cpu_seconds), 0),
        ),
        (
            "generator CPU (% of a core)",
            opt_f(r.share(r.bench_cpu_seconds), 0),
        ),
        ("server RSS at end (kB)", opt_u(r.server_rss_kb)),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<28} {value}");
    }
    if let Some(error) = &r.first_error {
        let _ = writeln!(out, "{:<28} {error}", "first error");
    }
    if r.unfinished_workers > 0 {
        let _ = writeln!(
            out,
            "{:<28} {} (stuck past their call deadline)",
            "unfinished workers", r.unfinished_workers
        );
    }
    out
}

/// The result of a --hold-streams run.
struct HoldResult {
    asked: usize,
    opened: usize,
    served: usize,
    /// Calls first served only once the others were closed (a server
    /// whose bounded worker pool was busy with the held ones).
    served_late: usize,
    open_errors: usize,
    open_seconds: f64,
    closed_cleanly: usize,
    rss_before_kb: Option<u64>,
    rss_open_kb: Option<u64>,
    rss_after_kb: Option<u64>,
    bench_rss_open_kb: Option<u64>,
}

impl HoldResult {
    fn per_call_kb(&self, calls: usize) -> Option<f64> {
        let grown = self.rss_open_kb? as f64 - self.rss_before_kb? as f64;
        (calls > 0).then(|| grown / calls as f64)
    }
}

enum HoldEvent {
    /// The call's first reply arrived and was right.
    Served,
    /// The call failed before its first reply, or the reply was wrong.
    Failed(String),
    /// The call was closed and ended with OK.
    Closed(bool),
}

/// One held call: send 1, read F(1), wait for the signal, close, read the
/// end of the call.
async fn hold_one(
    client: FibonacciClient,
    events: mpsc::Sender<HoldEvent>,
    close_signal: oneshot::Receiver<()>,
) {
    let first = async {
        let (mut sender, mut replies) = client.stream_sequence()?;
        sender
            .send((Number::from(1), WriteFlags::default()))
            .await?;
        let reply = replies.try_next().await?;
        if reply.as_ref().map(|r| r.value) != Some(known(fibonacci::at_index(1))) {
            return Err(CallFailure::Wrong(format!(
                "StreamSequence(1): got {:?}, expected [1]",
                reply.map(|r| r.value)
            )));
        }
        Ok((sender, replies))
    };
    let (mut sender, mut replies) = match first.await {
        Ok(call) => {
            let _ = events.send(HoldEvent::Served);
            call
        }
        Err(failure) => {
            let _ = events.send(HoldEvent::Failed(failure.to_string()));
            return;
        }
    };
    let _ = close_signal.await;
    let ended = async {
        close(&mut sender).await?;
        Ok::<_, grpcio::Error>(replies.try_next().await?.is_none())
    };
    let _ = events.send(HoldEvent::Closed(matches!(ended.await, Ok(true))));
}

fn run_hold(options: &Options, count: usize) -> Result<HoldResult, String> {
    let server_pid = options.server_pid.map(|pid| pid.to_string());
    let rss = || server_pid.as_deref().and_then(proc_rss_kb);
    let env = environment(options);
    let clients = connect(&env, &options.address, options.channels)?;
    // Let the connections settle before the baseline.
    thread::sleep(Duration::from_millis(500));
    let rss_before_kb = rss();

    let started = Instant::now();
    let (events_tx, events_rx) = mpsc::channel();
    let mut closers = Vec::with_capacity(count);
    for index in 0..count {
        let client = clients[index % clients.len()].clone();
        let (close_tx, close_rx) = oneshot::channel();
        closers.push(close_tx);
        let events = events_tx.clone();
        client.spawn(hold_one(client.clone(), events, close_rx));
    }
    drop(events_tx);

    // Wait for every first reply, or for the timeout.
    let give_up = started + seconds(options.hold_timeout, "hold-timeout")?;
    let (mut served, mut open_errors, mut first_error) = (0, 0, None);
    while served + open_errors < count {
        let left = give_up.saturating_duration_since(Instant::now());
        match events_rx.recv_timeout(left) {
            Ok(HoldEvent::Served) => served += 1,
            Ok(HoldEvent::Failed(error)) => {
                open_errors += 1;
                first_error.get_or_insert(error);
            }
            Ok(HoldEvent::Closed(_)) => {}
            Err(_) => break,
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    if let Some(error) = first_error {
        eprintln!("bench: {open_errors} held calls failed; first: {error}");
    }
    // Let the server finish whatever the last calls set off.
    thread::sleep(Duration::from_secs(1));
    let rss_open_kb = rss();
    let bench_rss_open_kb = proc_rss_kb("self");
    let opened = count - open_errors;

    // Close them all: the served ones end at once; calls still waiting for
    // a worker (a bounded pool) end once the server gets to them.
    for closer in closers {
        let _ = closer.send(());
    }
    let (mut closed, mut closed_cleanly, mut served_late) = (0, 0, 0);
    let close_deadline = Instant::now() + seconds(options.hold_timeout, "hold-timeout")?;
    // Wait for every opened call to end (or the deadline).
    while closed < opened {
        let left = close_deadline.saturating_duration_since(Instant::now());
        match events_rx.recv_timeout(left) {
            Ok(HoldEvent::Closed(clean)) => {
                closed += 1;
                closed_cleanly += usize::from(clean);
            }
            Ok(HoldEvent::Served) => served_late += 1,
            Ok(HoldEvent::Failed(_)) => {}
            Err(_) => break,
        }
    }
    // Drop the connections too, then let the server release what it frees.
    drop(clients);
    drop(env);
    thread::sleep(seconds(options.settle, "settle")?);
    let rss_after_kb = rss();

    Ok(HoldResult {
        asked: count,
        opened,
        served,
        served_late,
        open_errors,
        open_seconds,
        closed_cleanly,
        rss_before_kb,
        rss_open_kb,
        rss_after_kb,
        bench_rss_open_kb,
    })
}

fn hold_fields(address: &str, channels: usize, r: &HoldResult) -> Vec<(&'static str, String)> {
    vec![
        ("mode", json_string("hold-streams")),
        ("address", json_string(address)),
        ("channels", channels.to_string()),
        ("asked", r.asked.to_string()),
        ("opened", r.opened.to_string()),
        ("served", r.served.to_string()),
        ("served_late", r.served_late.to_string()),
        ("open_errors", r.open_errors.to_string()),
        ("open_seconds", json_f(Some(r.open_seconds))),
        ("closed_cleanly", r.closed_cleanly.to_string()),
        ("server_rss_before_kb", json_u(r.rss_before_kb)),
        ("server_rss_open_kb", json_u(r.rss_open_kb)),
        ("server_rss_after_kb", json_u(r.rss_after_kb)),
        ("server_kb_per_open_call", json_f(r.per_call_kb(r.opened))),
        ("server_kb_per_served_call", json_f(r.per_call_kb(r.served))),
        ("bench_rss_open_kb", json_u(r.bench_rss_open_kb)),
    ]
}

fn hold_table(address: &str, channels: usize, r: &HoldResult) -> String {
    let rows = [
        ("server", address.to_string()),
        (
            "StreamSequence calls asked",
            format!("{} over {channels} channels", r.asked),
        ),
        ("opened (no error)", r.opened.to_string()),
        (
            "served (first reply came)",
            format!("{} (in {:.2} s)", r.served, r.open_seconds),
        ),
        ("served after the close", r.served_late.to_string()),
        ("closed with OK", r.closed_cleanly.to_string()),
        ("server RSS before (kB)", opt_u(r.rss_before_kb)),
        ("server RSS all open (kB)", opt_u(r.rss_open_kb)),
        ("server RSS after close (kB)", opt_u(r.rss_after_kb)),
        ("server kB per open call", opt_f(r.per_call_kb(r.opened), 2)),
        (
            "server kB per served call",
            opt_f(r.per_call_kb(r.served), 2),
        ),
        ("generator RSS all open (kB)", opt_u(r.bench_rss_open_kb)),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<28} {value}");
    }
    out
}

fn main() -> ExitCode {
    let options = Options::from_args();
    if options.channels == 0 || options.client_threads == 0 {
        eprintln!("error: --channels and --client-threads must be at least 1");
        return ExitCode::from(2);
    }
    // Counted so a stray panic on a completion-queue thread is not silent.
    static PANICS: AtomicU64 = AtomicU64::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));

    let outcome = match options.hold_streams {
        Some(count) => run_hold(&options, count).map(|r| {
            if options.json {
                json_object(&hold_fields(&options.address, options.channels, &r))
            } else {
                hold_table(&options.address, options.channels, &r)
            }
        }),
        None => run_load(&options).map(|r| {
            if options.json {
                load_json(&options.address, &r)
            } else {
                load_table(&options.address, &r)
            }
        }),
    };
    match outcome {
        Ok(text) => {
            println!("{}", text.trim_end());
            if PANICS.load(Ordering::Relaxed) > 0 {
                eprintln!("error: the generator panicked; the numbers above are not valid");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_past_a_command_with_spaces() {
        let stat = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t   11796 kB\nThreads:\t5\n";
        assert_eq!(parse_rss_kb(status), Some(11796));
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::parse("AtIndex"), Ok(Method::AtIndex));
        assert_eq!(Method::parse("get-sequence"), Ok(Method::GetSequence));
        assert_eq!(Method::parse("sum_indicies"), Ok(Method::SumIndicies));
        assert_eq!(Method::parse("streamsequence"), Ok(Method::StreamSequence));
        assert!(Method::parse("Fib").is_err());
    }

    #[test]
    fn expected_values_come_from_the_arithmetic() {
        let expected = Expected::new();
        assert_eq!(expected.at_index_46, 1_836_311_903);
        assert_eq!(expected.sequence_46.len(), 46);
        assert_eq!(expected.sum_7_5, 18);
        assert_eq!(
            expected.stream_4_2_1,
            [vec![1, 1, 2, 3], vec![5, 8], vec![13]]
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
