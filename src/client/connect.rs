//! Connecting to the server: the channel (round robin over every address
//! the target resolves to, retries when a server goes away), TLS, and the
//! wait for the connection.

use std::ffi::{CStr, CString};
use std::fs;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{ChannelBuilder, ChannelCredentials, ChannelCredentialsBuilder, EnvBuilder, LbPolicy};

use super::{ClientError, ClientOptions};
use crate::proto::FibonacciClient;

/// Every call of the service is retried when it fails with UNAVAILABLE (the
/// server went away, or none was reachable) before any reply came: all four
/// methods are pure functions, so a retried call gives the same answer, and
/// the C core retries only until the first reply is in, so no reply is
/// seen twice. A call that fails after a reply came (a stream the server
/// dropped midway) ends with its status, which the client prints.
///
/// The retries' backoff: each waits a random time up to the current
/// backoff, which starts at 0.5 s and doubles. The four retries of one call
/// span a few seconds, time for a server to be restarted on its port (or
/// for round robin to drop a dead replica); a server that stays down is
/// reported once they are spent.
pub const RETRY_WHEN_UNAVAILABLE: &CStr = c"{\"methodConfig\": [{
    \"name\": [{\"service\": \"fibonacci.Fibonacci\"}],
    \"retryPolicy\": {
        \"maxAttempts\": 5,
        \"initialBackoff\": \"0.5s\",
        \"maxBackoff\": \"4s\",
        \"backoffMultiplier\": 2,
        \"retryableStatusCodes\": [\"UNAVAILABLE\"]
    }
}]}";
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Connects before anything is asked of the user, so an unreachable server
/// is reported at once instead of after the input is typed.
///
/// With no server at the address (nothing listens on port 1 on an ordinary
/// machine), it gives up after `--connect-timeout` seconds with the line
/// the clients print:
///
/// ```
/// use fibonacci_grpc::client::{connect, ClientOptions};
/// use structopt::StructOpt;
///
/// let options = ClientOptions::from_iter(["client_unary", "localhost:1", "--connect-timeout", "1"]);
/// let error = connect(&options).err().expect("nothing listens on port 1");
/// assert_eq!(
///     error.to_string(),
///     "cannot reach the server at localhost:1 (no connection within 1s; \
///      is it running, and does it serve plaintext?)"
/// );
/// ```
pub fn connect(options: &ClientOptions) -> Result<FibonacciClient, ClientError> {
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("fibonacci-client")
            .build(),
    );
    // Round robin spreads calls over every address the target resolves to,
    // and skips one that stops answering; with one address it changes
    // nothing.
    let mut builder = ChannelBuilder::new(env)
        .load_balancing_policy(LbPolicy::RoundRobin)
        .enable_retry(true)
        .raw_cfg_string(
            CString::from(c"grpc.service_config"),
            CString::from(RETRY_WHEN_UNAVAILABLE),
        )
        // Back soon after a restart: the first reconnect follows the drop
        // at once, the next ones at most this far apart.
        .initial_reconnect_backoff(RECONNECT_BACKOFF)
        .max_reconnect_backoff(RECONNECT_BACKOFF_MAX);
    if let Some(name) = &options.tls_server_name {
        builder = builder.override_ssl_target(name.as_str());
    }
    let target = options.target();
    let channel = match tls_credentials(options)? {
        Some(credentials) => builder.set_credentials(credentials).connect(&target),
        None => builder.connect(&target),
    };
    let timeout = Duration::from_secs(options.connect_timeout);
    if !futures_executor::block_on(channel.wait_for_connected(timeout)) {
        return Err(ClientError::Unreachable {
            address: options.address.clone(),
            timeout,
            tls: options.tls_ca.is_some(),
        });
    }
    Ok(FibonacciClient::new(channel))
}

fn tls_credentials(options: &ClientOptions) -> Result<Option<ChannelCredentials>, ClientError> {
    let Some(ca) = &options.tls_ca else {
        return Ok(None);
    };
    let read = |path: &String| {
        fs::read(path).map_err(|error| ClientError::File {
            path: path.clone(),
            error,
        })
    };
    let mut builder = ChannelCredentialsBuilder::new().root_cert(read(ca)?);
    if let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) {
        builder = builder.cert(read(cert)?, read(key)?);
    }
    Ok(Some(builder.build()))
}
