//! The edges of the contract, through the real client binaries and on the
//! wire: indices 0, 1 and 46, the first index past int32 (47), negative
//! input, empty streams, overflowing sums, a StreamSequence run past 46,
//! input that is not an integer, and a server that is not there.

mod common;

use common::*;
use fibonacci_grpc::proto::Number;
use futures::{SinkExt, TryStreamExt};
use futures_executor::block_on;
use grpcio::WriteFlags;

const INDEX_47: &str =
    "index 47 is past 46, the largest index whose Fibonacci number fits in an int32";
const COUNT_47: &str =
    "count 47 is past 46, the longest sequence whose Fibonacci numbers fit in an int32";

fn assert_refused(session: &Session, code: &str, message: &str) {
    assert_eq!(
        session.stderr,
        format!("error: the server answered {code}: {message}\n")
    );
    assert_eq!(session.code(), Some(1), "{session:?}");
}

/// A refused request ends the call on the server at once, but a streaming
/// client learns of it only when its next send fails or when it finishes
/// sending, whichever comes first: a race between the client's write and
/// the server's status. Either way it must show exactly one of these two
/// screens: `typed` (refused at the send), or `typed` followed by one more
/// empty prompt and `done sending` (refused at the end).
fn assert_refused_mid_stream(session: &Session, prompt: &str, typed: &str) {
    let at_end = format!("{typed}{prompt}\ndone sending\n");
    assert!(
        session.screen == typed || session.screen == at_end,
        "{session:?}"
    );
}

fn assert_succeeded(session: &Session) {
    assert_eq!(session.stderr, "", "{session:?}");
    assert_eq!(session.code(), Some(0), "{session:?}");
}

/// "Fibonacci #1: 1\n" .. "Fibonacci #n: F(n)\n", numbered from `first`.
fn sequence_lines(first: usize, values: &[i32]) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("Fibonacci #{}: {v}\n", first + i))
        .collect()
}

#[test]
fn unary_at_the_edges() {
    let server = ServerProcess::start();
    for (input, line) in [("0", "0"), ("1", "1"), ("46", "1836311903")] {
        let session = run_client(CLIENT_UNARY, &server.address, &[input]);
        assert_eq!(
            session.screen,
            format!("enter an index integer: {input}\nFibonacci #{input}: {line}\n")
        );
        assert_succeeded(&session);
    }
}

#[test]
fn unary_past_int32_is_out_of_range() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_UNARY, &server.address, &["47"]);
    assert_eq!(session.screen, "enter an index integer: 47\n");
    assert_refused(&session, "OUT_OF_RANGE", INDEX_47);

    let session = run_client(CLIENT_UNARY, &server.address, &["2147483647"]);
    assert_refused(
        &session,
        "OUT_OF_RANGE",
        "index 2147483647 is past 46, the largest index whose Fibonacci number fits in an int32",
    );
}

#[test]
fn unary_negative_is_invalid_argument() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_UNARY, &server.address, &["-1"]);
    assert_eq!(session.screen, "enter an index integer: -1\n");
    assert_refused(
        &session,
        "INVALID_ARGUMENT",
        "index -1 is negative; indices start at 0",
    );
}

#[test]
fn unary_and_server_stream_refuse_non_integers_with_exit_2() {
    let server = ServerProcess::start();
    for binary in [CLIENT_UNARY, CLIENT_SERVER_STREAM] {
        for input in ["seven", "7.5", "2147483648", ""] {
            let session = run_client(binary, &server.address, &[input]);
            assert_eq!(session.screen, format!("enter an index integer: {input}\n"));
            assert_eq!(
                session.stderr,
                format!(
                    "error: {input:?} is not an integer index \
                     (a whole number from -2147483648 to 2147483647)\n"
                )
            );
            assert_eq!(session.code(), Some(2), "{binary} {input:?}");
        }
    }
}

#[test]
fn server_stream_at_the_edges() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_SERVER_STREAM, &server.address, &["0"]);
    assert_eq!(session.screen, "enter an index integer: 0\n");
    assert_succeeded(&session);

    let session = run_client(CLIENT_SERVER_STREAM, &server.address, &["46"]);
    let all = fibonacci_grpc::fibonacci::sequence(46).unwrap();
    assert_eq!(
        session.screen,
        format!("enter an index integer: 46\n{}", sequence_lines(1, all))
    );
    assert!(session.screen.ends_with("Fibonacci #46: 1836311903\n"));
    assert_succeeded(&session);

    let session = run_client(CLIENT_SERVER_STREAM, &server.address, &["47"]);
    assert_eq!(
        session.screen, "enter an index integer: 47\n",
        "nothing is sent before the refusal"
    );
    assert_refused(&session, "OUT_OF_RANGE", COUNT_47);

    let session = run_client(CLIENT_SERVER_STREAM, &server.address, &["-1"]);
    assert_refused(
        &session,
        "INVALID_ARGUMENT",
        "count -1 is negative; a sequence has 0 to 46 numbers",
    );
}

#[test]
fn client_stream_at_the_edges() {
    let server = ServerProcess::start();
    let prompt = "enter an index (or nothing to stop): ";

    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &[""]);
    assert_eq!(session.screen, format!("{prompt}\ndone sending\nSum: 0\n"));
    assert_succeeded(&session);

    // End of input counts as the empty line, as Python's input() raising
    // EOFError does in the guide's client.
    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["0"]);
    assert_eq!(
        session.screen,
        format!("{prompt}0\n{prompt}done sending\nSum: 0\n")
    );
    assert_succeeded(&session);

    // Anything that is not an integer stops sending, like the guide's bare except.
    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["7", "x", "5"]);
    assert_eq!(
        session.screen,
        format!("{prompt}7\n{prompt}x\ndone sending\nSum: 13\n")
    );
    assert_succeeded(&session);

    // F(46) + F(42) is the largest sum of this shape that fits.
    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["46", "42", ""]);
    assert!(
        session.screen.ends_with("done sending\nSum: 2104226199\n"),
        "{session:?}"
    );
    assert_succeeded(&session);
}

#[test]
fn client_stream_overflow_and_bad_indices_are_refused() {
    let server = ServerProcess::start();
    let prompt = "enter an index (or nothing to stop): ";

    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["46", "46", ""]);
    assert_refused_mid_stream(&session, prompt, &format!("{prompt}46\n{prompt}46\n"));
    assert_refused(
        &session,
        "OUT_OF_RANGE",
        "adding F(46) = 1836311903 to the sum 1836311903 gives 3672623806, \
         past 2147483647, the largest int32",
    );

    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["47", ""]);
    assert_refused_mid_stream(&session, prompt, &format!("{prompt}47\n"));
    assert_refused(&session, "OUT_OF_RANGE", INDEX_47);

    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["3", "-1", ""]);
    assert_refused_mid_stream(&session, prompt, &format!("{prompt}3\n{prompt}-1\n"));
    assert_refused(
        &session,
        "INVALID_ARGUMENT",
        "index -1 is negative; indices start at 0",
    );
}

#[test]
fn bidirectional_stream_at_the_edges() {
    let server = ServerProcess::start();
    let prompt = "enter the next increment (or nothing to stop): ";

    let session = run_client(CLIENT_BIDIRECTIONAL_STREAM, &server.address, &[""]);
    assert_eq!(session.screen, format!("{prompt}\ndone sending\n"));
    assert_succeeded(&session);

    // Increments of 0 bring nothing back; exactly 46 reaches the limit.
    let all = fibonacci_grpc::fibonacci::sequence(46).unwrap();
    let session = run_client(
        CLIENT_BIDIRECTIONAL_STREAM,
        &server.address,
        &["0", "40", "6", "0", ""],
    );
    assert_eq!(
        session.screen,
        format!(
            "{prompt}0\n{prompt}40\n{}{prompt}6\n{}{prompt}0\n{prompt}\ndone sending\n",
            sequence_lines(1, &all[..40]),
            sequence_lines(41, &all[40..])
        )
    );
    assert_succeeded(&session);
}

#[test]
fn bidirectional_stream_past_46_is_refused_whole() {
    let server = ServerProcess::start();
    let prompt = "enter the next increment (or nothing to stop): ";
    let all = fibonacci_grpc::fibonacci::sequence(46).unwrap();
    let session = run_client(
        CLIENT_BIDIRECTIONAL_STREAM,
        &server.address,
        &["44", "3", ""],
    );
    // F(45) and F(46) would fit, but the request for 3 is refused before
    // any of its numbers is sent.
    assert_eq!(
        session.screen,
        format!("{prompt}44\n{}{prompt}3\n", sequence_lines(1, &all[..44]))
    );
    assert_refused(
        &session,
        "OUT_OF_RANGE",
        "increment 3 would carry the running index from 44 to 47, \
         past 46, the largest index whose Fibonacci number fits in an int32",
    );

    let session = run_client(CLIENT_BIDIRECTIONAL_STREAM, &server.address, &["-1", ""]);
    assert_refused_mid_stream(&session, prompt, &format!("{prompt}-1\n"));
    assert_refused(
        &session,
        "INVALID_ARGUMENT",
        "increment -1 is negative; an increment is 0 or more",
    );
}

#[test]
fn unreachable_server_is_one_line_and_exit_1() {
    // A port that was free a moment ago and has nothing listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    for binary in [
        CLIENT_UNARY,
        CLIENT_SERVER_STREAM,
        CLIENT_CLIENT_STREAM,
        CLIENT_BIDIRECTIONAL_STREAM,
    ] {
        let started = std::time::Instant::now();
        let session = run_client_with(binary, &[&address, "--connect-timeout", "1"], &["7"]);
        assert!(started.elapsed() < STEP_TIMEOUT);
        assert_eq!(
            session.screen, "",
            "nothing is asked when there is no server"
        );
        assert_eq!(
            session.stderr,
            format!(
                "error: cannot reach the server at {address} \
                 (no connection within 1s; is it running, and does it serve plaintext?)\n"
            )
        );
        assert_eq!(session.code(), Some(1));
    }
}

#[test]
fn wire_stream_sequence_refuses_before_sending_any_value() {
    let server = ServerProcess::start();
    let client = grpc_client(&server.address);
    let (mut requests, mut replies) = client.stream_sequence().unwrap();
    block_on(requests.send((Number::from(45), WriteFlags::default()))).unwrap();
    for expected in fibonacci_grpc::fibonacci::sequence(45).unwrap() {
        assert_eq!(
            block_on(replies.try_next()).unwrap().map(|n| n.value),
            Some(*expected)
        );
    }
    let _ = block_on(requests.send((Number::from(2), WriteFlags::default())));
    let error = block_on(replies.try_next()).expect_err("F(46) alone must not be sent");
    assert_eq!(
        status_of(error),
        (
            "OUT_OF_RANGE".to_string(),
            "increment 2 would carry the running index from 45 to 47, past 46, \
             the largest index whose Fibonacci number fits in an int32"
                .to_string()
        )
    );
}

/// Extreme values at every method leave the server serving.
#[test]
fn wire_extreme_values_never_break_the_server() {
    let server = ServerProcess::start();
    let client = grpc_client(&server.address);
    for value in [i32::MIN, -1, 47, i32::MAX] {
        let expected = if value < 0 {
            "INVALID_ARGUMENT"
        } else {
            "OUT_OF_RANGE"
        };
        let error = client.at_index(&Number::from(value)).unwrap_err();
        assert_eq!(status_of(error).0, expected);

        let mut stream = client.get_sequence(&Number::from(value)).unwrap();
        assert_eq!(
            status_of(block_on(stream.try_next()).unwrap_err()).0,
            expected
        );

        let (mut requests, reply) = client.sum_indicies().unwrap();
        let _ = block_on(requests.send((Number::from(value), WriteFlags::default())));
        let _ = block_on(requests.close());
        assert_eq!(status_of(block_on(reply).unwrap_err()).0, expected);

        let (mut requests, mut replies) = client.stream_sequence().unwrap();
        let _ = block_on(requests.send((Number::from(value), WriteFlags::default())));
        assert_eq!(
            status_of(block_on(replies.try_next()).unwrap_err()).0,
            expected
        );
    }
    assert_eq!(client.at_index(&Number::from(7)).unwrap().value, 13);
}
