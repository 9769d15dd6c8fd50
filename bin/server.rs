//! The Fibonacci gRPC server: `server [--host H] [--port P] [--grace-period S] [--reuse-port]`.

use std::process::ExitCode;
use std::time::Duration;

use fibonacci_grpc::server::{self, ServerConfig, ShutdownOutcome};
use fibonacci_grpc::shutdown;
use structopt::StructOpt;

/// Serves the Fibonacci gRPC service of the Python gRPC guide (AtIndex,
/// GetSequence, SumIndicies, StreamSequence). Prints "listening on
/// HOST:PORT" once it accepts calls; SIGINT or SIGTERM shut it down
/// gracefully.
#[derive(Debug, StructOpt)]
#[structopt(name = "server")]
struct Options {
    /// Host to listen on: `[::]` is every interface, IPv6 and IPv4.
    #[structopt(long, default_value = "[::]")]
    host: String,

    /// Port to listen on; 0 lets the system pick a free one (printed).
    #[structopt(long, default_value = "1337")]
    port: u16,

    /// Seconds that calls in flight get to finish after SIGINT/SIGTERM
    /// before they are cancelled.
    #[structopt(long, default_value = "5", parse(try_from_str = parse_seconds))]
    grace_period: Duration,

    /// Share the port with other processes (SO_REUSEPORT), e.g. replicas on
    /// one host. Off by default, so a taken port is an error.
    #[structopt(long)]
    reuse_port: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a duration"))
}

fn main() -> ExitCode {
    let options = Options::from_args();
    let mut signals = match shutdown::listen() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        host: options.host,
        port: options.port,
        reuse_port: options.reuse_port,
    };
    let running = match server::start(&config) {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.address());

    let signal = shutdown::wait(&mut signals);
    println!(
        "{signal}: shutting down, grace period {:?}",
        options.grace_period
    );
    match running.shutdown(options.grace_period) {
        ShutdownOutcome::Drained => println!("stopped: every call in flight finished"),
        ShutdownOutcome::CancelledAfterGrace => {
            println!("stopped: grace period over, cancelled the calls still open")
        }
    }
    ExitCode::SUCCESS
}
