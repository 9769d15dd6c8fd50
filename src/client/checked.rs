//! One call of each of the guide's request shapes, every returned value
//! checked against [`crate::fibonacci`]: what the load generator, the soak
//! and the fault tests send, so "no wrong answer" means the same to each.
//!
//! - `AtIndex(46)`: one reply, F(46);
//! - `GetSequence(46)`: 46 replies, F(1)..F(46);
//! - `SumIndicies(7, 5)`: one reply, 18;
//! - `StreamSequence(4, 2, 1)`: sent interleaved (send 4, read 4 replies,
//!   send 2, read 2, send 1, read 1, close): the 7 values F(1)..F(7).

use futures::prelude::*;
use grpcio::{CallOption, WriteFlags};

use crate::fibonacci;
use crate::proto::{FibonacciClient, Number};

/// The four methods of the service, each with its request shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Unary: `AtIndex(46)`.
    AtIndex,
    /// Server stream: `GetSequence(46)`.
    GetSequence,
    /// Client stream: `SumIndicies(7, 5)`.
    SumIndicies,
    /// Bidirectional stream: `StreamSequence(4, 2, 1)`, interleaved.
    StreamSequence,
}

impl Method {
    /// A method from its name, in any case, with or without `-`/`_`
    /// (`get-sequence`, `AtIndex`); the guide's misspelt `SumIndicies` and
    /// the dictionary's `SumIndices` both name the client stream.
    ///
    /// ```
    /// use fibonacci_grpc::client::checked::Method;
    /// assert_eq!(Method::parse("sum_indices"), Ok(Method::SumIndicies));
    /// assert!(Method::parse("Fib").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Method, String> {
        let key: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "atindex" => Ok(Method::AtIndex),
            "getsequence" => Ok(Method::GetSequence),
            "sumindicies" | "sumindices" => Ok(Method::SumIndicies),
            "streamsequence" => Ok(Method::StreamSequence),
            _ => Err(format!(
                "{text:?} is not a method: AtIndex, GetSequence, SumIndicies or StreamSequence"
            )),
        }
    }

    /// The method's name in the proto.
    pub fn name(self) -> &'static str {
        match self {
            Method::AtIndex => "AtIndex",
            Method::GetSequence => "GetSequence",
            Method::SumIndicies => "SumIndicies",
            Method::StreamSequence => "StreamSequence",
        }
    }

    /// The request shape, as the guide sends it.
    pub fn shape(self) -> &'static str {
        match self {
            Method::AtIndex => "AtIndex(46)",
            Method::GetSequence => "GetSequence(46)",
            Method::SumIndicies => "SumIndicies(7, 5)",
            Method::StreamSequence => "StreamSequence(4, 2, 1) interleaved",
        }
    }

    /// Messages per call, both directions.
    pub fn messages_per_call(self) -> u64 {
        match self {
            Method::AtIndex => 2,
            Method::GetSequence => 1 + 46,
            Method::SumIndicies => 2 + 1,
            Method::StreamSequence => 3 + 7,
        }
    }
}

/// Why one call did not count as a success.
#[derive(Debug)]
pub enum CallFailure {
    /// The call failed: a status, or grpcio's own error.
    Grpc(grpcio::Error),
    /// The call succeeded with a value other than the arithmetic's: what
    /// was asked, what came and what was expected.
    Wrong(String),
}

impl From<grpcio::Error> for CallFailure {
    fn from(error: grpcio::Error) -> Self {
        CallFailure::Grpc(error)
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Grpc(error) => write!(f, "gRPC error: {error}"),
            CallFailure::Wrong(what) => write!(f, "wrong answer: {what}"),
        }
    }
}

fn expect_values(what: &str, got: &[i32], want: &[i32]) -> Result<(), CallFailure> {
    if got == want {
        Ok(())
    } else {
        Err(CallFailure::Wrong(format!(
            "{what}: got {got:?}, expected {want:?}"
        )))
    }
}

/// The values every call is checked against, computed once from the
/// arithmetic module.
pub struct Expected {
    at_index_46: i32,
    sequence_46: Vec<i32>,
    sum_7_5: i32,
    stream_4_2_1: [Vec<i32>; 3],
}

impl Default for Expected {
    fn default() -> Self {
        Expected::new()
    }
}

impl Expected {
    /// The answers to the four request shapes, read from the arithmetic's
    /// table (every index here is within it).
    pub fn new() -> Expected {
        let fibonacci = fibonacci::all_in_int32();
        Expected {
            at_index_46: fibonacci[46],
            sequence_46: fibonacci[1..=46].to_vec(),
            sum_7_5: fibonacci[7] + fibonacci[5],
            stream_4_2_1: [
                fibonacci[1..5].to_vec(),
                fibonacci[5..7].to_vec(),
                fibonacci[7..8].to_vec(),
            ],
        }
    }
}

/// Half-closes a request stream. grpcio's close can fail with
/// `RpcFinished` when the call's OK status overtakes the completion of the
/// close itself (the server ends the call as soon as it sees the
/// half-close); that is not a failure, and the reply side still reports the
/// real status of the call.
pub async fn close(sender: &mut grpcio::StreamingCallSink<Number>) -> grpcio::Result<()> {
    match sender.close().await {
        Err(grpcio::Error::RpcFinished(status))
            if status
                .as_ref()
                .is_none_or(|s| s.code() == grpcio::RpcStatusCode::OK) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// One call of `method`, every returned value checked.
pub async fn one_call(
    client: &FibonacciClient,
    method: Method,
    expected: &Expected,
    option: CallOption,
) -> Result<(), CallFailure> {
    match method {
        Method::AtIndex => {
            let reply = client
                .at_index_async_opt(&Number::from(46), option)?
                .await?;
            expect_values("AtIndex(46)", &[reply.value], &[expected.at_index_46])
        }
        Method::GetSequence => {
            let mut replies = client.get_sequence_opt(&Number::from(46), option)?;
            let mut got = Vec::with_capacity(46);
            while let Some(reply) = replies.try_next().await? {
                got.push(reply.value);
            }
            expect_values("GetSequence(46)", &got, &expected.sequence_46)
        }
        Method::SumIndicies => {
            let (mut sender, receiver) = client.sum_indicies_opt(option)?;
            sender
                .feed((Number::from(7), WriteFlags::default().buffer_hint(true)))
                .await?;
            sender
                .send((Number::from(5), WriteFlags::default()))
                .await?;
            close(&mut sender).await?;
            let reply = receiver.await?;
            expect_values("SumIndicies(7, 5)", &[reply.value], &[expected.sum_7_5])
        }
        Method::StreamSequence => {
            let (mut sender, mut replies) = client.stream_sequence_opt(option)?;
            for (increment, want) in [4, 2, 1].into_iter().zip(&expected.stream_4_2_1) {
                sender
                    .send((Number::from(increment), WriteFlags::default()))
                    .await?;
                let mut got = Vec::with_capacity(want.len());
                while got.len() < want.len() {
                    match replies.try_next().await? {
                        Some(reply) => got.push(reply.value),
                        None => break,
                    }
                }
                expect_values(&format!("StreamSequence turn {increment}"), &got, want)?;
            }
            close(&mut sender).await?;
            // The call ends with OK and nothing more.
            if let Some(extra) = replies.try_next().await? {
                return Err(CallFailure::Wrong(format!(
                    "StreamSequence(4, 2, 1): an 8th value {} after the 7",
                    extra.value
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!(Method::parse("AtIndex"), Ok(Method::AtIndex));
        assert_eq!(Method::parse("get-sequence"), Ok(Method::GetSequence));
        assert_eq!(Method::parse("sum_indicies"), Ok(Method::SumIndicies));
        assert_eq!(Method::parse("streamsequence"), Ok(Method::StreamSequence));
        assert!(Method::parse("Fib").is_err());
    }

    #[test]
    fn expected_values_come_from_the_arithmetic() {
        let expected = Expected::new();
        assert_eq!(expected.at_index_46, 1_836_311_903);
        assert_eq!(expected.sequence_46.len(), 46);
        assert_eq!(expected.sum_7_5, 18);
        assert_eq!(
            expected.stream_4_2_1,
            [vec![1, 1, 2, 3], vec![5, 8], vec![13]]
        );
    }
}
