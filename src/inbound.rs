//! Requests decoded under the server's receive limit (`--max-message-size`).
//!
//! The C core enforces that limit first (`crate::limits`): its transport
//! refuses a message whose length prefix passes it, and its decompression
//! stops near it. Near, not at: the core inflates into blocks of 1 KiB and
//! checks the limit between blocks, and with its filters fused (as the
//! server runs them) the size check before decompression sees only the
//! compressed size. A compressed request that inflates to up to 1 KiB past
//! the limit therefore reaches the server, and is refused here, as it is
//! decoded, with the core's own wording: RESOURCE_EXHAUSTED, "SERVER:
//! Received message larger than max (N vs. M)".
//!
//! Until session 6 the server lifted the core's limit, to keep the core's
//! message_size filter out of the stack, and checked sizes only here; the
//! core then inflated a compressed request whole, whatever its size
//! (docs/hardening.md, "Decompression bombs").
//!
//! Replies are not checked: they are the server's own, a few bytes each
//! (reflection's descriptors are the largest, a few kB).

use std::fmt;
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};

use grpcio::{GrpcSlice, Marshaller, MessageReader, Method, MethodType, RpcStatus, RpcStatusCode};
use protobuf::{CodedInputStream, Message};

/// A request as the server received it: the message, or why it was not
/// decoded.
pub type Bounded<T> = Result<T, TooLarge>;

/// A request message past the receive limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// Its size on the wire, in bytes.
    pub size: usize,
    /// The limit it broke.
    pub limit: usize,
}

impl fmt::Display for TooLarge {
    // The C core's own wording, so clients see what they would see from
    // any other gRPC server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SERVER: Received message larger than max ({} vs. {})",
            self.size, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

impl From<TooLarge> for RpcStatus {
    fn from(too_large: TooLarge) -> RpcStatus {
        RpcStatus::with_message(RpcStatusCode::RESOURCE_EXHAUSTED, too_large.to_string())
    }
}

/// The receive limit, in bytes. Process-wide because grpcio's decoders are
/// plain function pointers, which cannot carry a server's configuration;
/// one server per process sets it, at start-up (`server::start`).
static RECEIVE_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the receive limit (`--max-message-size`) for every request decoded
/// from now on.
pub fn set_receive_limit(bytes: usize) {
    RECEIVE_LIMIT.store(bytes, Ordering::Relaxed);
}

fn receive_limit() -> usize {
    RECEIVE_LIMIT.load(Ordering::Relaxed)
}

/// A method whose requests are decoded under the receive limit. Replies
/// are encoded as usual.
pub fn method<Req: Message, Resp: Message>(
    ty: MethodType,
    name: &'static str,
) -> Method<Bounded<Req>, Resp> {
    Method {
        ty,
        name,
        req_mar: Marshaller {
            ser: encode_request::<Req>,
            de: decode_request::<Req>,
        },
        resp_mar: Marshaller {
            ser: grpcio::pb_ser,
            de: grpcio::pb_de,
        },
    }
}

fn decode_request<T: Message>(mut reader: MessageReader) -> grpcio::Result<Bounded<T>> {
    let (size, limit) = (reader.len(), receive_limit());
    if size > limit {
        return Ok(Err(TooLarge { size, limit }));
    }
    Ok(Ok(decode(&mut reader, size)?))
}

/// Decodes a message of `size` bytes from `input`, telling the decoder its
/// size. Left without it (as grpcio's own decoder leaves it), protobuf's
/// stream reader believes a length field that runs past the message's end,
/// and reserves memory for it, up to its cap of 10 MB, before it finds the
/// bytes are not there: a 6-byte request would cost a 10 MB allocation.
/// Told the size, it refuses such a field at once.
pub fn decode<T: Message>(input: &mut impl BufRead, size: usize) -> protobuf::Result<T> {
    let mut stream = CodedInputStream::from_buf_read(input);
    stream.push_limit(size as u64)?;
    let mut message = T::new();
    message.merge_from(&mut stream)?;
    Ok(message)
}

// Only a client encodes requests; the server registers these methods, so
// this is here because a Marshaller needs both directions.
fn encode_request<T: Message>(request: &Bounded<T>, buf: &mut GrpcSlice) -> grpcio::Result<()> {
    match request {
        Ok(message) => grpcio::pb_ser(message, buf),
        Err(too_large) => Err(grpcio::Error::Codec(Box::new(*too_large))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_resource_exhausted_in_the_c_cores_words() {
        let status = RpcStatus::from(TooLarge {
            size: 65,
            limit: 64,
        });
        assert_eq!(status.code(), RpcStatusCode::RESOURCE_EXHAUSTED);
        assert_eq!(
            status.message(),
            "SERVER: Received message larger than max (65 vs. 64)"
        );
    }
}
