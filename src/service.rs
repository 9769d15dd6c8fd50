//! The `Fibonacci` servicer: one handler per rpc, in proto order.
//!
//! Each handler returns at once: it spawns one future on the RPC context and
//! never blocks a completion-queue thread. The logic of each call is plain
//! async code returning `Result<_, CallError>`; `finish` adapts that result
//! to grpcio's sinks in one place: a domain error becomes its status (see
//! `crate::status`), a broken connection is left alone. Nothing here
//! panics on any input: every value is checked by `crate::fibonacci`.

use futures::prelude::*;
use grpcio::{
    ClientStreamingSink, DuplexSink, Method, RequestStream, RpcContext, RpcStatus, RpcStatusCode,
    ServerStreamingSink, Service, ServiceBuilder, UnarySink, WriteFlags,
};

use std::sync::Arc;

use crate::calls::{CallRecord, CallTracker};
use crate::fibonacci::{self, FibonacciError, IndexSum, RunningSequence};
use crate::inbound::{self, Bounded, TooLarge};
use crate::metrics::{MethodMetrics, Metrics};
use crate::proto::{self, Number};

/// The servicer. Each call's state lives in its future; the service keeps
/// count of the calls in flight and the metrics of each method.
#[derive(Clone, Debug)]
struct FibonacciService {
    calls: CallTracker,
    at_index: Arc<MethodMetrics>,
    get_sequence: Arc<MethodMetrics>,
    sum_indicies: Arc<MethodMetrics>,
    stream_sequence: Arc<MethodMetrics>,
}

/// The `fibonacci.Fibonacci` service for a grpcio server, with its
/// requests decoded under the receive limit (see `crate::inbound`), its
/// replies encoded by `proto::encode_number`, its calls counted by `calls`
/// and in `metrics`.
pub fn create_service(calls: CallTracker, metrics: &Metrics) -> Service {
    let at_index = bounded(&proto::AT_INDEX);
    let get_sequence = bounded(&proto::GET_SEQUENCE);
    let sum_indicies = bounded(&proto::SUM_INDICIES);
    let stream_sequence = bounded(&proto::STREAM_SEQUENCE);
    let service = FibonacciService {
        calls,
        at_index: metrics.method(&at_index),
        get_sequence: metrics.method(&get_sequence),
        sum_indicies: metrics.method(&sum_indicies),
        stream_sequence: metrics.method(&stream_sequence),
    };
    let (unary, server_stream, client_stream, duplex) =
        (service.clone(), service.clone(), service.clone(), service);
    ServiceBuilder::new()
        .add_unary_handler(&at_index, move |ctx, request, sink| {
            unary.at_index(ctx, request, sink)
        })
        .add_server_streaming_handler(&get_sequence, move |ctx, request, sink| {
            server_stream.get_sequence(ctx, request, sink)
        })
        .add_client_streaming_handler(&sum_indicies, move |ctx, requests, sink| {
            client_stream.sum_indicies(ctx, requests, sink)
        })
        .add_duplex_streaming_handler(&stream_sequence, move |ctx, requests, sink| {
            duplex.stream_sequence(ctx, requests, sink)
        })
        .build()
}

/// A Fibonacci method as the server takes it: requests under the receive
/// limit, replies encoded by hand (`proto::encode_number`).
fn bounded(method: &Method<Number, Number>) -> Method<Bounded<Number>, Number> {
    let mut bounded = inbound::method(method.ty, method.name);
    bounded.resp_mar.ser = proto::encode_number;
    bounded
}

impl FibonacciService {
    // guide:start at_index
    fn at_index(&self, ctx: RpcContext, request: Bounded<Number>, sink: UnarySink<Number>) {
        let call = self.calls.start(&ctx, &self.at_index);
        let reply = request.map_err(CallError::from).and_then(|request| {
            call.received();
            Ok(Number::from(fibonacci::at_index(request.value)?))
        });
        ctx.spawn(finish(call, sink, reply));
    }
    // guide:end at_index

    // guide:start get_sequence
    fn get_sequence(
        &self,
        ctx: RpcContext,
        request: Bounded<Number>,
        mut sink: ServerStreamingSink<Number>,
    ) {
        let call = self.calls.start(&ctx, &self.get_sequence);
        ctx.spawn(async move {
            let result = get_sequence(&call, request, &mut sink).await;
            Box::pin(finish(call, sink, result)).await
        });
    }
    // guide:end get_sequence

    // guide:start sum_indicies
    fn sum_indicies(
        &self,
        ctx: RpcContext,
        mut requests: RequestStream<Bounded<Number>>,
        sink: ClientStreamingSink<Number>,
    ) {
        let call = self.calls.start(&ctx, &self.sum_indicies);
        ctx.spawn(async move {
            let result = sum_indicies(&call, &mut requests).await;
            Box::pin(finish(call, sink, result)).await;
            // Dropping a request stream that has not ended cancels the call,
            // which would turn a refusal sent early into CANCELLED: it goes
            // only after the status.
            drop(requests);
        });
    }
    // guide:end sum_indicies

    // guide:start stream_sequence
    fn stream_sequence(
        &self,
        ctx: RpcContext,
        mut requests: RequestStream<Bounded<Number>>,
        mut sink: DuplexSink<Number>,
    ) {
        let call = self.calls.start(&ctx, &self.stream_sequence);
        ctx.spawn(async move {
            let result = stream_sequence(&call, &mut requests, &mut sink).await;
            Box::pin(finish(call, sink, result)).await;
            drop(requests); // after the status, as in sum_indicies
        });
    }
    // guide:end stream_sequence
}

// guide:start get_sequence_logic
async fn get_sequence(
    call: &CallRecord,
    request: Bounded<Number>,
    sink: &mut impl NumberStream,
) -> Result<(), CallError> {
    let request = request?;
    call.received();
    let values = fibonacci::sequence(request.value)?;
    send_values(call, sink, values).await
}
// guide:end get_sequence_logic

// guide:start sum_indicies_logic
async fn sum_indicies(
    call: &CallRecord,
    requests: &mut RequestStream<Bounded<Number>>,
) -> Result<Number, CallError> {
    let mut sum = IndexSum::default();
    while let Some(request) = requests.try_next().await? {
        let request = request?;
        call.received();
        sum.add(request.value)?;
    }
    Ok(Number::from(sum.total()))
}
// guide:end sum_indicies_logic

// guide:start stream_sequence_logic
async fn stream_sequence(
    call: &CallRecord,
    requests: &mut RequestStream<Bounded<Number>>,
    sink: &mut impl NumberStream,
) -> Result<(), CallError> {
    let mut running = RunningSequence::default();
    while let Some(request) = requests.try_next().await? {
        let request = request?;
        call.received();
        let values = running.advance(request.value)?;
        send_values(call, sink, values).await?;
    }
    Ok(())
}
// guide:end stream_sequence_logic

// guide:start send_values
/// Sends `values` in order. All but the last may wait in the C core's
/// write buffer (buffer hint); the last goes out without the hint, which
/// flushes the lot, so a client waiting for the end of its turn (the
/// bidirectional client prompts only after the last reply) is never
/// left waiting on a buffered message.
async fn send_values(
    call: &CallRecord,
    sink: &mut impl NumberStream,
    values: &[i32],
) -> Result<(), CallError> {
    let Some((last, leading)) = values.split_last() else {
        return Ok(());
    };
    for &value in leading {
        sink.feed((Number::from(value), WriteFlags::default().buffer_hint(true)))
            .await?;
        call.sent();
    }
    sink.send((Number::from(*last), WriteFlags::default()))
        .await?;
    call.sent();
    Ok(())
}
// guide:end send_values

/// Why a call ended early.
#[derive(Debug)]
enum CallError {
    /// The request was refused: the client gets the matching status.
    Refused(FibonacciError),
    /// A request was past the receive limit: RESOURCE_EXHAUSTED.
    TooLarge(TooLarge),
    /// The call itself broke (client cancelled, connection gone, server
    /// shutting down): there is nobody left to tell.
    Transport,
}

impl From<FibonacciError> for CallError {
    fn from(error: FibonacciError) -> Self {
        CallError::Refused(error)
    }
}

impl From<TooLarge> for CallError {
    fn from(too_large: TooLarge) -> Self {
        CallError::TooLarge(too_large)
    }
}

impl From<grpcio::Error> for CallError {
    fn from(_: grpcio::Error) -> Self {
        CallError::Transport
    }
}

/// Where a streaming call writes its numbers (both streaming sink types).
trait NumberStream: Sink<(Number, WriteFlags), Error = grpcio::Error> + Unpin {}

impl<S: Sink<(Number, WriteFlags), Error = grpcio::Error> + Unpin> NumberStream for S {}

/// How a call sends its last word: a reply (AtIndex, SumIndicies) or the
/// end of its stream (`()`: GetSequence, StreamSequence), or a refusal.
/// grpcio gives each kind of call its own sink type with the same inherent
/// methods; this names what they share.
trait CallSink<T> {
    /// Whether success sends a reply message (unary and client-stream
    /// calls) rather than only closing the stream.
    const SUCCESS_SENDS_REPLY: bool;
    async fn succeed(self, ending: T) -> grpcio::Result<()>;
    async fn refuse(self, status: RpcStatus) -> grpcio::Result<()>;
}

impl CallSink<Number> for UnarySink<Number> {
    const SUCCESS_SENDS_REPLY: bool = true;
    async fn succeed(self, reply: Number) -> grpcio::Result<()> {
        self.success(reply).await
    }
    async fn refuse(self, status: RpcStatus) -> grpcio::Result<()> {
        self.fail(status).await
    }
}

impl CallSink<Number> for ClientStreamingSink<Number> {
    const SUCCESS_SENDS_REPLY: bool = true;
    async fn succeed(self, reply: Number) -> grpcio::Result<()> {
        self.success(reply).await
    }
    async fn refuse(self, status: RpcStatus) -> grpcio::Result<()> {
        self.fail(status).await
    }
}

impl CallSink<()> for ServerStreamingSink<Number> {
    const SUCCESS_SENDS_REPLY: bool = false;
    async fn succeed(mut self, (): ()) -> grpcio::Result<()> {
        self.close().await
    }
    async fn refuse(self, status: RpcStatus) -> grpcio::Result<()> {
        self.fail(status).await
    }
}

impl CallSink<()> for DuplexSink<Number> {
    const SUCCESS_SENDS_REPLY: bool = false;
    async fn succeed(mut self, (): ()) -> grpcio::Result<()> {
        self.close().await
    }
    async fn refuse(self, status: RpcStatus) -> grpcio::Result<()> {
        self.fail(status).await
    }
}

/// Ends a call with the outcome of its logic and records how it ended.
/// The streaming handlers await it boxed: a future is as large as its
/// largest state, and this one (the sink moved in, the status, grpcio's
/// closing futures) would otherwise make up most of what a held
/// StreamSequence call keeps for its whole life (BENCHMARKS.md, "What
/// moved the numbers"); boxed, it is allocated only when the call ends. A
/// failed send of the final reply or status means the client has gone:
/// there is nobody to tell and it is not a server error, so it is recorded
/// as CANCELLED and nothing more.
async fn finish<T, S: CallSink<T>>(call: CallRecord, sink: S, result: Result<T, CallError>) {
    let code = match result {
        Ok(ending) => sink.succeed(ending).await.map(|()| {
            if S::SUCCESS_SENDS_REPLY {
                call.sent();
            }
            RpcStatusCode::OK
        }),
        Err(CallError::Refused(error)) => refuse(sink, RpcStatus::from(error)).await,
        Err(CallError::TooLarge(too_large)) => refuse(sink, RpcStatus::from(too_large)).await,
        Err(CallError::Transport) => Ok(RpcStatusCode::CANCELLED),
    };
    call.finish(code.unwrap_or(RpcStatusCode::CANCELLED));
}

async fn refuse<T>(sink: impl CallSink<T>, status: RpcStatus) -> grpcio::Result<RpcStatusCode> {
    let code = status.code();
    sink.refuse(status).await.map(|()| code)
}
