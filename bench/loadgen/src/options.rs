//! The command line, and the run it describes.

use std::time::Duration;

use structopt::StructOpt;

use crate::calls::{Method, Target};
use crate::hold::HoldConfig;
use crate::load::LoadConfig;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "bench",
    about = "Load generator for the Fibonacci gRPC service: calls/s, messages/s, latency \
             percentiles, errors, and the server's CPU per call and RSS (--server-pid)."
)]
pub struct Options {
    /// Server address, host:port.
    #[structopt(long, default_value = "127.0.0.1:1337")]
    pub address: String,

    /// Method to call: AtIndex, GetSequence, SumIndicies or StreamSequence
    /// (case-insensitive; at-index, get_sequence, ... also accepted).
    #[structopt(long, default_value = "AtIndex", parse(try_from_str = Method::parse))]
    method: Method,

    /// Channels (TCP connections) to spread the calls over; at least 1.
    #[structopt(long, default_value = "2")]
    pub channels: usize,

    /// Calls kept in flight at all times (closed loop); at least 1.
    #[structopt(long, default_value = "32")]
    in_flight: usize,

    /// Warm-up before the timed window, in seconds (fractions allowed).
    #[structopt(long, default_value = "1")]
    warmup: f64,

    /// Length of the timed window, in seconds (fractions allowed); more
    /// than 0.
    #[structopt(long, default_value = "4")]
    duration: f64,

    /// Completion-queue threads of the generator's gRPC environment (they
    /// also run the generator's futures); at least 1.
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
    pub json: bool,

    /// Instead of the load test: open N StreamSequence calls, each sends 1
    /// and reads its reply, hold them all open, and report the server's RSS
    /// (needs --server-pid) before, while open, and after closing them.
    #[structopt(long)]
    pub hold_streams: Option<usize>,

    /// With --hold-streams: seconds to wait for every call's first reply
    /// (a server with a bounded worker pool serves only some of them).
    #[structopt(long, default_value = "15")]
    hold_timeout: f64,

    /// With --hold-streams: seconds to wait after closing the calls before
    /// the last RSS reading.
    #[structopt(long, default_value = "3")]
    settle: f64,
}

impl Options {
    /// The counts that must be at least 1 are.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("channels", self.channels),
            ("in-flight", self.in_flight),
            ("client-threads", self.client_threads),
        ] {
            if value == 0 {
                return Err(format!("--{flag} must be at least 1"));
            }
        }
        Ok(())
    }

    fn target(&self) -> Target {
        Target {
            address: self.address.clone(),
            channels: self.channels,
            client_threads: self.client_threads,
        }
    }

    pub fn load_config(&self) -> Result<LoadConfig, String> {
        let window = seconds(self.duration, "duration")?;
        if window.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        Ok(LoadConfig {
            target: self.target(),
            method: self.method,
            in_flight: self.in_flight,
            warmup: seconds(self.warmup, "warmup")?,
            window,
            call_timeout: Some(seconds(self.call_timeout, "call-timeout")?)
                .filter(|timeout| !timeout.is_zero()),
            server_pid: self.server_pid,
        })
    }

    pub fn hold_config(&self, calls: usize) -> Result<HoldConfig, String> {
        Ok(HoldConfig {
            target: self.target(),
            calls,
            server_pid: self.server_pid,
            hold_timeout: seconds(self.hold_timeout, "hold-timeout")?,
            settle: seconds(self.settle, "settle")?,
        })
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{flag} {value} is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Options::from_iter_safe([&["bench"], args].concat()).unwrap()
    }

    #[test]
    fn counts_of_zero_are_refused_and_a_zero_timeout_is_no_deadline() {
        assert_eq!(
            options(&["--channels", "0"]).validate(),
            Err("--channels must be at least 1".to_string())
        );
        assert_eq!(
            options(&["--in-flight", "0"]).validate(),
            Err("--in-flight must be at least 1".to_string())
        );
        assert_eq!(options(&[]).load_config().unwrap().call_timeout, None);
        assert_eq!(
            options(&["--call-timeout", "0.5"])
                .load_config()
                .unwrap()
                .call_timeout,
            Some(Duration::from_millis(500))
        );
        assert!(options(&["--duration", "0"]).load_config().is_err());
    }
}
