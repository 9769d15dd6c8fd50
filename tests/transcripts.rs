//! The guide's four transcripts, byte for byte: the real server binary, the
//! real client binaries, the guide's inputs typed at the guide's prompts.

mod common;

use common::*;

#[test]
fn unary_transcript() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_UNARY, &server.address, &["7"]);
    assert_eq!(
        session.screen,
        "enter an index integer: 7\nFibonacci #7: 13\n"
    );
    assert_eq!(session.stderr, "");
    assert_eq!(session.code(), Some(0));
}

#[test]
fn server_stream_transcript() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_SERVER_STREAM, &server.address, &["7"]);
    assert_eq!(
        session.screen,
        "enter an index integer: 7\n\
         Fibonacci #1: 1\n\
         Fibonacci #2: 1\n\
         Fibonacci #3: 2\n\
         Fibonacci #4: 3\n\
         Fibonacci #5: 5\n\
         Fibonacci #6: 8\n\
         Fibonacci #7: 13\n"
    );
    assert_eq!(session.stderr, "");
    assert_eq!(session.code(), Some(0));
}

#[test]
fn client_stream_transcript() {
    let server = ServerProcess::start();
    let session = run_client(CLIENT_CLIENT_STREAM, &server.address, &["7", "5", ""]);
    assert_eq!(
        session.screen,
        "enter an index (or nothing to stop): 7\n\
         enter an index (or nothing to stop): 5\n\
         enter an index (or nothing to stop): \n\
         done sending\n\
         Sum: 18\n"
    );
    assert_eq!(session.stderr, "");
    assert_eq!(session.code(), Some(0));
}

#[test]
fn bidirectional_stream_transcript() {
    let server = ServerProcess::start();
    let session = run_client(
        CLIENT_BIDIRECTIONAL_STREAM,
        &server.address,
        &["4", "2", "1", ""],
    );
    assert_eq!(
        session.screen,
        "enter the next increment (or nothing to stop): 4\n\
         Fibonacci #1: 1\n\
         Fibonacci #2: 1\n\
         Fibonacci #3: 2\n\
         Fibonacci #4: 3\n\
         enter the next increment (or nothing to stop): 2\n\
         Fibonacci #5: 5\n\
         Fibonacci #6: 8\n\
         enter the next increment (or nothing to stop): 1\n\
         Fibonacci #7: 13\n\
         enter the next increment (or nothing to stop): \n\
         done sending\n"
    );
    assert_eq!(session.stderr, "");
    assert_eq!(session.code(), Some(0));
}

/// One server serves the guide's four clients one after another, as
/// `make run-clients` runs them.
#[test]
fn one_server_serves_all_four_clients_in_turn() {
    let server = ServerProcess::start();
    let runs = [
        (CLIENT_UNARY, &["7"][..], "Fibonacci #7: 13\n"),
        (CLIENT_SERVER_STREAM, &["7"][..], "Fibonacci #7: 13\n"),
        (CLIENT_CLIENT_STREAM, &["7", "5", ""][..], "Sum: 18\n"),
        (
            CLIENT_BIDIRECTIONAL_STREAM,
            &["4", "2", "1", ""][..],
            "done sending\n",
        ),
    ];
    for (binary, inputs, last_line) in runs {
        let session = run_client(binary, &server.address, inputs);
        assert!(session.screen.ends_with(last_line), "{binary}: {session:?}");
        assert_eq!(session.code(), Some(0), "{binary}: {session:?}");
    }
}

/// `make run-clients` with answers piped in: the four clients share one
/// standard input, one after another, and each must take only its own
/// lines (a buffered reader would swallow the next client's answers).
#[test]
fn four_clients_share_one_piped_input() {
    use std::io::{Seek, Write};
    use std::process::{Command, Stdio};

    let server = ServerProcess::start();
    let answers_path = std::env::temp_dir().join(format!("answers-{}", std::process::id()));
    let mut answers = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&answers_path)
        .unwrap();
    answers.write_all(b"7\n7\n7\n5\n\n4\n2\n1\n\n").unwrap();
    answers.rewind().unwrap();

    let mut screen = String::new();
    for binary in [
        CLIENT_UNARY,
        CLIENT_SERVER_STREAM,
        CLIENT_CLIENT_STREAM,
        CLIENT_BIDIRECTIONAL_STREAM,
    ] {
        // Clones of one open file share its offset, as a pipe would.
        let output = Command::new(binary)
            .arg(&server.address)
            .stdin(Stdio::from(answers.try_clone().unwrap()))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{binary}");
        screen.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    std::fs::remove_file(&answers_path).unwrap();
    // Piped answers are not echoed, so each prompt runs into what follows it.
    assert_eq!(
        screen,
        "enter an index integer: Fibonacci #7: 13\n\
         enter an index integer: Fibonacci #1: 1\nFibonacci #2: 1\nFibonacci #3: 2\n\
         Fibonacci #4: 3\nFibonacci #5: 5\nFibonacci #6: 8\nFibonacci #7: 13\n\
         enter an index (or nothing to stop): enter an index (or nothing to stop): \
         enter an index (or nothing to stop): done sending\nSum: 18\n\
         enter the next increment (or nothing to stop): Fibonacci #1: 1\nFibonacci #2: 1\n\
         Fibonacci #3: 2\nFibonacci #4: 3\n\
         enter the next increment (or nothing to stop): Fibonacci #5: 5\nFibonacci #6: 8\n\
         enter the next increment (or nothing to stop): Fibonacci #7: 13\n\
         enter the next increment (or nothing to stop): done sending\n"
    );
}
