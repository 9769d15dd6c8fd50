//! The server binary as an operator meets it: its address line, a taken
//! port, SO_REUSEPORT on request, graceful shutdown on SIGTERM and SIGINT
//! with a call in flight, and the grace period running out.

mod common;

use std::process::{Command, Stdio};

use common::*;
use fibonacci_grpc::proto::{FibonacciClient, Number};
use futures::{SinkExt, TryStreamExt};
use futures_executor::block_on;
use grpcio::{ClientDuplexReceiver, ClientDuplexSender, WriteFlags};

fn port_of(address: &str) -> &str {
    address.rsplit(':').next().expect("host:port")
}

#[test]
fn a_taken_port_is_one_line_and_exit_1() {
    let server = ServerProcess::start();
    let port = port_of(&server.address);
    let output = Command::new(SERVER)
        .args(["--host", "127.0.0.1", "--port", port])
        .stdin(Stdio::null())
        .output()
        .expect("run a second server");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("error: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)\n")
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn reuse_port_lets_a_second_server_share_the_port() {
    let first = ServerProcess::start_with(&["--reuse-port"]);
    let port = port_of(&first.address).to_string();
    let second = ServerProcess::start_with(&["--reuse-port", "--port", &port]);
    assert_eq!(second.address, first.address);
    assert_eq!(
        grpc_client(&second.address)
            .at_index(&Number::from(7))
            .unwrap()
            .value,
        13
    );
}

/// A StreamSequence call in flight: it has sent 1 and read F(1) = 1. The
/// client goes along: dropping it would shut the call's queue down.
fn open_stream_sequence(
    address: &str,
) -> (
    FibonacciClient,
    ClientDuplexSender<Number>,
    ClientDuplexReceiver<Number>,
) {
    let client = grpc_client(address);
    let (mut requests, mut replies) = client.stream_sequence().unwrap();
    block_on(requests.send((Number::from(1), WriteFlags::default()))).unwrap();
    assert_eq!(
        block_on(replies.try_next()).unwrap().map(|n| n.value),
        Some(1)
    );
    (client, requests, replies)
}

#[test]
fn sigterm_lets_a_call_in_flight_finish() {
    let mut server = ServerProcess::start();
    let (_client, mut requests, mut replies) = open_stream_sequence(&server.address);

    server.signal(libc::SIGTERM);
    assert_eq!(
        server.next_line(),
        "SIGTERM: shutting down, grace period 5s"
    );

    // The open call goes on as if nothing happened...
    block_on(requests.send((Number::from(2), WriteFlags::default()))).unwrap();
    assert_eq!(
        block_on(replies.try_next()).unwrap().map(|n| n.value),
        Some(1)
    );
    assert_eq!(
        block_on(replies.try_next()).unwrap().map(|n| n.value),
        Some(2)
    );
    // ...and ends with OK once the client closes its side. (grpcio's close
    // reports RpcFinished when the server's OK status beats the close's own
    // completion, so its result says nothing; the status below does.)
    let _ = block_on(requests.close());
    assert_eq!(block_on(replies.try_next()).unwrap(), None);

    assert_eq!(server.next_line(), "stopped: 1 calls drained, 0 cancelled");
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn sigint_with_nothing_in_flight_stops_at_once() {
    let mut server = ServerProcess::start();
    server.signal(libc::SIGINT);
    assert_eq!(server.next_line(), "SIGINT: shutting down, grace period 5s");
    assert_eq!(server.next_line(), "stopped: 0 calls drained, 0 cancelled");
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn calls_still_open_after_the_grace_period_are_cancelled() {
    let mut server = ServerProcess::start_with(&["--grace-period", "0.5"]);
    let (_client, _requests, mut replies) = open_stream_sequence(&server.address);

    server.signal(libc::SIGTERM);
    assert_eq!(
        server.next_line(),
        "SIGTERM: shutting down, grace period 500ms"
    );
    assert_eq!(server.next_line(), "stopped: 0 calls drained, 1 cancelled");
    assert_eq!(server.wait().code(), Some(0));

    let status = status_of(block_on(replies.try_next()).unwrap_err());
    // The C core's grpc_server_cancel_all_calls status: UNAVAILABLE, so a
    // client may retry on another replica.
    assert_eq!(
        status,
        (
            "UNAVAILABLE".to_string(),
            "Cancelling all calls".to_string()
        )
    );
}

#[test]
fn help_explains_the_flags() {
    let output = Command::new(SERVER)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--host",
        "--port",
        "--grace-period",
        "--reuse-port",
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--log",
        "--max-concurrent-streams",
        "--max-message-size",
        "--keepalive-time",
        "--keepalive-timeout",
        "--memory-quota-mib",
        "--completion-queues",
        "--max-pending-calls",
        "--ping-on-rst-stream-percent",
        "--metrics-port",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert_eq!(output.status.code(), Some(0));
}

/// The release line of grpc-core/release.txt, read here independently of
/// the build that compiled it in.
fn core_release() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grpc-core/release.txt"
    ))
    .expect("read grpc-core/release.txt");
    let line = text
        .lines()
        .find(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .expect("a release line");
    line.split_whitespace()
        .next()
        .expect("a release")
        .to_string()
}

/// ", patched: a, b" for the patches in grpc-core/patches, by name, in the
/// order build.py applies them; empty for none.
fn core_patch_note() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc-core/patches");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "patch"))
                .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        String::new()
    } else {
        format!(", patched: {}", names.join(", "))
    }
}

#[test]
fn every_binary_names_the_project_the_core_release_and_its_patches() {
    let expected = format!(
        "fibonacci-grpc {} (gRPC C core {}{})\n",
        env!("CARGO_PKG_VERSION"),
        core_release(),
        core_patch_note()
    );
    for binary in [
        SERVER,
        CLIENT_UNARY,
        CLIENT_SERVER_STREAM,
        CLIENT_CLIENT_STREAM,
        CLIENT_BIDIRECTIONAL_STREAM,
    ] {
        let output = Command::new(binary)
            .arg("--version")
            .output()
            .expect("run --version");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected,
            "{binary}"
        );
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{binary}");
        assert_eq!(output.status.code(), Some(0), "{binary}");
    }
}
