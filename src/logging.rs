//! The server's logger: the one place its lines are written, its own and
//! the C core's alike.
//!
//! Info and debug lines go to stdout, warnings and errors to stderr, one
//! line each. Info lines are plain text (the start-up line is what scripts
//! wait for); the other levels are prefixed with the level. The level comes
//! from `--log`, else `RUST_LOG` (a bare level such as `debug`), else info.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Installs the logger at `level` and routes the gRPC C core's own log
/// lines through it. Call once, before anything gRPC is built.
///
/// The C core is asked for its errors only, and they are logged at debug:
/// in a server almost all of them are about a peer (a failed TLS
/// handshake, a reset connection), which is the client's business, not an
/// operator's; the few about the server itself (a failed bind) are
/// reported by this crate in its own words. Without the redirect the C
/// core would write them to stderr itself, in a format of its own.
pub fn init(level: LevelFilter) {
    // set_logger fails only if a logger is already installed; the first
    // one then stays, which is all a second call could want.
    let _ = log::set_logger(&LINE_LOGGER);
    // grpcio's redirect sets the C core's verbosity from the current max
    // level: Error makes it pass on its errors and nothing chattier.
    log::set_max_level(LevelFilter::Error);
    grpcio::redirect_log();
    log::set_max_level(level);
}

/// The level named by `text` (`error`, `warn`, `info`, `debug`, `trace`,
/// `off`), as `--log` and `RUST_LOG` give it.
pub fn parse_level(text: &str) -> Result<LevelFilter, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a log level (error, warn, info, debug, trace, off)"))
}

/// `RUST_LOG` if it names a level, else info.
pub fn level_from_env() -> LevelFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| parse_level(&text).ok())
        .unwrap_or(LevelFilter::Info)
}

struct LineLogger;

static LINE_LOGGER: LineLogger = LineLogger;

impl LineLogger {
    /// The C core's lines arrive through grpcio's redirect (module path
    /// `grpcio::log_util`) and are demoted to debug, with a `grpc: ` mark.
    fn level_and_source(record: &Record) -> (Level, &'static str) {
        match record.module_path() {
            Some(path) if path.starts_with("grpcio") => (Level::Debug, "grpc: "),
            _ => (record.level(), ""),
        }
    }
}

impl Log for LineLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        let (level, source) = Self::level_and_source(record);
        if level > log::max_level() {
            return;
        }
        let prefix = match level {
            Level::Info => String::new(),
            other => format!("{}: ", other.as_str().to_lowercase()),
        };
        let line = format!("{prefix}{source}{}\n", record.args());
        // A closed stdout/stderr must not take the server down: the line
        // is dropped.
        let _ = match level {
            Level::Error | Level::Warn => std::io::stderr().lock().write_all(line.as_bytes()),
            _ => std::io::stdout().lock().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}
