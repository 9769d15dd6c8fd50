//! The standard health service, `grpc.health.v1.Health`: `Check` answers
//! with a service's serving status (NOT_FOUND for a service it does not
//! know), `Watch` streams it: the status now, then each change.
//!
//! The messages are generated from `proto/grpc/health/v1/health.proto` by
//! `build.rs`; the service is written here, not taken from grpcio-health,
//! because grpcio has no server interceptors: a handler counts its own
//! call for the metrics (`crate::metrics`), and grpcio-health's handlers
//! spawn their replies where nothing else can see how a call ended.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::prelude::*;
use grpcio::{
    MethodType, RpcContext, RpcStatus, RpcStatusCode, ServerStreamingSink, Service, ServiceBuilder,
    UnarySink, WriteFlags,
};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/health_v1_generated.rs"));
}

pub use generated::health::health_check_response::ServingStatus;
pub(crate) use generated::health::HealthCheckRequest;
use generated::health::HealthCheckResponse;

use crate::inbound::{self, Bounded};
use crate::metrics::{MeteredCall, Metrics};

/// The health service's name, as clients ask for it.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const CHECK_METHOD: &str = "/grpc.health.v1.Health/Check";
const WATCH_METHOD: &str = "/grpc.health.v1.Health/Watch";

/// `grpc/health/v1/health.proto` as `build.rs` parsed it for the
/// generated messages, for reflection.
pub(crate) const HEALTH_FILE_DESCRIPTOR: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/health_v1_descriptor.bin"));

/// The serving status of each service, and who is watching it. Clones
/// share it.
#[derive(Clone, Debug, Default)]
pub struct HealthStatus {
    inner: Arc<Mutex<Statuses>>,
}

#[derive(Debug, Default)]
struct Statuses {
    by_service: HashMap<String, ServingStatus>,
    watchers: HashMap<u64, Watcher>,
    next_watcher: u64,
    /// Once shut down, every service stays NOT_SERVING.
    shut_down: bool,
}

#[derive(Debug)]
struct Watcher {
    service: String,
    updates: mpsc::UnboundedSender<ServingStatus>,
}

impl HealthStatus {
    fn lock(&self) -> MutexGuard<'_, Statuses> {
        // A panic while holding this lock cannot leave the map half
        // updated, so a poisoned lock is still a good one.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets `service`'s status ("" is the whole server) and tells its
    /// watchers. Ignored after [`shutdown`](HealthStatus::shutdown).
    pub fn set_serving_status(&self, service: &str, status: ServingStatus) {
        let mut statuses = self.lock();
        if statuses.shut_down {
            return;
        }
        statuses.by_service.insert(service.to_string(), status);
        for watcher in statuses.watchers.values() {
            if watcher.service == service {
                let _ = watcher.updates.unbounded_send(status);
            }
        }
    }

    /// Turns every service NOT_SERVING for good, and tells every watcher.
    pub fn shutdown(&self) {
        let mut statuses = self.lock();
        statuses.shut_down = true;
        for status in statuses.by_service.values_mut() {
            *status = ServingStatus::NOT_SERVING;
        }
        for watcher in statuses.watchers.values() {
            let _ = watcher.updates.unbounded_send(ServingStatus::NOT_SERVING);
        }
    }

    fn status(&self, service: &str) -> Option<ServingStatus> {
        self.lock().by_service.get(service).copied()
    }

    /// `service`'s status now (SERVICE_UNKNOWN if it has none), then each
    /// change, until the subscription is dropped.
    fn watch(&self, service: String) -> Subscription {
        let mut statuses = self.lock();
        let now = statuses
            .by_service
            .get(&service)
            .copied()
            .unwrap_or(ServingStatus::SERVICE_UNKNOWN);
        let (updates, received) = mpsc::unbounded();
        let _ = updates.unbounded_send(now);
        let id = statuses.next_watcher;
        statuses.next_watcher += 1;
        statuses.watchers.insert(id, Watcher { service, updates });
        Subscription {
            id,
            health: self.clone(),
            received,
        }
    }
}

/// One watcher's stream of statuses; dropping it stops the updates.
struct Subscription {
    id: u64,
    health: HealthStatus,
    received: mpsc::UnboundedReceiver<ServingStatus>,
}

impl Stream for Subscription {
    type Item = ServingStatus;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServingStatus>> {
        self.received.poll_next_unpin(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.health.lock().watchers.remove(&self.id);
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
        ..HealthCheckResponse::default()
    }
}

/// The health service for a grpcio server, its requests decoded under the
/// receive limit (see `crate::inbound`), its calls counted in `metrics`.
pub fn create_service(health: HealthStatus, metrics: &Metrics) -> Service {
    let check =
        inbound::method::<HealthCheckRequest, HealthCheckResponse>(MethodType::Unary, CHECK_METHOD);
    let watch = inbound::method::<HealthCheckRequest, HealthCheckResponse>(
        MethodType::ServerStreaming,
        WATCH_METHOD,
    );
    let check_metrics = metrics.method(&check);
    let watch_metrics = metrics.method(&watch);
    let watched = health.clone();
    ServiceBuilder::new()
        .add_unary_handler(&check, move |ctx, request, sink| {
            let call = check_metrics.start();
            ctx.spawn(check_call(call, health.clone(), request, sink));
        })
        .add_server_streaming_handler(&watch, move |ctx: RpcContext, request, sink| {
            let call = watch_metrics.start();
            ctx.spawn(watch_call(call, watched.clone(), request, sink));
        })
        .build()
}

async fn check_call(
    call: MeteredCall,
    health: HealthStatus,
    request: Bounded<HealthCheckRequest>,
    sink: UnarySink<HealthCheckResponse>,
) {
    let status = match request {
        Ok(request) => {
            call.received();
            match health.status(&request.service) {
                Some(status) => Ok(response(status)),
                None => Err(RpcStatus::with_message(
                    RpcStatusCode::NOT_FOUND,
                    "unknown service".to_string(),
                )),
            }
        }
        Err(too_large) => Err(too_large.into()),
    };
    let code = match status {
        Ok(reply) => sink.success(reply).await.map(|()| {
            call.sent();
            RpcStatusCode::OK
        }),
        Err(status) => {
            let code = status.code();
            sink.fail(status).await.map(|()| code)
        }
    };
    // A failed send is the client gone: nobody to tell.
    call.finish(code.unwrap_or(RpcStatusCode::CANCELLED));
}

/// Ends only when the client goes away (noticed at the next status sent)
/// or the server cancels it at shutdown.
async fn watch_call(
    call: MeteredCall,
    health: HealthStatus,
    request: Bounded<HealthCheckRequest>,
    mut sink: ServerStreamingSink<HealthCheckResponse>,
) {
    let request = match request {
        Ok(request) => request,
        Err(too_large) => {
            let code = RpcStatusCode::RESOURCE_EXHAUSTED;
            let sent = sink.fail(too_large.into()).await;
            return call.finish(sent.map_or(RpcStatusCode::CANCELLED, |()| code));
        }
    };
    call.received();
    let mut statuses = health.watch(request.service);
    while let Some(status) = statuses.next().await {
        if sink
            .send((response(status), WriteFlags::default()))
            .await
            .is_err()
        {
            break;
        }
        call.sent();
    }
    call.finish(RpcStatusCode::CANCELLED);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn a_watcher_sees_the_status_now_then_each_change_then_not_serving() {
        let health = HealthStatus::default();
        health.set_serving_status("a", ServingStatus::SERVING);
        let mut watching_a = health.watch("a".to_string());
        let mut watching_b = health.watch("b".to_string());
        health.set_serving_status("b", ServingStatus::SERVING);
        health.shutdown();
        health.set_serving_status("a", ServingStatus::SERVING); // ignored
        let next = |stream: &mut Subscription| block_on(stream.next());
        assert_eq!(next(&mut watching_a), Some(ServingStatus::SERVING));
        assert_eq!(next(&mut watching_a), Some(ServingStatus::NOT_SERVING));
        assert_eq!(next(&mut watching_b), Some(ServingStatus::SERVICE_UNKNOWN));
        assert_eq!(next(&mut watching_b), Some(ServingStatus::SERVING));
        assert_eq!(next(&mut watching_b), Some(ServingStatus::NOT_SERVING));
        assert_eq!(health.status("a"), Some(ServingStatus::NOT_SERVING));
        assert_eq!(health.status("c"), None);
    }

    #[test]
    fn method_paths_are_the_compiled_protos() {
        assert_eq!(
            crate::proto::method_paths(HEALTH_FILE_DESCRIPTOR),
            [CHECK_METHOD, WATCH_METHOD]
        );
    }

    #[test]
    fn the_descriptor_served_is_the_one_compiled_in() {
        use protobuf::Message as _;
        let compiled = generated::health::file_descriptor()
            .proto()
            .write_to_bytes()
            .unwrap();
        assert_eq!(HEALTH_FILE_DESCRIPTOR, compiled);
    }

    #[test]
    fn a_dropped_watcher_is_forgotten() {
        let health = HealthStatus::default();
        let watching = health.watch(String::new());
        assert_eq!(health.lock().watchers.len(), 1);
        drop(watching);
        assert_eq!(health.lock().watchers.len(), 0);
    }
}
