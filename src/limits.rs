//! What one client, and all of them together, may take from the server.
//!
//! [`Limits`] holds the bounds the command line sets. [`core_limits`] turns
//! them, with the settings that are not flags, into the C core's channel
//! arguments, as data: each with its value, what it protects the server
//! from, and the test that shows it. The limit table in docs/hardening.md
//! is the same list with the limits that are not channel arguments (the
//! memory quota, open files), and a unit test below keeps the two in step.

use std::ffi::CStr;
use std::time::Duration;

/// Bounds that keep one client from starving the others.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent calls (HTTP/2 streams) one connection may have open.
    pub max_concurrent_streams: u32,
    /// Largest request message received, in bytes, once decompressed; a
    /// larger one ends its call with RESOURCE_EXHAUSTED.
    pub max_message_size: u32,
    /// Idle time after which the server pings a connection...
    pub keepalive_time: Duration,
    /// ...and how long it waits for the answer before closing it.
    pub keepalive_timeout: Duration,
    /// Memory the C core may use for all connections and calls together.
    pub memory_quota_mib: u32,
    /// Calls that have arrived but that no handler has taken up yet. Past
    /// this many, the C core refuses a growing share of new ones with
    /// RESOURCE_EXHAUSTED, and all of them at three times as many: the
    /// bound that keeps a flood of streams (e.g. an HTTP/2 rapid reset)
    /// from queueing without limit.
    pub max_pending_calls: u32,
    /// Connections held open at once; past this many, the C core closes a
    /// new connection as soon as it is accepted.
    pub max_connections: u32,
    /// Percent of the RST_STREAM frames a client sends that the server
    /// answers with a PING. A client that resets streams but never reads
    /// runs out of room for the acknowledgements the server owes it, and
    /// its connection is closed.
    pub ping_on_rst_stream_percent: u32,
    /// How long a connection may live before the server asks the client
    /// to open a new one (a GOAWAY; the core varies it by up to 10% so
    /// that clients do not all reconnect at once), so that clients behind
    /// a load balancer that picks a replica per connection spread onto
    /// replicas added later. `None`: as long as the client likes.
    pub max_connection_age: Option<Duration>,
    /// How long the calls in flight on a connection past its age may take
    /// to finish before the connection is closed under them. `None`: as
    /// long as they take.
    pub max_connection_age_grace: Option<Duration>,
    /// How long a connection may stay open with no call before the server
    /// closes it (with a GOAWAY; a client opens a new one for its next
    /// call). `None`: for ever.
    pub max_connection_idle: Option<Duration>,
    /// The flow-control window of each call's request, in bytes: what a
    /// client may send on a call before the handler reads it. The core
    /// holds up to this much for every call open, so with the stream limit
    /// it bounds what a connection can park in the server. `None`: the
    /// core's own window, grown from 64 KiB to 4 MiB and more by its
    /// estimate of the link's bandwidth-delay product.
    pub stream_window: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_streams: 100,
            max_message_size: 64 * 1024,
            keepalive_time: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            memory_quota_mib: 512,
            max_pending_calls: 1000,
            max_connections: 2048,
            ping_on_rst_stream_percent: 1,
            max_connection_age: Some(Duration::from_secs(300)),
            max_connection_age_grace: None,
            max_connection_idle: Some(Duration::from_secs(300)),
            stream_window: Some(STREAM_WINDOW),
        }
    }
}

/// One channel argument of the C core that bounds what clients can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreLimit {
    /// The argument's name, as the core reads it.
    pub arg: &'static CStr,
    /// Its value on this server (-1, where the core takes it so, is no
    /// limit).
    pub value: i32,
    /// The attack it stops; for a limit lifted, the attack that re-opens
    /// and what closes it instead.
    pub protects: &'static str,
    /// The test that shows it: a test function in `interop/tests` or
    /// `tests/`, and for a parametrized one, the case in brackets.
    pub test: &'static str,
}

/// The core's metadata (header) limits, set to the core's own defaults so
/// that they are visible here: past the soft limit a growing share of
/// requests is refused, past the hard limit every one.
const METADATA_SOFT_LIMIT: i32 = 8 * 1024;
const METADATA_HARD_LIMIT: i32 = 16 * 1024;

/// The most a connection's reads take ahead of what the message being
/// received needs: four of the core's 64 KiB read slices. One slice bounds
/// the attack as well, but then the bound also cuts ordinary connections'
/// reads, at a cost per call (BENCHMARKS.md).
const READ_AHEAD_LIMIT: i32 = 256 * 1024;

/// Each call's request window by default. The core's own window grows to
/// megabytes a call, and a client that fills its calls' windows without
/// finishing a request parks that much in the server; this bounds it at
/// the stream limit times this per connection (docs/hardening.md, "DATA
/// past the window").
const STREAM_WINDOW: u32 = 32 * 1024;

/// The C core takes these as i32; values past that mean "no limit".
fn clamp(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn milliseconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// The core takes `i32::MAX` milliseconds as "never" for its connection
/// timers.
fn milliseconds_or_never(duration: Option<Duration>) -> i32 {
    duration.map_or(i32::MAX, milliseconds)
}

/// The channel arguments that bound what clients can take, for `limits`.
pub fn core_limits(limits: &Limits) -> Vec<CoreLimit> {
    vec![
        CoreLimit {
            arg: c"grpc.max_receive_message_length",
            value: clamp(limits.max_message_size),
            protects: "large requests and decompression bombs: the transport refuses a message \
                       whose length prefix passes it before buffering it, and decompression \
                       stops at it",
            test: "test_compressed_requests_past_the_limit_are_refused",
        },
        CoreLimit {
            arg: c"grpc.max_send_message_length",
            value: -1,
            protects: "nothing a client controls: replies are the server's own, a few kB at most \
                       (reflection's descriptors)",
            test: "test_every_method_refuses_a_request_past_the_limit",
        },
        CoreLimit {
            arg: c"grpc.max_concurrent_streams",
            value: clamp(limits.max_concurrent_streams),
            protects: "stream floods and, with the core's accounting of reset streams, rapid reset",
            test: "test_max_concurrent_streams_per_connection",
        },
        // The core also refuses a new stream while more stream objects than
        // the limit are allocated, counting those of finished calls not yet
        // freed; without headroom for those, a client that keeps to the
        // limit had a share of its calls refused (REFUSED_STREAM) under
        // load. The core's next default (an experiment in 1.85) is the same
        // headroom.
        CoreLimit {
            arg: c"grpc.http2.max_deallocating_streams",
            value: clamp(limits.max_concurrent_streams),
            protects: "stream floods still: stream objects stay bounded at twice the stream \
                       limit, while a client that keeps to the limit is never refused",
            test: "test_calls_past_the_stream_limit_wait_and_none_is_refused",
        },
        CoreLimit {
            arg: c"grpc.max_metadata_size",
            value: METADATA_SOFT_LIMIT,
            protects: "large headers: past it, a growing share of requests is refused",
            test: "test_the_server_serves_a_well_behaved_client_through[big-header-8]",
        },
        CoreLimit {
            arg: c"grpc.absolute_max_metadata_size",
            value: METADATA_HARD_LIMIT,
            protects: "large headers, CONTINUATION floods, HPACK bombs: past it every request is \
                       refused, and the header block is parsed without being kept",
            test: "test_the_server_serves_a_well_behaved_client_through[continuation-flood-8]",
        },
        CoreLimit {
            arg: c"grpc.keepalive_time_ms",
            value: milliseconds(limits.keepalive_time),
            protects: "dead peers holding connections and calls: quiet this long, a connection \
                       with calls open is pinged",
            test: "test_keepalive_drops_a_connection_whose_peer_stops_answering",
        },
        CoreLimit {
            arg: c"grpc.keepalive_timeout_ms",
            value: milliseconds(limits.keepalive_timeout),
            protects: "dead peers: a ping unanswered this long closes the connection",
            test: "test_keepalive_drops_a_connection_whose_peer_stops_answering",
        },
        // The core arms the keepalive timeout above only in some states;
        // otherwise an unanswered PING waits out the ping timeout (a minute
        // by default), so it is set to the same.
        CoreLimit {
            arg: c"grpc.http2.ping_timeout_ms",
            value: milliseconds(limits.keepalive_timeout),
            protects: "dead peers: any PING of the server's unanswered this long closes the \
                       connection",
            test: "test_keepalive_drops_a_connection_whose_peer_stops_answering",
        },
        CoreLimit {
            arg: c"grpc.server.max_pending_requests",
            value: clamp(limits.max_pending_calls),
            protects: "calls queueing without limit for the handlers: past it, a growing share of \
                       new calls is refused",
            test: "test_the_server_serves_a_well_behaved_client_through[rapid-reset-8]",
        },
        CoreLimit {
            arg: c"grpc.server.max_pending_requests_hard_limit",
            value: clamp(limits.max_pending_calls.saturating_mul(3)),
            protects: "calls queueing without limit: past it every new call is refused",
            test: "test_the_server_serves_a_well_behaved_client_through[rapid-reset-8]",
        },
        CoreLimit {
            arg: c"grpc.max_allowed_incoming_connections",
            value: clamp(limits.max_connections),
            protects: "connection floods and churn: the connections the server holds at once, \
                       and the memory each keeps, are bounded whatever the open-file limit",
            test: "test_the_server_serves_a_well_behaved_client_through[churn-1]",
        },
        CoreLimit {
            arg: c"grpc.http2.ping_on_rst_stream_percent",
            value: clamp(limits.ping_on_rst_stream_percent),
            protects: "rapid reset from a client that never reads: it runs out of room for the \
                       acknowledgements it owes and is disconnected",
            test: "test_the_server_serves_a_well_behaved_client_through[rapid-reset-8]",
        },
        // No ping strikes. Past its strikes, every further PING on a
        // connection makes the core close it, but while a write is stuck
        // (a client that never reads) the close waits, and each PING grows
        // the pending close's error message by one more copy of itself:
        // quadratic work that kept the core's few worker threads busy and
        // stalled every other client (docs/hardening.md, "The PING flood").
        CoreLimit {
            arg: c"grpc.http2.max_ping_strikes",
            value: 0,
            protects: "lifted: a PING flood re-opens, and costs one acknowledgement a PING; the \
                       core's bound on acknowledgements pending (10,000) pauses a client that \
                       never reads them",
            test: "test_the_server_serves_a_well_behaved_client_through[ping-flood-8]",
        },
        // The core's endpoint doubles its read-ahead each time a read fills
        // it, without a bound of its own: a client that keeps the socket
        // full made it allocate reads of a hundred megabytes and more
        // (docs/hardening.md, "Reads that grow without bound").
        CoreLimit {
            arg: c"grpc.experimental.tcp_max_read_buffer_size",
            value: READ_AHEAD_LIMIT,
            protects: "read-ahead growing without bound on a connection whose client keeps \
                       the socket full (a large message in one-byte DATA frames); a read still \
                       takes in the whole message being received, whatever its size",
            test: "test_the_server_serves_a_well_behaved_client_through[one-byte-data-1]",
        },
        CoreLimit {
            arg: c"grpc.max_connection_age_ms",
            value: milliseconds_or_never(limits.max_connection_age),
            protects: "clients pinned to one replica for ever: behind a balancer that picks a \
                       replica per connection, a replica added later gets no load until \
                       connections are replaced",
            test: "test_connections_past_their_age_move_onto_a_replica_added_later",
        },
        CoreLimit {
            arg: c"grpc.max_connection_age_grace_ms",
            value: milliseconds_or_never(limits.max_connection_age_grace),
            protects: "nothing by default: calls in flight on a connection past its age finish \
                       however long they take (keepalive drops dead peers); set, it bounds how \
                       long an old connection lingers",
            test: "test_connections_past_their_age_move_onto_a_replica_added_later",
        },
        CoreLimit {
            arg: c"grpc.max_connection_idle_ms",
            value: milliseconds_or_never(limits.max_connection_idle),
            protects: "idle connections hoarded by a client: each is closed once it has had no \
                       call for this long",
            test: "test_idle_connections_past_the_idle_limit_are_closed",
        },
        // The core grows its windows by its estimate of the link's
        // bandwidth-delay product, to 4 MiB a call and more, and holds up
        // to that for every call whose handler has not read it: a client
        // that fills its calls' windows parks that much in the server.
        CoreLimit {
            arg: c"grpc.http2.bdp_probe",
            value: i32::from(limits.stream_window.is_none()),
            protects: "off by default: request data parked in windows grown to megabytes a \
                       call; what it costs is in the next row",
            test: "test_the_server_serves_a_well_behaved_client_through[data-past-window-8]",
        },
        CoreLimit {
            arg: c"grpc.http2.lookahead_bytes",
            value: limits.stream_window.map_or(-1, clamp),
            protects: "request data parked in the server by calls that never finish their \
                       request: at most this much a call, so at most the stream limit times \
                       this a connection; it costs a call that uploads more than this a round \
                       trip per window's worth (--stream-window-kib 0: the core's own window)",
            test: "test_the_server_serves_a_well_behaved_client_through[data-past-window-8]",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT_TABLE: &str = include_str!("../docs/hardening.md");

    fn test_sources() -> String {
        let mut sources = String::new();
        for dir in ["interop/tests", "tests"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for entry in std::fs::read_dir(&dir).expect("the test directory") {
                let path = entry.expect("a test file").path();
                if path
                    .extension()
                    .is_some_and(|ext| ext == "py" || ext == "rs")
                {
                    sources += &std::fs::read_to_string(&path).expect("a readable test file");
                }
            }
        }
        sources
    }

    #[test]
    fn every_core_limit_is_in_the_limit_table_and_has_a_test() {
        let sources = test_sources();
        for limit in core_limits(&Limits::default()) {
            let arg = limit.arg.to_str().expect("an ASCII name");
            assert!(
                LIMIT_TABLE.contains(&format!("| `{arg}` |")),
                "the limit table in docs/hardening.md has no row for {arg}"
            );
            let (function, case) = match limit.test.split_once('[') {
                Some((function, case)) => (function, case.trim_end_matches(']')),
                None => (limit.test, ""),
            };
            // A case id is the attack's name and its connections.
            let attack = case.rsplit_once('-').map_or(case, |(attack, _)| attack);
            assert!(
                (sources.contains(&format!("def {function}("))
                    || sources.contains(&format!("fn {function}(")))
                    && sources.contains(&format!("\"{attack}")),
                "{arg}: no test {}",
                limit.test
            );
        }
    }

    #[test]
    fn limits_past_i32_mean_no_limit_not_a_negative_one() {
        let limits = Limits {
            max_message_size: u32::MAX,
            max_pending_calls: u32::MAX,
            keepalive_time: Duration::from_secs(u64::MAX / 2),
            ..Limits::default()
        };
        for limit in core_limits(&limits) {
            assert!(limit.value >= -1, "{limit:?}");
        }
        let receive = core_limits(&limits)[0];
        assert_eq!(receive.value, i32::MAX);
    }
}
