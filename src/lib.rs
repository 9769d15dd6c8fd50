//! The Python gRPC guide's Fibonacci service, in Rust on the gRPC C core
//! (grpcio), wire-compatible with the guide's Python programs.
//!
//! Where things live:
//! - [`fibonacci`]: the arithmetic and its int32 limits; pure functions, no
//!   gRPC types.
//! - [`status`]: the one place a domain error becomes a gRPC status.
//! - [`service`]: the servicer, one handler per rpc in proto order;
//!   [`inbound`]: the receive limit, applied as requests are decoded.
//! - [`calls`]: the count of calls in flight and the per-call log line;
//!   [`memory`]: hands freed heap back to the system when calls are over;
//!   [`open_files`]: the limit on open files (connections), raised.
//! - [`server_options`]: the server's command line and the configuration
//!   it describes; [`limits`]: what one client may take, and the C core's
//!   settings that enforce it, as data;
//! - [`server`]: start-up (services, TLS, limits, bind) and graceful
//!   shutdown; [`shutdown`]: the signals that trigger it.
//! - [`health`]: the standard health service; [`reflection`]: the
//!   standard server reflection service (v1, v1alpha).
//! - [`metrics`]: Prometheus metrics of every call, and their endpoint.
//! - [`logging`]: the logger, for the server's lines and the C core's.
//! - [`client`]: what the four client binaries share: connecting,
//!   prompting, reading lines, reporting errors.
//! - [`proto`]: what `proto/fibonacci.proto` defines: its message
//!   (generated at build time), its four methods and the client on them.
//!
//! The binaries in `bin/` only parse their arguments and call into these.
//!
//! `GUIDE.md`, at the top of the repository, walks through the service as
//! the Python guide does, one kind of call at a time, with this code.

#![warn(missing_docs)]

/// What every binary's `--version` prints after the project's name: its
/// version, the gRPC C core release it runs on and the patches applied to
/// it (`grpc-core/patches`), e.g. `0.2.0 (gRPC C core 1.85.1, patched:
/// hpack-hard-limit-error-once)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (gRPC C core ",
    env!("GRPC_CORE_RELEASE"),
    env!("GRPC_CORE_PATCH_NOTE"),
    ")"
);

pub mod calls;
pub mod certificates;
pub mod client;
pub mod fibonacci;
pub mod health;
pub mod inbound;
pub mod limits;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod open_files;
// Generated from the protos (build.rs), whose code has no doc comments to
// give; the module's own items are documented all the same.
#[allow(missing_docs)]
pub mod proto;
pub mod reflection;
pub mod server;
pub mod server_options;
pub mod service;
pub mod shutdown;
pub mod status;

#[cfg(test)]
mod fuzz;
