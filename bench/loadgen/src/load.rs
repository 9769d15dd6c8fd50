//! The closed-loop load run: `in_flight` calls kept open at all times,
//! spread over the target's channels; each worker starts its next call as
//! soon as its previous one is done. Calls that complete during the
//! warm-up are not counted; calls that complete in the timed window are
//! counted, their latency recorded, and every value they return checked (a
//! wrong value is an error). The generator's own CPU use is reported next
//! to the server's, so a saturated generator is visible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fibonacci_grpc::proto::FibonacciClient;
use grpcio::CallOption;
use hdrhistogram::Histogram;

use crate::calls::{one_call, Expected, Method, Target};
use crate::procfs::{self, ProcSample};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: Target,
    pub method: Method,
    pub in_flight: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// The deadline of each call; none if `None`.
    pub call_timeout: Option<Duration>,
    /// The server's process, for its CPU time per call and RSS.
    pub server_pid: Option<u32>,
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

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        thread::sleep(when - now);
    }
}

/// The result of a load run.
pub struct LoadResult {
    pub method: Method,
    pub channels: usize,
    pub in_flight: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub unfinished_workers: usize,
    pub latency_us: Histogram<u64>,
    pub bench_cpu_seconds: Option<f64>,
    pub server_cpu_seconds: Option<f64>,
    pub server_rss_kb: Option<u64>,
}

impl LoadResult {
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.window.as_secs_f64()
    }

    pub fn messages_per_second(&self) -> f64 {
        self.calls_per_second() * self.method.messages_per_call() as f64
    }

    pub fn percentile(&self, q: f64) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q))
    }

    pub fn server_cpu_us_per_call(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.calls > 0).then(|| cpu * 1e6 / self.calls as f64)
    }

    /// CPU use as a share of one core over the window, in percent.
    pub fn share(&self, cpu_seconds: Option<f64>) -> Option<f64> {
        cpu_seconds.map(|cpu| 100.0 * cpu / self.window.as_secs_f64())
    }
}

/// Runs the load and gathers what the workers saw.
pub fn run(config: &LoadConfig) -> Result<LoadResult, String> {
    let (warmup, window_length) = (config.warmup, config.window);
    let call_timeout = config.call_timeout;
    let in_flight = config.in_flight;
    let ticks = procfs::clock_ticks_per_second() as f64;
    let server_pid = config.server_pid.map(|pid| pid.to_string());
    if let Some(pid) = &server_pid {
        if procfs::sample(pid).is_none() {
            return Err(format!("no process {pid} to read /proc/{pid}/stat from"));
        }
    }

    let (_env, clients) = config.target.connect()?;
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
            config.method,
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
    let bench_before = procfs::sample("self");
    let server_before = server_pid.as_deref().and_then(procfs::sample);
    sleep_until(window.end);
    let bench_after = procfs::sample("self");
    let server_after = server_pid.as_deref().and_then(procfs::sample);
    let server_rss_kb = server_pid.as_deref().and_then(procfs::proc_rss_kb);

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
        method: config.method,
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
