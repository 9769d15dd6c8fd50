//! A run's result as the table a person reads, or as the one JSON object
//! `bench/run.py` reads (`--json`).

use std::fmt::Write as _;

use serde_json::json;

use crate::hold::HoldResult;
use crate::load::LoadResult;
use crate::options::Options;

/// A load run's result, as `options` ask.
pub fn load(options: &Options, result: &LoadResult) -> String {
    if options.json {
        load_json(&options.address, result).to_string()
    } else {
        load_table(&options.address, result)
    }
}

/// A hold run's result, as `options` ask.
pub fn hold(options: &Options, result: &HoldResult) -> String {
    if options.json {
        hold_json(&options.address, options.channels, result).to_string()
    } else {
        hold_table(&options.address, options.channels, result)
    }
}

fn load_json(address: &str, r: &LoadResult) -> serde_json::Value {
    json!({
        "mode": "load",
        "address": address,
        "method": r.method.name(),
        "request": r.method.shape(),
        "channels": r.channels,
        "in_flight": r.in_flight,
        "warmup_s": r.warmup.as_secs_f64(),
        "window_s": r.window.as_secs_f64(),
        "calls": r.calls,
        "calls_per_s": r.calls_per_second(),
        "messages_per_call": r.method.messages_per_call(),
        "messages_per_s": r.messages_per_second(),
        "latency_us_p50": r.percentile(0.5),
        "latency_us_p90": r.percentile(0.9),
        "latency_us_p99": r.percentile(0.99),
        "latency_us_p999": r.percentile(0.999),
        "latency_us_max": (!r.latency_us.is_empty()).then(|| r.latency_us.max()),
        "errors": r.errors,
        "first_error": r.first_error,
        "unfinished_workers": r.unfinished_workers,
        "bench_cpu_s": r.bench_cpu_seconds,
        "bench_cpu_percent": r.share(r.bench_cpu_seconds),
        "server_cpu_s": r.server_cpu_seconds,
        "server_cpu_percent": r.share(r.server_cpu_seconds),
        "server_cpu_us_per_call": r.server_cpu_us_per_call(),
        "server_rss_kb": r.server_rss_kb,
    })
}

fn hold_json(address: &str, channels: usize, r: &HoldResult) -> serde_json::Value {
    json!({
        "mode": "hold-streams",
        "address": address,
        "channels": channels,
        "asked": r.asked,
        "opened": r.opened,
        "served": r.served,
        "served_late": r.served_late,
        "open_errors": r.open_errors,
        "open_seconds": r.open_seconds,
        "closed_cleanly": r.closed_cleanly,
        "server_rss_before_kb": r.rss_before_kb,
        "server_rss_open_kb": r.rss_open_kb,
        "server_rss_after_kb": r.rss_after_kb,
        "server_kb_per_open_call": r.per_call_kb(r.opened),
        "server_kb_per_served_call": r.per_call_kb(r.served),
        "bench_rss_open_kb": r.bench_rss_open_kb,
    })
}

/// Rows of a name and a value, the names in a column 28 wide.
fn table(rows: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<28} {value}");
    }
    out
}

fn opt_f(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn opt_u(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
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
    let mut out = table(&rows);
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
    table(&rows)
}
