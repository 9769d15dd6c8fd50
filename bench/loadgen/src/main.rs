//! Load generator for the Fibonacci service (any server that speaks
//! `proto/fibonacci.proto`: this one, the guide's Python server, grpc-go).
//! `bench --help` lists the flags; the modules do the work:
//!
//! - [`options`]: the command line;
//! - [`calls`]: the guide's request shapes, one checked call of each;
//! - [`load`]: the closed-loop load run (calls/s, latency, CPU per call);
//! - [`hold`]: `--hold-streams`, the server's memory per open call;
//! - [`procfs`]: CPU time and RSS of a process, from /proc;
//! - [`report`]: a result as a table or as JSON.

mod calls;
mod hold;
mod load;
mod options;
mod procfs;
mod report;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use structopt::StructOpt;

use crate::options::Options;

fn main() -> ExitCode {
    let options = Options::from_args();
    // Counted so a stray panic on a completion-queue thread is not silent.
    static PANICS: AtomicU64 = AtomicU64::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    let outcome = options
        .validate()
        .and_then(|()| match options.hold_streams {
            Some(count) => hold::run(&options.hold_config(count)?)
                .map(|result| report::hold(&options, &result)),
            None => {
                load::run(&options.load_config()?).map(|result| report::load(&options, &result))
            }
        });
    match outcome {
        Ok(text) => {
            println!("{}", text.trim_end());
            if PANICS.load(Ordering::Relaxed) > 0 {
                eprintln!("error: the generator panicked; the numbers above are not valid");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
