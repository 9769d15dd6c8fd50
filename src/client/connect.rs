//! Connecting to the server: the channel (round robin over every address
//! the target resolves to), TLS, and the wait for the connection.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{ChannelBuilder, ChannelCredentials, ChannelCredentialsBuilder, EnvBuilder, LbPolicy};

use super::{ClientError, ClientOptions};
use crate::proto::FibonacciClient;

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
    let mut builder = ChannelBuilder::new(env).load_balancing_policy(LbPolicy::RoundRobin);
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
