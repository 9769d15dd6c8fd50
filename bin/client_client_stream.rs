//! The guide's `client_client_stream.py`: streams indices as they are typed,
//! then prints the sum of their Fibonacci numbers.

use std::process::ExitCode;

use fibonacci_grpc::client::{self, ClientError, ClientOptions};
use fibonacci_grpc::proto::Number;
use futures::SinkExt;
use futures_executor::block_on;
use grpcio::WriteFlags;

/// What `--help` says this client does; the address and flags follow it.
const ABOUT: &str = "\
    Asks for indices until an empty line, streams them to the server and \
    prints the sum of their Fibonacci numbers (SumIndicies): the guide's \
    client_client_stream.py. Connects to ADDRESS (default localhost:1337), \
    with TLS if --tls-ca is given.";

// guide:start main
fn main() -> ExitCode {
    client::run(ClientOptions::for_client(ABOUT), |session| {
        let (mut requests, reply) = session.client.sum_indicies()?;
        while let Some(index) = session
            .terminal
            .ask_next_index("enter an index (or nothing to stop): ")?
        {
            if block_on(requests.send((Number::from(index), WriteFlags::default()))).is_err() {
                // The server has already ended the call (it refused an
                // index): its status says why.
                return Err(block_on(reply)
                    .err()
                    .map_or(ClientError::CallEnded, Into::into));
            }
        }
        session.terminal.say("done sending")?;
        // Closing fails only if the call has already ended; `reply` then
        // carries the status.
        let _ = block_on(requests.close());
        let sum = block_on(reply)?;
        session.terminal.say(&format!("Sum: {}", sum.value))?;
        Ok(())
    })
}
// guide:end main
