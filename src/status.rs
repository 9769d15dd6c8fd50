//! The one place where a domain error becomes a gRPC status.
//!
//! A malformed input (a negative index, count or increment) is
//! `INVALID_ARGUMENT`; a well-formed input whose answer leaves int32 is
//! `OUT_OF_RANGE`, the code gRPC reserves for "past the end of a valid
//! range". The message is the error's own text, which names the value
//! received and the limit.

use grpcio::{RpcStatus, RpcStatusCode};

use crate::fibonacci::FibonacciError;

impl From<FibonacciError> for RpcStatus {
    fn from(error: FibonacciError) -> RpcStatus {
        let code = if error.is_invalid_argument() {
            RpcStatusCode::INVALID_ARGUMENT
        } else {
            RpcStatusCode::OUT_OF_RANGE
        };
        RpcStatus::with_message(code, error.to_string())
    }
}

/// The canonical name of a status code (`OUT_OF_RANGE`), as gRPC's docs
/// and other languages print it. (grpcio's `Display` prints `11-OUT_OF_RANGE`.)
pub fn code_name(code: RpcStatusCode) -> &'static str {
    match code {
        RpcStatusCode::OK => "OK",
        RpcStatusCode::CANCELLED => "CANCELLED",
        RpcStatusCode::UNKNOWN => "UNKNOWN",
        RpcStatusCode::INVALID_ARGUMENT => "INVALID_ARGUMENT",
        RpcStatusCode::DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED",
        RpcStatusCode::NOT_FOUND => "NOT_FOUND",
        RpcStatusCode::ALREADY_EXISTS => "ALREADY_EXISTS",
        RpcStatusCode::PERMISSION_DENIED => "PERMISSION_DENIED",
        RpcStatusCode::RESOURCE_EXHAUSTED => "RESOURCE_EXHAUSTED",
        RpcStatusCode::FAILED_PRECONDITION => "FAILED_PRECONDITION",
        RpcStatusCode::ABORTED => "ABORTED",
        RpcStatusCode::OUT_OF_RANGE => "OUT_OF_RANGE",
        RpcStatusCode::UNIMPLEMENTED => "UNIMPLEMENTED",
        RpcStatusCode::INTERNAL => "INTERNAL",
        RpcStatusCode::UNAVAILABLE => "UNAVAILABLE",
        RpcStatusCode::DATA_LOSS => "DATA_LOSS",
        RpcStatusCode::UNAUTHENTICATED => "UNAUTHENTICATED",
        _ => "INVALID_STATUS_CODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fibonacci;

    #[test]
    fn code_names_are_the_canonical_ones() {
        assert_eq!(code_name(RpcStatusCode::OUT_OF_RANGE), "OUT_OF_RANGE");
        assert_eq!(code_name(RpcStatusCode::from(16)), "UNAUTHENTICATED");
        assert_eq!(code_name(RpcStatusCode::from(99)), "INVALID_STATUS_CODE");
    }

    #[test]
    fn negative_inputs_are_invalid_arguments() {
        let status = RpcStatus::from(fibonacci::at_index(-1).unwrap_err());
        assert_eq!(status.code(), RpcStatusCode::INVALID_ARGUMENT);
        assert_eq!(status.message(), "index -1 is negative; indices start at 0");
    }

    #[test]
    fn answers_past_int32_are_out_of_range() {
        let status = RpcStatus::from(fibonacci::sequence(47).unwrap_err());
        assert_eq!(status.code(), RpcStatusCode::OUT_OF_RANGE);
        assert_eq!(
            status.message(),
            "count 47 is past 46, the longest sequence whose Fibonacci numbers fit in an int32"
        );
    }
}
