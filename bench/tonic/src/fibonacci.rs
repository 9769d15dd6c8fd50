//! The fibonacci.Fibonacci service, answering exactly as the Rust server
//! does (src/fibonacci.rs, src/status.rs at the repository's root) and as
//! bench/go/server.go does: the values come from a table of F(0)..F(46),
//! the Fibonacci numbers that fit an int32; GetSequence(n) streams
//! F(1)..F(n); SumIndicies answers the sum of F(index) over its requests;
//! StreamSequence keeps a running index and answers each increment k with
//! the next k numbers. A negative input is INVALID_ARGUMENT, an answer past
//! int32 is OUT_OF_RANGE, with the Rust server's messages word for word.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

mod generated {
    // The service trait `Fibonacci` and its router `FibonacciServer`,
    // written by build.rs.
    include!(concat!(env!("OUT_DIR"), "/fibonacci.Fibonacci.rs"));
}

pub use generated::fibonacci_server::{Fibonacci, FibonacciServer};

/// proto/fibonacci.proto's one message, written by hand: prost's generator
/// needs protoc.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Number {
    #[prost(int32, tag = "1")]
    pub value: i32,
}

/// The largest index whose Fibonacci number fits in an int32.
const MAX_INDEX: i32 = 46;

/// F(0)..F(46).
static FIB: [i32; MAX_INDEX as usize + 1] = {
    let mut table = [0; MAX_INDEX as usize + 1];
    table[1] = 1;
    let mut index = 2;
    while index <= MAX_INDEX as usize {
        table[index] = table[index - 1] + table[index - 2];
        index += 1;
    }
    table
};

/// The answers of a streaming method; an error ends the call with that
/// status after the answers before it.
pub type Answers = Pin<Box<dyn Stream<Item = Result<Number, Status>> + Send>>;

fn at_index(index: i32) -> Result<i32, Status> {
    if index < 0 {
        return Err(Status::invalid_argument(format!(
            "index {index} is negative; indices start at 0"
        )));
    }
    if index > MAX_INDEX {
        return Err(Status::out_of_range(format!(
            "index {index} is past {MAX_INDEX}, the largest index whose Fibonacci number fits in an int32"
        )));
    }
    Ok(FIB[index as usize])
}

/// The running index after `increment` more numbers from `index`.
fn advance(index: i32, increment: i32) -> Result<i32, Status> {
    if increment < 0 {
        return Err(Status::invalid_argument(format!(
            "increment {increment} is negative; an increment is 0 or more"
        )));
    }
    let end = i64::from(index) + i64::from(increment);
    if end > i64::from(MAX_INDEX) {
        return Err(Status::out_of_range(format!(
            "increment {increment} would carry the running index from {index} to {end}, past {MAX_INDEX}, \
             the largest index whose Fibonacci number fits in an int32"
        )));
    }
    Ok(end as i32)
}

/// The service; it keeps no state between calls.
pub struct FibonacciService;

#[tonic::async_trait]
impl Fibonacci for FibonacciService {
    async fn at_index(&self, request: Request<Number>) -> Result<Response<Number>, Status> {
        let value = at_index(request.into_inner().value)?;
        Ok(Response::new(Number { value }))
    }

    type GetSequenceStream = Answers;

    async fn get_sequence(&self, request: Request<Number>) -> Result<Response<Answers>, Status> {
        let count = request.into_inner().value;
        if count < 0 {
            return Err(Status::invalid_argument(format!(
                "count {count} is negative; a sequence has 0 to {MAX_INDEX} numbers"
            )));
        }
        if count > MAX_INDEX {
            return Err(Status::out_of_range(format!(
                "count {count} is past {MAX_INDEX}, the longest sequence whose Fibonacci numbers fit in an int32"
            )));
        }
        let numbers = FIB[1..=count as usize]
            .iter()
            .map(|&value| Ok(Number { value }));
        Ok(Response::new(Box::pin(tokio_stream::iter(numbers))))
    }

    async fn sum_indicies(
        &self,
        request: Request<Streaming<Number>>,
    ) -> Result<Response<Number>, Status> {
        let mut requests = request.into_inner();
        let mut total: i32 = 0;
        while let Some(request) = requests.message().await? {
            let value = at_index(request.value)?;
            // Both are at least 0, so the only way out of an int32 is up.
            total = total.checked_add(value).ok_or_else(|| {
                Status::out_of_range(format!(
                    "adding F({}) = {value} to the sum {total} gives {}, past {}, the largest int32",
                    request.value,
                    i64::from(total) + i64::from(value),
                    i32::MAX
                ))
            })?;
        }
        Ok(Response::new(Number { value: total }))
    }

    type StreamSequenceStream = Answers;

    async fn stream_sequence(
        &self,
        request: Request<Streaming<Number>>,
    ) -> Result<Response<Answers>, Status> {
        let mut requests = request.into_inner();
        let answers = async_stream::try_stream! {
            let mut index = 0; // the index of the last number sent
            while let Some(request) = requests.message().await? {
                let end = advance(index, request.value)?;
                for &value in &FIB[index as usize + 1..=end as usize] {
                    yield Number { value };
                }
                index = end;
            }
        };
        Ok(Response::new(Box::pin(answers) as Answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_fibonacci_numbers_that_fit_an_int32() {
        assert_eq!(&FIB[..8], &[0, 1, 1, 2, 3, 5, 8, 13]);
        assert_eq!(FIB[46], 1_836_311_903);
        assert!(i64::from(FIB[45]) + i64::from(FIB[46]) > i64::from(i32::MAX));
    }

    #[test]
    fn the_errors_are_the_go_peers_word_for_word() {
        let status = at_index(-1).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "index -1 is negative; indices start at 0");
        let status = at_index(47).unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(
            status.message(),
            "index 47 is past 46, the largest index whose Fibonacci number fits in an int32"
        );
        let status = advance(40, 7).unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(
            status.message(),
            "increment 7 would carry the running index from 40 to 47, past 46, \
             the largest index whose Fibonacci number fits in an int32"
        );
        assert_eq!(
            advance(0, -2).unwrap_err().message(),
            "increment -2 is negative; an increment is 0 or more"
        );
    }
}
