//! The tonic peer of the Rust server, for `make bench` (bench/run.py): the
//! same fibonacci.Fibonacci service (proto/fibonacci.proto) on tonic 0.14
//! and tokio, beside the grpc-go peer (bench/go), with the same behaviour,
//! command line and output as that one (bench/go/server.go).
//!
//! No per-call logging. Prints "listening on HOST:PORT (...)" as its first
//! line once it accepts connections; SIGTERM or SIGINT stops it (calls
//! still running get -grace to finish, then are cut off), and it exits 0.
//!
//! - `fibonacci`: the service, its message and its table;
//! - `options`: the command line (`tonic-server -addr 127.0.0.1:0`);
//! - build.rs: the service trait and router, generated without protoc.
//!
//! It runs as a tonic user's server runs by default. What it sets, and why:
//! - at most -max-concurrent-streams calls per connection (256), as the
//!   grpc-go peer does: room for bench/run.py's 250 held calls per
//!   connection, where tonic by default sets no limit at all;
//! - messages of at most 64 KiB each way, as the grpc-go peer does (the
//!   Rust server's --max-message-size), where tonic's defaults are 4 MiB
//!   received and no limit sent;
//! - TCP_NODELAY on accepted connections: not a change but tonic's own
//!   default, which `Server::serve` applies and `serve_with_incoming_shutdown`
//!   (used so the line can name the port the system picked) leaves to the
//!   caller;
//! - the graceful stop and its grace period, as the grpc-go peer does.
//!
//! The runtime is `#[tokio::main]`'s: multi-threaded, one worker per CPU.

mod fibonacci;
mod options;

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::fibonacci::{FibonacciServer, FibonacciService};
use crate::options::{Command, Options};

/// The largest message either way, as the grpc-go peer sets it.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Command::Serve(options)) => options,
        Ok(Command::Help) => {
            print!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("tonic-server: {message}\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    match serve(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tonic-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, then stops gracefully: no new
/// connections, running calls get `options.grace` to finish, and whatever
/// is still running then is cut off when the runtime drops it.
async fn serve(options: Options) -> Result<(), Box<dyn Error>> {
    let address = tokio::net::lookup_host(&options.addr)
        .await?
        .next()
        .ok_or_else(|| format!("{} names no address", options.addr))?;
    let incoming = TcpIncoming::bind(address)?.with_nodelay(Some(true));
    let local_address = incoming.local_addr()?;

    let service = FibonacciServer::new(FibonacciService)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let (stop, stopped) = oneshot::channel::<()>();
    let mut serving = tokio::spawn(
        Server::builder()
            .max_concurrent_streams(options.max_concurrent_streams)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                // An error here is the sender dropped, which only happens
                // once serve has returned.
                let _ = stopped.await;
            }),
    );

    // Caught from before the line on, so that a signal sent as soon as it
    // is read stops the server gracefully instead of killing it.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "listening on {local_address} (tonic {}, tokio {}, rustc {}, {} worker threads)",
        env!("TONIC_VERSION"),
        env!("TOKIO_VERSION"),
        env!("RUSTC_VERSION"),
        tokio::runtime::Handle::current().metrics().num_workers(),
    )?;
    stdout.flush()?;
    drop(stdout);

    tokio::select! {
        served = &mut serving => return Ok(served??),
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    let _ = stop.send(());
    if let Ok(served) = tokio::time::timeout(options.grace, serving).await {
        served??;
    }
    Ok(())
}
