//! The replies of a streaming call, in the order the server sent them.

use futures::{Stream, TryStreamExt};

use super::ClientError;
use crate::proto::Number;

/// The replies of a streaming call, in the order the server sent them, its
/// status last.
///
/// grpcio 0.13 reports a failed status as soon as it arrives, ahead of the
/// messages that came before it; those are still delivered by the polls
/// that follow. Against a server that sends numbers and then fails (the
/// guide's Python server sends F(45) and F(46) before its UNKNOWN), a
/// client that stopped at the first error would drop numbers the server
/// sent. This keeps reading after the error and reports it once the
/// messages are exhausted.
///
/// ```
/// use fibonacci_grpc::client::{ClientError, Replies};
/// use fibonacci_grpc::proto::Number;
/// use futures::stream;
/// use grpcio::{RpcStatus, RpcStatusCode};
///
/// // A server sent F(45) and F(46), then failed; grpcio yields the status
/// // first.
/// let status = RpcStatus::with_message(RpcStatusCode::UNKNOWN, "Value out of range".to_string());
/// let from_grpcio = stream::iter([
///     Err(grpcio::Error::RpcFailure(status)),
///     Ok(Number::from(1_134_903_170)),
///     Ok(Number::from(1_836_311_903)),
/// ]);
///
/// let mut replies = Replies::new(from_grpcio);
/// assert_eq!(replies.next_reply()?.map(|n| n.value), Some(1_134_903_170));
/// assert_eq!(replies.next_reply()?.map(|n| n.value), Some(1_836_311_903));
/// match replies.next_reply() {
///     Err(ClientError::Status(status)) => assert_eq!(status.code(), RpcStatusCode::UNKNOWN),
///     other => panic!("expected the status last, got {other:?}"),
/// }
/// # Ok::<(), ClientError>(())
/// ```
pub struct Replies<S> {
    stream: S,
    failure: Option<grpcio::Error>,
}

impl<S: Stream<Item = grpcio::Result<Number>> + Unpin> Replies<S> {
    /// Reads the replies of `stream`, as grpcio's streaming calls return
    /// it.
    pub fn new(stream: S) -> Self {
        Replies {
            stream,
            failure: None,
        }
    }

    /// The next reply; `Ok(None)` once the call ended with OK, the status
    /// once the call failed and every earlier reply has been returned.
    pub fn next_reply(&mut self) -> Result<Option<Number>, ClientError> {
        loop {
            match futures_executor::block_on(self.stream.try_next()) {
                Ok(Some(reply)) => return Ok(Some(reply)),
                Ok(None) => {
                    return self
                        .failure
                        .take()
                        .map_or(Ok(None), |error| Err(error.into()))
                }
                // The first error is the status; later polls give what was
                // received before it, and then a second error or the end.
                Err(error) => match self.failure.take() {
                    None => self.failure = Some(error),
                    Some(status) => return Err(status.into()),
                },
            }
        }
    }
}
