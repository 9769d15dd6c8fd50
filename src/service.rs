//! The `Fibonacci` servicer: one handler per rpc, in proto order.
//!
//! Each handler returns at once: it spawns one future on the RPC context and
//! never blocks a completion-queue thread. The logic of each call is plain
//! async code returning `Result<_, CallError>`; `finish_*` adapt that result
//! to grpcio's sinks in one place: a domain error becomes its status (see
//! `crate::status`), a broken connection is left alone. Nothing here
//! panics on any input: every value is checked by `crate::fibonacci`.

use futures::prelude::*;
use grpcio::{
    ClientStreamingSink, DuplexSink, RequestStream, RpcContext, RpcStatus, ServerStreamingSink,
    UnarySink, WriteFlags,
};

use crate::fibonacci::{self, FibonacciError, IndexSum, RunningSequence};
use crate::proto::{Fibonacci, Number};

/// The servicer. It holds no state: each call's state lives in its future.
#[derive(Clone, Copy, Debug, Default)]
pub struct FibonacciService;

impl Fibonacci for FibonacciService {
    fn at_index(&mut self, ctx: RpcContext, request: Number, sink: UnarySink<Number>) {
        let reply = fibonacci::at_index(request.value).map(Number::from);
        ctx.spawn(finish_reply(sink, reply.map_err(CallError::from)));
    }

    fn get_sequence(
        &mut self,
        ctx: RpcContext,
        request: Number,
        mut sink: ServerStreamingSink<Number>,
    ) {
        ctx.spawn(async move {
            let result = get_sequence(request, &mut sink).await;
            finish_stream(sink, result).await
        });
    }

    fn sum_indicies(
        &mut self,
        ctx: RpcContext,
        mut requests: RequestStream<Number>,
        sink: ClientStreamingSink<Number>,
    ) {
        ctx.spawn(async move {
            let result = sum_indicies(&mut requests).await;
            finish_reply(sink, result).await;
            // Dropping a request stream that has not ended cancels the call,
            // which would turn a refusal sent early into CANCELLED: it goes
            // only after the status.
            drop(requests);
        });
    }

    fn stream_sequence(
        &mut self,
        ctx: RpcContext,
        mut requests: RequestStream<Number>,
        mut sink: DuplexSink<Number>,
    ) {
        ctx.spawn(async move {
            let result = stream_sequence(&mut requests, &mut sink).await;
            finish_stream(sink, result).await;
            drop(requests); // after the status, as in sum_indicies
        });
    }
}

async fn get_sequence(request: Number, sink: &mut impl NumberSink) -> Result<(), CallError> {
    let values = fibonacci::sequence(request.value)?;
    send_values(sink, values).await
}

async fn sum_indicies(requests: &mut RequestStream<Number>) -> Result<Number, CallError> {
    let mut sum = IndexSum::default();
    while let Some(request) = requests.try_next().await? {
        sum.add(request.value)?;
    }
    Ok(Number::from(sum.total()))
}

async fn stream_sequence(
    requests: &mut RequestStream<Number>,
    sink: &mut impl NumberSink,
) -> Result<(), CallError> {
    let mut running = RunningSequence::default();
    while let Some(request) = requests.try_next().await? {
        let values = running.advance(request.value)?;
        send_values(sink, values).await?;
    }
    Ok(())
}

/// Sends `values` in order. All but the last may wait in the C core's
/// write buffer (buffer hint); the last goes out without the hint, which
/// flushes the lot, so a client waiting for the end of its turn (the
/// bidirectional client prompts only after the last reply) is never
/// left waiting on a buffered message.
async fn send_values(sink: &mut impl NumberSink, values: &[i32]) -> Result<(), CallError> {
    let Some((last, leading)) = values.split_last() else {
        return Ok(());
    };
    for &value in leading {
        sink.feed((Number::from(value), WriteFlags::default().buffer_hint(true)))
            .await?;
    }
    sink.send((Number::from(*last), WriteFlags::default()))
        .await?;
    Ok(())
}

/// Why a call ended early.
#[derive(Debug)]
enum CallError {
    /// The request was refused: the client gets the matching status.
    Refused(FibonacciError),
    /// The call itself broke (client cancelled, connection gone, server
    /// shutting down): there is nobody left to tell.
    Transport,
}

impl From<FibonacciError> for CallError {
    fn from(error: FibonacciError) -> Self {
        CallError::Refused(error)
    }
}

impl From<grpcio::Error> for CallError {
    fn from(_: grpcio::Error) -> Self {
        CallError::Transport
    }
}

/// The sink of a call that answers with one `Number` (AtIndex,
/// SumIndicies): grpcio gives each kind its own type with the same inherent
/// `success` and `fail`.
trait ReplySink {
    type Sent: Future<Output = grpcio::Result<()>>;
    fn reply(self, reply: Number) -> Self::Sent;
    fn refuse(self, status: RpcStatus) -> Self::Sent;
}

/// The sink of a call that streams `Number`s back (GetSequence,
/// StreamSequence), likewise.
trait NumberSink: Sink<(Number, WriteFlags), Error = grpcio::Error> + Unpin {
    type Refused: Future<Output = grpcio::Result<()>>;
    fn refuse(self, status: RpcStatus) -> Self::Refused;
}

impl ReplySink for UnarySink<Number> {
    type Sent = grpcio::UnarySinkResult;
    fn reply(self, reply: Number) -> Self::Sent {
        self.success(reply)
    }
    fn refuse(self, status: RpcStatus) -> Self::Sent {
        self.fail(status)
    }
}

impl ReplySink for ClientStreamingSink<Number> {
    type Sent = grpcio::ClientStreamingSinkResult;
    fn reply(self, reply: Number) -> Self::Sent {
        self.success(reply)
    }
    fn refuse(self, status: RpcStatus) -> Self::Sent {
        self.fail(status)
    }
}

impl NumberSink for ServerStreamingSink<Number> {
    type Refused = grpcio::ServerStreamingSinkFailure;
    fn refuse(self, status: RpcStatus) -> Self::Refused {
        self.fail(status)
    }
}

impl NumberSink for DuplexSink<Number> {
    type Refused = grpcio::DuplexSinkFailure;
    fn refuse(self, status: RpcStatus) -> Self::Refused {
        self.fail(status)
    }
}

// A failed send of the final reply or status means the client has gone:
// there is nobody to tell and it is not a server error, so the results of
// the `finish_*` sends are deliberately dropped.

async fn finish_reply(sink: impl ReplySink, result: Result<Number, CallError>) {
    let _ = match result {
        Ok(reply) => sink.reply(reply).await,
        Err(CallError::Refused(error)) => sink.refuse(error.into()).await,
        Err(CallError::Transport) => return,
    };
}

async fn finish_stream(mut sink: impl NumberSink, result: Result<(), CallError>) {
    let _ = match result {
        Ok(()) => sink.close().await,
        Err(CallError::Refused(error)) => sink.refuse(error.into()).await,
        Err(CallError::Transport) => return,
    };
}
