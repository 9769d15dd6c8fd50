//! `--hold-streams N`: opens N StreamSequence calls (each sends 1 and
//! reads its one reply), holds them all open, and measures the server's
//! RSS before, while they are open, and after they are closed.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fibonacci_grpc::fibonacci;
use fibonacci_grpc::proto::{FibonacciClient, Number};
use futures::channel::oneshot;
use futures::prelude::*;
use grpcio::WriteFlags;

use crate::calls::{close, CallFailure, Target};
use crate::procfs;

/// What to hold.
#[derive(Clone, Debug)]
pub struct HoldConfig {
    pub target: Target,
    pub calls: usize,
    /// The server's process, for its RSS.
    pub server_pid: Option<u32>,
    /// How long to wait for every call's first reply, and for every call
    /// to end once closed.
    pub hold_timeout: Duration,
    /// How long to wait after closing before the last RSS reading.
    pub settle: Duration,
}

/// The result of a --hold-streams run.
pub struct HoldResult {
    pub asked: usize,
    pub opened: usize,
    pub served: usize,
    /// Calls first served only once the others were closed (a server
    /// whose bounded worker pool was busy with the held ones).
    pub served_late: usize,
    pub open_errors: usize,
    pub open_seconds: f64,
    pub closed_cleanly: usize,
    pub rss_before_kb: Option<u64>,
    pub rss_open_kb: Option<u64>,
    pub rss_after_kb: Option<u64>,
    pub bench_rss_open_kb: Option<u64>,
}

impl HoldResult {
    pub fn per_call_kb(&self, calls: usize) -> Option<f64> {
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
        if reply.as_ref().map(|r| r.value) != Some(fibonacci::all_in_int32()[1]) {
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

/// Opens, holds and closes the calls, reading the server's RSS between.
pub fn run(config: &HoldConfig) -> Result<HoldResult, String> {
    let count = config.calls;
    let server_pid = config.server_pid.map(|pid| pid.to_string());
    let rss = || server_pid.as_deref().and_then(procfs::proc_rss_kb);
    let (env, clients) = config.target.connect()?;
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
    let give_up = started + config.hold_timeout;
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
    let bench_rss_open_kb = procfs::proc_rss_kb("self");
    let opened = count - open_errors;

    // Close them all: the served ones end at once; calls still waiting for
    // a worker (a bounded pool) end once the server gets to them.
    for closer in closers {
        let _ = closer.send(());
    }
    let (mut closed, mut closed_cleanly, mut served_late) = (0, 0, 0);
    let close_deadline = Instant::now() + config.hold_timeout;
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
    thread::sleep(config.settle);
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
