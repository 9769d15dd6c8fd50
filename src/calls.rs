//! Bookkeeping of the Fibonacci calls: how many are in flight (for the
//! shutdown report), their metrics (`crate::metrics`) and, at debug level,
//! one log line per finished call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use grpcio::{RpcContext, RpcStatusCode};
use log::{debug, log_enabled, Level};

use crate::metrics::{MeteredCall, MethodMetrics};
use crate::status::code_name;

/// Counts the calls in flight. Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct CallTracker {
    in_flight: Arc<AtomicUsize>,
}

impl CallTracker {
    /// Records the start of the call behind `ctx`, a call of `method`.
    pub fn start(&self, ctx: &RpcContext, method: &Arc<MethodMetrics>) -> CallRecord {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // Method and peer are copied out of the C core only when they will
        // be logged: this is on every call's path.
        let detail = log_enabled!(Level::Debug).then(|| CallDetail {
            method: String::from_utf8_lossy(ctx.method()).into_owned(),
            peer: ctx.peer(),
            started: Instant::now(),
        });
        CallRecord {
            in_flight: Arc::clone(&self.in_flight),
            metered: method.start(),
            detail,
        }
    }

    /// Calls started and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One call in flight; finishing (or dropping) it takes it off the count.
#[derive(Debug)]
pub struct CallRecord {
    in_flight: Arc<AtomicUsize>,
    metered: MeteredCall,
    detail: Option<CallDetail>,
}

#[derive(Debug)]
struct CallDetail {
    method: String,
    peer: String,
    started: Instant,
}

impl CallRecord {
    /// A request message arrived.
    pub fn received(&self) {
        self.metered.received();
    }

    /// A reply message was handed to the C core to send.
    pub fn sent(&self) {
        self.metered.sent();
    }

    /// Counts and logs the call's end with the status it ended with. A refusal the
    /// client caused is an ordinary outcome, logged at debug like a success,
    /// never as a server error.
    pub fn finish(mut self, code: RpcStatusCode) {
        self.metered.ended_with(code);
        if let Some(detail) = &self.detail {
            debug!(
                "call {} from {}: {} in {}us",
                detail.method,
                detail.peer,
                code_name(code),
                detail.started.elapsed().as_micros()
            );
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
