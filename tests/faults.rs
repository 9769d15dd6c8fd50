//! Faults, with the real server binary and the library's own client
//! (`client::connect`, its retry policy included): a server killed under
//! load and started again on its port, SIGTERM with 100 streams mid-flight,
//! a replica of three killed under round-robin load. Every answer is
//! checked (`client::checked`); what may fail, and with which status, is
//! asserted exactly.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{ServerProcess, STEP_TIMEOUT};
use fibonacci_grpc::client::checked::{self, one_call, CallFailure, Expected, Method};
use fibonacci_grpc::client::{self, ClientOptions};
use fibonacci_grpc::fibonacci::RunningSequence;
use fibonacci_grpc::proto::{FibonacciClient, Number};
use futures::prelude::*;
use futures_executor::block_on;
use grpcio::{CallOption, RpcStatusCode, WriteFlags};
use structopt::StructOpt;

const METHODS: [Method; 4] = [
    Method::AtIndex,
    Method::GetSequence,
    Method::SumIndicies,
    Method::StreamSequence,
];
/// Threads calling the service back to back, each on the shared channel.
const LOAD_THREADS: usize = 4;

fn connect(address: &str) -> FibonacciClient {
    let options = ClientOptions::from_iter_safe(["client", address]).expect("client options");
    client::connect(&options).expect("connect to the server")
}

/// One call the load made: when it started and ended, and how.
struct CallRecord {
    method: Method,
    started: Instant,
    ended: Instant,
    outcome: Result<(), CallFailure>,
}

impl CallRecord {
    /// The status code of a call that failed with one (None for OK or a
    /// wrong answer). A streaming call's send side reports the status as
    /// `RpcFinished` when the call ended before the send completed.
    fn code(&self) -> Option<RpcStatusCode> {
        match &self.outcome {
            Err(CallFailure::Grpc(
                grpcio::Error::RpcFailure(status) | grpcio::Error::RpcFinished(Some(status)),
            )) => Some(status.code()),
            _ => None,
        }
    }

    fn describe(&self, origin: Instant) -> String {
        let outcome = match &self.outcome {
            Ok(()) => "OK".to_string(),
            Err(failure) => failure.to_string(),
        };
        format!(
            "{:?} from {:?} to {:?}: {outcome}",
            self.method,
            self.started - origin,
            self.ended - origin
        )
    }
}

/// Calls all four methods in turn from [`LOAD_THREADS`] threads until
/// `stop` is set; returns every call's record. A call's deadline is the
/// test's step timeout, so a call that hangs ends as a failure.
fn run_load(
    client: &FibonacciClient,
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<CallRecord>> {
    let workers: Vec<_> = (0..LOAD_THREADS)
        .map(|worker| {
            let client = client.clone();
            let stop = Arc::clone(stop);
            thread::spawn(move || {
                let expected = Expected::new();
                let mut records = Vec::new();
                for turn in worker.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let method = METHODS[turn % METHODS.len()];
                    let started = Instant::now();
                    let option = CallOption::default().timeout(STEP_TIMEOUT);
                    let outcome = block_on(one_call(&client, method, &expected, option));
                    records.push(CallRecord {
                        method,
                        started,
                        ended: Instant::now(),
                        outcome,
                    });
                }
                records
            })
        })
        .collect();
    thread::spawn(move || {
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a load thread"))
            .collect()
    })
}

/// Asserts the load's calls around a fault at `fault`: none got a wrong
/// answer; every call started after the fault succeeded; a call in flight
/// at the fault succeeded, or ended UNAVAILABLE if it was a stream already
/// answering (which cannot be retried). Returns the calls started after the fault,
/// and prints what the load saw (`cargo test -- --nocapture` shows it).
fn assert_no_call_after_the_fault_failed(
    what: &str,
    records: &[CallRecord],
    origin: Instant,
    fault: Instant,
) -> usize {
    let in_flight: Vec<&CallRecord> = records
        .iter()
        .filter(|r| r.started < fault && r.ended >= fault)
        .collect();
    let slowest_after = records
        .iter()
        .filter(|r| r.started >= fault)
        .map(|r| r.ended - r.started)
        .max()
        .unwrap_or_default();
    println!(
        "{what}: {} calls; {} in flight at the fault, {} of them UNAVAILABLE; \
         {} started after it, the slowest {:?}",
        records.len(),
        in_flight.len(),
        in_flight.iter().filter(|r| r.outcome.is_err()).count(),
        records.iter().filter(|r| r.started >= fault).count(),
        slowest_after,
    );
    let mut after = 0;
    for record in records {
        let line = record.describe(origin);
        assert!(
            !matches!(record.outcome, Err(CallFailure::Wrong(_))),
            "wrong answer: {line}"
        );
        if record.started >= fault {
            assert!(
                record.outcome.is_ok(),
                "a call started after the fault failed: {line}"
            );
            after += 1;
        } else if record.ended >= fault && record.outcome.is_err() {
            // Only a stream that had a reply already cannot be retried.
            assert_eq!(record.code(), Some(RpcStatusCode::UNAVAILABLE), "{line}");
            assert!(
                matches!(record.method, Method::GetSequence | Method::StreamSequence),
                "{line}"
            );
        }
    }
    after
}

/// A StreamSequence call held open: it has sent 4 and read F(1)..F(4).
struct HeldStream {
    requests: grpcio::ClientDuplexSender<Number>,
    replies: grpcio::ClientDuplexReceiver<Number>,
    running: RunningSequence,
}

impl HeldStream {
    fn open(client: &FibonacciClient) -> HeldStream {
        let (requests, replies) = client.stream_sequence().expect("start StreamSequence");
        let mut held = HeldStream {
            requests,
            replies,
            running: RunningSequence::default(),
        };
        held.turn(4).expect("the first turn of a held stream");
        held
    }

    /// Sends `increment` and reads its replies, checking each value.
    fn turn(&mut self, increment: i32) -> Result<(), grpcio::Error> {
        let want = self
            .running
            .advance(increment)
            .expect("the test stays within int32")
            .to_vec();
        block_on(
            self.requests
                .send((Number::from(increment), WriteFlags::default())),
        )?;
        for value in want {
            match block_on(self.replies.try_next())? {
                Some(reply) => assert_eq!(reply.value, value, "a held stream's reply"),
                None => panic!("a held stream ended OK in the middle of a turn"),
            }
        }
        Ok(())
    }

    /// Half-closes and waits for the status; OK if the stream ends with
    /// nothing more.
    fn finish(mut self) -> RpcStatusCode {
        if let Err(error) = block_on(checked::close(&mut self.requests)) {
            return self.ended_with(error);
        }
        match block_on(self.replies.try_next()) {
            Ok(None) => RpcStatusCode::OK,
            Ok(Some(extra)) => panic!("a reply after the half-close: {}", extra.value),
            Err(error) => self.ended_with(error),
        }
    }

    /// The status the stream ended with, given the error an operation on
    /// it failed with: the send side may learn of the end first, but the
    /// receive side has the status.
    fn ended_with(mut self, error: grpcio::Error) -> RpcStatusCode {
        if let grpcio::Error::RpcFailure(status) = error {
            return status.code();
        }
        match block_on(self.replies.try_next()) {
            Err(grpcio::Error::RpcFailure(status)) => status.code(),
            other => panic!("no status after {error:?}: {other:?}"),
        }
    }

    /// The status the stream ends with after a fault: the next turn's.
    fn status_after_fault(mut self) -> RpcStatusCode {
        match self.turn(1) {
            Ok(()) => RpcStatusCode::OK,
            Err(error) => self.ended_with(error),
        }
    }
}

fn port_of(address: &str) -> &str {
    address.rsplit(':').next().expect("HOST:PORT")
}

#[test]
fn a_server_killed_and_started_again_on_its_port_loses_no_call() {
    let origin = Instant::now();
    let mut server = ServerProcess::start();
    let address = server.address.clone();
    let client = connect(&address);
    let held: Vec<HeldStream> = (0..10).map(|_| HeldStream::open(&client)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = run_load(&client, &stop);

    thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGKILL);
    server.wait();
    let killed = Instant::now();
    // One call of each method started while nothing listens on the port.
    let during_outage: Vec<_> = METHODS
        .into_iter()
        .map(|method| {
            let client = client.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let option = CallOption::default().timeout(STEP_TIMEOUT);
                let outcome = block_on(one_call(&client, method, &Expected::new(), option));
                (method, outcome, started.elapsed())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let restarted = ServerProcess::start_with(&["--port", port_of(&address)]);
    assert_eq!(restarted.address, address);
    let back = Instant::now();
    for call in during_outage {
        let (method, outcome, took) = call.join().expect("a call during the outage");
        assert!(
            outcome.is_ok(),
            "{method:?} started during the outage: {outcome:?}"
        );
        println!("{method:?} started during the outage: OK in {took:?}");
    }
    thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let records = load.join().expect("the load");

    let after_kill =
        assert_no_call_after_the_fault_failed("killed and restarted", &records, origin, killed);
    println!(
        "the port was served again {:?} after the kill",
        back - killed
    );
    // The load carried on: every method answered again after the restart.
    for method in METHODS {
        assert!(
            records
                .iter()
                .any(|r| r.method == method && r.started >= back && r.outcome.is_ok()),
            "no {method:?} call succeeded after the restart ({after_kill} calls after the kill)"
        );
    }
    // The streams open at the kill cannot go on: each ends UNAVAILABLE,
    // none hangs, none gets a wrong value.
    let codes: Vec<RpcStatusCode> = held
        .into_iter()
        .map(HeldStream::status_after_fault)
        .collect();
    assert_eq!(codes, vec![RpcStatusCode::UNAVAILABLE; 10]);
}

#[test]
fn sigterm_with_100_streams_mid_flight_drains_or_cancels_each() {
    const STREAMS: usize = 100;
    const FINISHING: usize = 60;
    let grace = Duration::from_secs(2);
    let mut server = ServerProcess::start_with(&["--grace-period", "2"]);
    let client = connect(&server.address);
    // Every stream sends a message every 100 ms (the load) and checks each
    // reply; after SIGTERM the first 60 finish, the other 40 go on until
    // the server ends them.
    let opened = Arc::new(Barrier::new(STREAMS + 1));
    let sigterm_sent = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = (0..STREAMS)
        .map(|number| {
            let client = client.clone();
            let opened = Arc::clone(&opened);
            let sigterm_sent = Arc::clone(&sigterm_sent);
            thread::spawn(move || {
                let mut stream = HeldStream::open(&client);
                opened.wait();
                let mut turns_after_sigterm = 0;
                loop {
                    thread::sleep(Duration::from_millis(100));
                    if sigterm_sent.load(Ordering::SeqCst) {
                        turns_after_sigterm += 1;
                        if number < FINISHING && turns_after_sigterm == 3 {
                            return (stream.finish(), Instant::now());
                        }
                    }
                    if let Err(error) = stream.turn(1) {
                        return (stream.ended_with(error), Instant::now());
                    }
                }
            })
        })
        .collect();
    opened.wait();
    thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let sigterm = Instant::now();
    sigterm_sent.store(true, Ordering::SeqCst);
    assert_eq!(
        server.next_line(),
        "SIGTERM: shutting down, grace period 2s"
    );

    let ends: Vec<(RpcStatusCode, Instant)> = streams
        .into_iter()
        .map(|stream| stream.join().expect("a stream thread"))
        .collect();
    let codes: Vec<RpcStatusCode> = ends.iter().map(|(code, _)| *code).collect();
    let mut expected = vec![RpcStatusCode::OK; FINISHING];
    // The C core ends what is left with grpc_server_cancel_all_calls.
    expected.extend(vec![RpcStatusCode::UNAVAILABLE; STREAMS - FINISHING]);
    assert_eq!(codes, expected);
    let last_end = ends.iter().map(|(_, ended)| *ended - sigterm).max();
    println!(
        "SIGTERM: the last of {STREAMS} streams ended {last_end:?} after it (grace {grace:?})"
    );
    for (_, ended) in &ends {
        assert!(
            *ended - sigterm < grace + Duration::from_secs(2),
            "a stream ended {:?} after SIGTERM, past the grace period",
            *ended - sigterm
        );
    }
    assert_eq!(
        server.next_line(),
        format!(
            "stopped: {FINISHING} calls drained, {} cancelled",
            STREAMS - FINISHING
        )
    );
    assert!(server.wait().success());
}

#[test]
fn a_replica_of_three_killed_under_round_robin_load_fails_no_later_call() {
    let origin = Instant::now();
    let mut replicas: Vec<ServerProcess> = (0..3).map(|_| ServerProcess::start()).collect();
    let addresses: Vec<&str> = replicas.iter().map(|r| r.address.as_str()).collect();
    let client = connect(&addresses.join(","));
    let stop = Arc::new(AtomicBool::new(false));
    let load = run_load(&client, &stop);

    thread::sleep(Duration::from_millis(500));
    replicas[1].signal(libc::SIGKILL);
    replicas[1].wait();
    let died = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let records = load.join().expect("the load");

    let after = assert_no_call_after_the_fault_failed("replica killed", &records, origin, died);
    assert!(after >= METHODS.len(), "only {after} calls after the kill");
}
