//! Where the load generator's calls go: its connections. The calls
//! themselves, one of each of the guide's request shapes with every value
//! checked, are the library's (`fibonacci_grpc::client::checked`).

use std::sync::Arc;
use std::time::Duration;

use fibonacci_grpc::proto::FibonacciClient;
use grpcio::{ChannelBuilder, EnvBuilder, Environment};

pub use fibonacci_grpc::client::checked::{close, one_call, CallFailure, Expected, Method};

/// Where the calls go: `channels` connections to `address`, run by a gRPC
/// environment of `client_threads` completion queues.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: String,
    pub channels: usize,
    pub client_threads: usize,
}

impl Target {
    /// The clients, each on a connection of its own, and the environment
    /// that runs them. Each channel gets a local subchannel pool, so
    /// grpcio does not share one TCP connection between channels with the
    /// same arguments.
    pub fn connect(&self) -> Result<(Arc<Environment>, Vec<FibonacciClient>), String> {
        let env = Arc::new(
            EnvBuilder::new()
                .cq_count(self.client_threads)
                .name_prefix("bench-cq")
                .build(),
        );
        let mut clients = Vec::with_capacity(self.channels);
        for _ in 0..self.channels {
            let channel = ChannelBuilder::new(Arc::clone(&env))
                .use_local_subchannel_pool(true)
                .connect(&self.address);
            if !futures_executor::block_on(channel.wait_for_connected(Duration::from_secs(10))) {
                return Err(format!(
                    "cannot reach {} (no connection within 10s)",
                    self.address
                ));
            }
            clients.push(FibonacciClient::new(channel));
        }
        Ok((env, clients))
    }
}
