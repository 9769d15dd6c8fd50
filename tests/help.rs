//! `--help` is documentation too: every binary's says what that program
//! does, in the guide's terms, then its usage and flags, and holds no code
//! (structopt prints a struct's doc comment as the description, doctests
//! included, if one is there).

mod common;

use std::process::Command;

use common::{
    CLIENT_BIDIRECTIONAL_STREAM, CLIENT_CLIENT_STREAM, CLIENT_SERVER_STREAM, CLIENT_UNARY, SERVER,
};

/// Each binary, the words that say its job, and a flag its help must list.
const PROGRAMS: [(&str, &str, &str); 5] = [
    (
        SERVER,
        "Serves the Fibonacci gRPC service of the Python gRPC guide",
        "--max-message-size",
    ),
    (
        CLIENT_UNARY,
        "Asks for an index n and prints F(n), the n-th Fibonacci number, from one AtIndex call",
        "--tls-ca",
    ),
    (
        CLIENT_SERVER_STREAM,
        "Asks for an index n and prints F(1) to F(n)",
        "--tls-ca",
    ),
    (
        CLIENT_CLIENT_STREAM,
        "prints the sum of their Fibonacci numbers (SumIndicies)",
        "--tls-ca",
    ),
    (
        CLIENT_BIDIRECTIONAL_STREAM,
        "after each, prints that many more Fibonacci numbers",
        "--tls-ca",
    ),
];

/// What a doctest or a code block leaks into prose.
const CODE_MARKS: [&str; 5] = ["```", "assert", "use fibonacci_grpc", "let ", "Ok::<"];

fn help(binary: &str) -> String {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{binary} --help: {:?}",
        output.status
    );
    assert!(output.stderr.is_empty(), "{binary} --help wrote to stderr");
    String::from_utf8(output.stdout).expect("--help is UTF-8")
}

#[test]
fn every_help_opens_with_the_programs_job_then_its_usage() {
    for (binary, job, flag) in PROGRAMS {
        // clap wraps the text to the terminal: compare it as one line.
        let text = help(binary)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let job_at = text
            .find(job)
            .unwrap_or_else(|| panic!("{binary} --help does not say {job:?}:\n{text}"));
        let usage_at = text.find("USAGE:").expect("a usage line");
        assert!(
            job_at < usage_at,
            "{binary}: the job comes after the usage:\n{text}"
        );
        assert!(text.contains(flag), "{binary} --help does not list {flag}");
    }
}

#[test]
fn no_help_holds_code() {
    for (binary, _, _) in PROGRAMS {
        let text = help(binary);
        for mark in CODE_MARKS {
            assert!(
                !text.contains(mark),
                "{binary} --help holds code ({mark:?}):\n{text}"
            );
        }
    }
}

#[test]
fn each_client_says_where_it_connects() {
    for (binary, _, _) in &PROGRAMS[1..] {
        let text = help(binary)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("Connects to ADDRESS (default localhost:1337)"),
            "{binary}:\n{text}"
        );
    }
}
