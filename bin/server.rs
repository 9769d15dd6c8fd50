//! The Fibonacci gRPC server. `server --help` lists the flags
//! (`fibonacci_grpc::server_options`).

use std::process::ExitCode;

use fibonacci_grpc::server_options::ServerOptions;
use fibonacci_grpc::{logging, server};
use log::error;
use structopt::StructOpt;

// guide:start main
fn main() -> ExitCode {
    server::enable_core_experiments();
    let options = ServerOptions::from_args();
    logging::init(options.log_level());
    let served = options
        .config()
        .and_then(|config| server::serve(&config, options.grace_period));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}
// guide:end main
