//! Test support: the real server binary on a port of its own, and the real
//! client binaries driven the way a person at a terminal drives them.
#![allow(dead_code)] // each test file uses its own part of this module

use fibonacci_grpc::status::code_name;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single step may take before the test fails (not a
/// performance bound: a generous ceiling so a hang fails instead of
/// blocking the suite).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub const SERVER: &str = env!("CARGO_BIN_EXE_server");
pub const CLIENT_UNARY: &str = env!("CARGO_BIN_EXE_client_unary");
pub const CLIENT_SERVER_STREAM: &str = env!("CARGO_BIN_EXE_client_server_stream");
pub const CLIENT_CLIENT_STREAM: &str = env!("CARGO_BIN_EXE_client_client_stream");
pub const CLIENT_BIDIRECTIONAL_STREAM: &str = env!("CARGO_BIN_EXE_client_bidirectional_stream");

/// The server binary, started on 127.0.0.1 with a port the system picks.
pub struct ServerProcess {
    child: Child,
    pub address: String,
    stdout_lines: Receiver<String>,
}

impl ServerProcess {
    pub fn start() -> ServerProcess {
        Self::start_with(&[])
    }

    /// Starts the server with `extra_args`, on port 0 unless they name a port.
    pub fn start_with(extra_args: &[&str]) -> ServerProcess {
        let port = if extra_args.contains(&"--port") {
            &[][..]
        } else {
            &["--port", "0"][..]
        };
        let mut command = Command::new(SERVER);
        // If this test process dies without unwinding (killed, aborted), the
        // server must not outlive it holding a port.
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .args(["--host", "127.0.0.1"])
            .args(port)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server binary");
        let stdout_lines = lines_of(child.stdout.take().expect("piped stdout"));
        let first = stdout_lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("the server prints its address");
        // "listening on 127.0.0.1:PORT (plaintext, fibonacci-grpc 0.2.0, gRPC C core 1.85.1)"
        let address = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        ServerProcess {
            child,
            address,
            stdout_lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "kill the server"
        );
    }

    /// The next line the server prints.
    pub fn next_line(&self) -> String {
        self.stdout_lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("a line from the server")
    }

    /// Waits for the server to exit, failing the test if it takes too long.
    pub fn wait(&mut self) -> ExitStatus {
        wait_with_timeout(&mut self.child)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `source` line by line on a thread of its own.
fn lines_of(source: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "process {} did not exit within {STEP_TIMEOUT:?}",
                child.id()
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// What a person at a terminal would have seen, plus stderr and the exit
/// status.
#[derive(Debug)]
pub struct Session {
    /// stdout with each typed line echoed after the prompt that asked for
    /// it, as a terminal shows it.
    pub screen: String,
    pub stderr: String,
    pub status: ExitStatus,
}

impl Session {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs a client binary against `address`, typing each of `inputs` only
/// once the client has printed a prompt and is waiting for it (every prompt
/// of the guide ends in ": ", and no output line does), so the screen shows
/// exactly the interleaving a person sees. Output that arrives after a
/// prompt but before the answer is typed would show up misplaced.
pub fn run_client(binary: &str, address: &str, inputs: &[&str]) -> Session {
    run_client_with(binary, &[address], inputs)
}

pub fn run_client_with(binary: &str, args: &[&str], inputs: &[&str]) -> Session {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client binary");
    let stdout = chunks_of(child.stdout.take().expect("piped stdout"));
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take().expect("piped stdin");

    let mut screen = String::new();
    'typing: for input in inputs {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !screen.ends_with(": ") {
            let wait = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(wait) {
                Ok(chunk) => screen.push_str(&chunk),
                // The client ended (e.g. an error) before asking again.
                Err(mpsc::RecvTimeoutError::Disconnected) => break 'typing,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("no prompt within {STEP_TIMEOUT:?}; screen so far: {screen:?}")
                }
            }
        }
        screen.push_str(input);
        screen.push('\n');
        if stdin.write_all(format!("{input}\n").as_bytes()).is_err() {
            break;
        }
    }
    drop(stdin);
    let status = wait_with_timeout(&mut child);
    while let Ok(chunk) = stdout.recv_timeout(STEP_TIMEOUT) {
        screen.push_str(&chunk);
    }
    let stderr = stderr_reader.join().expect("stderr reader");
    Session {
        screen,
        stderr,
        status,
    }
}

/// Reads `source` in chunks as they arrive, on a thread of its own.
fn chunks_of(mut source: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let mut pending = Vec::new();
        loop {
            match source.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buffer[..n]);
                    // Hand over only whole UTF-8 sequences.
                    let valid = match std::str::from_utf8(&pending) {
                        Ok(text) => text.len(),
                        Err(error) => error.valid_up_to(),
                    };
                    let chunk: Vec<u8> = pending.drain(..valid).collect();
                    let text = String::from_utf8(chunk).expect("valid prefix");
                    if tx.send(text).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// A grpcio client of the library's generated stubs, for tests that look
/// at the wire (status codes, the exact order of messages) rather than at a
/// client binary's output.
pub fn grpc_client(address: &str) -> fibonacci_grpc::proto::FibonacciClient {
    use std::sync::Arc;
    let env = Arc::new(grpcio::EnvBuilder::new().cq_count(1).build());
    let channel = grpcio::ChannelBuilder::new(env).connect(address);
    assert!(
        futures_executor::block_on(channel.wait_for_connected(STEP_TIMEOUT)),
        "connect to {address}"
    );
    fibonacci_grpc::proto::FibonacciClient::new(channel)
}

/// The status of a failed call, as (code name, message).
pub fn status_of(error: grpcio::Error) -> (String, String) {
    match error {
        grpcio::Error::RpcFailure(status) => (
            code_name(status.code()).to_string(),
            status.message().to_string(),
        ),
        other => panic!("expected an RPC status, got {other:?}"),
    }
}
