//! The Fibonacci arithmetic of the service and its int32 limits.
//!
//! The wire type is `int32`, and F(46) = 1,836,311,903 is the largest
//! Fibonacci number that fits one, so every value the service can send is
//! one of the 47 numbers F(0)..=F(46), computed once at compile time. Each
//! operation checks its input against that limit and says exactly what was
//! wrong; nothing here panics, whatever `i32` it is given. This module knows
//! nothing about gRPC: `crate::status` turns its errors into statuses.
//!
//! The guide's four methods, in the guide's numbering (F(1) = F(2) = 1):
//!
//! ```
//! use fibonacci_grpc::fibonacci::{self, IndexSum, RunningSequence};
//!
//! assert_eq!(fibonacci::at_index(7), Ok(13)); // AtIndex(7)
//! assert_eq!(fibonacci::sequence(7), Ok(&[1, 1, 2, 3, 5, 8, 13][..])); // GetSequence(7)
//!
//! let mut sum = IndexSum::default(); // SumIndicies(7, 5)
//! sum.add(7)?;
//! sum.add(5)?;
//! assert_eq!(sum.total(), 18);
//!
//! let mut running = RunningSequence::default(); // StreamSequence(4, 2, 1)
//! assert_eq!(running.advance(4)?, [1, 1, 2, 3]);
//! assert_eq!(running.advance(2)?, [5, 8]);
//! assert_eq!(running.advance(1)?, [13]);
//! # Ok::<(), fibonacci_grpc::fibonacci::FibonacciError>(())
//! ```

use std::fmt;

/// The largest index whose Fibonacci number fits in an `i32`.
///
/// ```
/// use fibonacci_grpc::fibonacci::{at_index, MAX_INDEX};
///
/// assert_eq!(at_index(MAX_INDEX), Ok(1_836_311_903));
/// assert!(at_index(MAX_INDEX + 1).is_err()); // F(47) = 2,971,215,073 > i32::MAX
/// ```
pub const MAX_INDEX: i32 = 46;

const TABLE_LEN: usize = MAX_INDEX as usize + 1;

// guide:start table
/// F(0)..=F(46). An overflow here would be a compile error, so the table
/// proves that F(46) fits in an `i32`.
static FIBONACCI: [i32; TABLE_LEN] = fibonacci_table();

const fn fibonacci_table() -> [i32; TABLE_LEN] {
    let mut table = [0; TABLE_LEN];
    table[1] = 1;
    let mut index = 2;
    while index < TABLE_LEN {
        table[index] = table[index - 1] + table[index - 2];
        index += 1;
    }
    table
}
// guide:end table

/// Every Fibonacci number an `i32` holds, F(0)..=F([`MAX_INDEX`]): for
/// callers whose indices are known to be in range (the load generator, the
/// fault tests), with no error to handle.
///
/// ```
/// use fibonacci_grpc::fibonacci::{all_in_int32, MAX_INDEX};
///
/// assert_eq!(all_in_int32()[7], 13);
/// assert_eq!(all_in_int32().len(), MAX_INDEX as usize + 1);
/// ```
pub fn all_in_int32() -> &'static [i32; TABLE_LEN] {
    &FIBONACCI
}

/// Why a request cannot be answered within int32. Its `Display` is the
/// message the client receives with the status.
///
/// ```
/// use fibonacci_grpc::fibonacci::{at_index, FibonacciError};
///
/// let error = at_index(47).unwrap_err();
/// assert_eq!(error, FibonacciError::IndexPastMax(47));
/// assert_eq!(
///     error.to_string(),
///     "index 47 is past 46, the largest index whose Fibonacci number fits in an int32"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibonacciError {
    /// An index below 0 (AtIndex, SumIndicies).
    NegativeIndex(i32),
    /// An index past [`MAX_INDEX`] (AtIndex, SumIndicies).
    IndexPastMax(i32),
    /// A sequence length below 0 (GetSequence).
    NegativeCount(i32),
    /// A sequence length past [`MAX_INDEX`] (GetSequence).
    CountPastMax(i32),
    /// A StreamSequence increment below 0.
    NegativeIncrement(i32),
    /// A StreamSequence increment that would carry the running index past
    /// [`MAX_INDEX`].
    IncrementPastMax {
        /// The increment asked for.
        increment: i32,
        /// The index of the last number sent before it.
        running_index: i32,
    },
    /// A SumIndicies total that would exceed `i32::MAX` once F(`index`) =
    /// `value` is added to it.
    SumOverflow {
        /// The index whose number did not fit.
        index: i32,
        /// F(`index`).
        value: i32,
        /// The sum before it, which stays the total.
        total: i32,
    },
}

impl FibonacciError {
    /// True when the input itself is malformed (negative), false when it is
    /// well-formed but its answer does not fit in an int32: the line
    /// between `INVALID_ARGUMENT` and `OUT_OF_RANGE`.
    ///
    /// ```
    /// use fibonacci_grpc::fibonacci::at_index;
    ///
    /// assert!(at_index(-1).unwrap_err().is_invalid_argument());
    /// assert!(!at_index(47).unwrap_err().is_invalid_argument());
    /// ```
    pub fn is_invalid_argument(&self) -> bool {
        matches!(
            self,
            Self::NegativeIndex(_) | Self::NegativeCount(_) | Self::NegativeIncrement(_)
        )
    }
}

impl fmt::Display for FibonacciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NegativeIndex(index) => {
                write!(f, "index {index} is negative; indices start at 0")
            }
            Self::IndexPastMax(index) => write!(
                f,
                "index {index} is past {MAX_INDEX}, the largest index whose \
                 Fibonacci number fits in an int32"
            ),
            Self::NegativeCount(count) => {
                write!(f, "count {count} is negative; a sequence has 0 to {MAX_INDEX} numbers")
            }
            Self::CountPastMax(count) => write!(
                f,
                "count {count} is past {MAX_INDEX}, the longest sequence whose \
                 Fibonacci numbers fit in an int32"
            ),
            Self::NegativeIncrement(increment) => {
                write!(f, "increment {increment} is negative; an increment is 0 or more")
            }
            Self::IncrementPastMax { increment, running_index } => write!(
                f,
                "increment {increment} would carry the running index from {running_index} \
                 to {}, past {MAX_INDEX}, the largest index whose Fibonacci number fits in an int32",
                i64::from(running_index) + i64::from(increment)
            ),
            Self::SumOverflow { index, value, total } => write!(
                f,
                "adding F({index}) = {value} to the sum {total} gives {}, past {}, the largest int32",
                i64::from(total) + i64::from(value),
                i32::MAX
            ),
        }
    }
}

impl std::error::Error for FibonacciError {}

/// F(`index`), for 0 <= `index` <= [`MAX_INDEX`].
///
/// ```
/// use fibonacci_grpc::fibonacci::{at_index, FibonacciError};
///
/// assert_eq!(at_index(0), Ok(0));
/// assert_eq!(at_index(7), Ok(13));
/// assert_eq!(at_index(-1), Err(FibonacciError::NegativeIndex(-1)));
/// assert_eq!(at_index(47), Err(FibonacciError::IndexPastMax(47)));
/// ```
// guide:start at_index
pub fn at_index(index: i32) -> Result<i32, FibonacciError> {
    match usize::try_from(index) {
        Err(_) => Err(FibonacciError::NegativeIndex(index)),
        Ok(i) => FIBONACCI
            .get(i)
            .copied()
            .ok_or(FibonacciError::IndexPastMax(index)),
    }
}
// guide:end at_index

/// F(1)..=F(`count`), the first `count` numbers of the sequence as the guide
/// numbers them (it starts at 1, not 0).
///
/// A count past [`MAX_INDEX`] is refused whole, so the server never sends
/// part of a sequence and then an error.
///
/// ```
/// use fibonacci_grpc::fibonacci::{sequence, FibonacciError};
///
/// assert_eq!(sequence(0), Ok(&[][..]));
/// assert_eq!(sequence(7), Ok(&[1, 1, 2, 3, 5, 8, 13][..]));
/// assert_eq!(sequence(46).map(<[i32]>::len), Ok(46));
/// assert_eq!(sequence(47), Err(FibonacciError::CountPastMax(47)));
/// ```
pub fn sequence(count: i32) -> Result<&'static [i32], FibonacciError> {
    match usize::try_from(count) {
        Err(_) => Err(FibonacciError::NegativeCount(count)),
        Ok(n) => FIBONACCI
            .get(1..=n)
            .ok_or(FibonacciError::CountPastMax(count)),
    }
}

/// A running total of F(index) over a stream of indices (SumIndicies).
///
/// ```
/// use fibonacci_grpc::fibonacci::{FibonacciError, IndexSum};
///
/// let mut sum = IndexSum::default();
/// sum.add(46)?;
/// assert_eq!(sum.total(), 1_836_311_903);
/// // A second F(46) would pass i32::MAX: refused, and the total stays.
/// assert_eq!(
///     sum.add(46),
///     Err(FibonacciError::SumOverflow { index: 46, value: 1_836_311_903, total: 1_836_311_903 })
/// );
/// assert_eq!(sum.total(), 1_836_311_903);
/// # Ok::<(), FibonacciError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct IndexSum {
    total: i32,
}

impl IndexSum {
    /// Adds F(`index`). On error the total is left as it was.
    pub fn add(&mut self, index: i32) -> Result<(), FibonacciError> {
        let value = at_index(index)?;
        self.total = self
            .total
            .checked_add(value)
            .ok_or(FibonacciError::SumOverflow {
                index,
                value,
                total: self.total,
            })?;
        Ok(())
    }

    /// The sum so far: 0 before any index.
    pub fn total(&self) -> i32 {
        self.total
    }
}

/// The state of one StreamSequence call: the index of the last number sent.
///
/// ```
/// use fibonacci_grpc::fibonacci::{FibonacciError, RunningSequence};
///
/// let mut running = RunningSequence::default();
/// assert_eq!(running.advance(44)?.len(), 44);
/// // 44 + 3 would pass 46: nothing of the 3 is handed out.
/// assert_eq!(
///     running.advance(3),
///     Err(FibonacciError::IncrementPastMax { increment: 3, running_index: 44 })
/// );
/// assert_eq!(running.advance(2)?, [1_134_903_170, 1_836_311_903]);
/// assert_eq!(running.index(), 46);
/// # Ok::<(), FibonacciError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct RunningSequence {
    index: i32,
}

impl RunningSequence {
    /// The next `increment` numbers after the running index, advancing it.
    /// A request that would pass [`MAX_INDEX`] is refused whole, before any
    /// of its numbers are handed out, and leaves the index where it was.
    pub fn advance(&mut self, increment: i32) -> Result<&'static [i32], FibonacciError> {
        let too_far = FibonacciError::IncrementPastMax {
            increment,
            running_index: self.index,
        };
        let Ok(count) = usize::try_from(increment) else {
            return Err(FibonacciError::NegativeIncrement(increment));
        };
        // `self.index` is always within 0..=MAX_INDEX, so this cannot wrap.
        let start = self.index as usize + 1;
        let values = FIBONACCI.get(start..start + count).ok_or(too_far)?;
        self.index += increment;
        Ok(values)
    }

    /// The index of the last number handed out: 0 before any.
    pub fn index(&self) -> i32 {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent oracle: the plain recurrence in u128, no table and no
    /// limits, so values past int32 are right too.
    fn oracle(index: u32) -> u128 {
        let (mut a, mut b) = (0u128, 1u128);
        for _ in 0..index {
            (a, b) = (b, a + b);
        }
        a
    }

    #[test]
    fn known_values() {
        assert_eq!(at_index(0), Ok(0));
        assert_eq!(at_index(1), Ok(1));
        assert_eq!(at_index(7), Ok(13));
        assert_eq!(at_index(46), Ok(1_836_311_903));
    }

    #[test]
    fn every_index_matches_the_oracle() {
        for index in 0..=MAX_INDEX {
            assert_eq!(
                at_index(index).map(i128::from),
                Ok(oracle(index as u32) as i128)
            );
        }
    }

    #[test]
    fn max_index_is_exactly_the_int32_limit() {
        assert!(oracle(46) <= i32::MAX as u128);
        assert!(oracle(47) > i32::MAX as u128);
    }

    #[test]
    fn indices_outside_the_table_are_refused() {
        for index in [47, 48, 1000, i32::MAX] {
            assert_eq!(at_index(index), Err(FibonacciError::IndexPastMax(index)));
        }
        for index in [-1, -46, i32::MIN] {
            assert_eq!(at_index(index), Err(FibonacciError::NegativeIndex(index)));
        }
    }

    #[test]
    fn sequence_starts_at_f1() {
        assert_eq!(sequence(0), Ok(&[][..]));
        assert_eq!(sequence(7), Ok(&[1, 1, 2, 3, 5, 8, 13][..]));
        let all = sequence(46).expect("46 is within the limit");
        assert_eq!(all.len(), 46);
        for (offset, value) in all.iter().enumerate() {
            assert_eq!(*value as u128, oracle(offset as u32 + 1));
        }
        assert_eq!(sequence(47), Err(FibonacciError::CountPastMax(47)));
        assert_eq!(
            sequence(i32::MAX),
            Err(FibonacciError::CountPastMax(i32::MAX))
        );
        assert_eq!(sequence(-1), Err(FibonacciError::NegativeCount(-1)));
        assert_eq!(
            sequence(i32::MIN),
            Err(FibonacciError::NegativeCount(i32::MIN))
        );
    }

    #[test]
    fn sum_of_the_guides_indices() {
        let mut sum = IndexSum::default();
        sum.add(7).unwrap();
        sum.add(5).unwrap();
        assert_eq!(sum.total(), 18);
    }

    #[test]
    fn sum_up_to_the_int32_limit_and_past_it() {
        let mut sum = IndexSum::default();
        sum.add(46).unwrap();
        sum.add(42).unwrap();
        let fits = oracle(46) + oracle(42);
        assert!(fits <= i32::MAX as u128 && fits + oracle(42) > i32::MAX as u128);
        assert_eq!(sum.total() as u128, fits);
        let refused = sum.add(42);
        assert_eq!(
            refused,
            Err(FibonacciError::SumOverflow {
                index: 42,
                value: 267_914_296,
                total: 2_104_226_199
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "adding F(42) = 267914296 to the sum 2104226199 gives 2372140495, \
             past 2147483647, the largest int32"
        );
        assert_eq!(
            sum.total() as u128,
            fits,
            "a refused index leaves the total unchanged"
        );
    }

    #[test]
    fn sum_refuses_bad_indices_without_changing_the_total() {
        let mut sum = IndexSum::default();
        sum.add(3).unwrap();
        assert_eq!(sum.add(-1), Err(FibonacciError::NegativeIndex(-1)));
        assert_eq!(sum.add(47), Err(FibonacciError::IndexPastMax(47)));
        assert_eq!(sum.total(), 2);
    }

    #[test]
    fn running_sequence_follows_the_guides_transcript() {
        let mut running = RunningSequence::default();
        assert_eq!(running.advance(4), Ok(&[1, 1, 2, 3][..]));
        assert_eq!(running.advance(2), Ok(&[5, 8][..]));
        assert_eq!(running.advance(1), Ok(&[13][..]));
        assert_eq!(running.advance(0), Ok(&[][..]));
        assert_eq!(running.index(), 7);
    }

    #[test]
    fn running_sequence_stops_at_the_limit_and_refuses_whole_requests() {
        let mut running = RunningSequence::default();
        assert_eq!(running.advance(44).map(<[i32]>::len), Ok(44));
        let refused = running.advance(3);
        assert_eq!(
            refused,
            Err(FibonacciError::IncrementPastMax {
                increment: 3,
                running_index: 44
            })
        );
        assert_eq!(
            running.index(),
            44,
            "a refused request sends nothing and keeps the index"
        );
        assert_eq!(running.advance(2), Ok(&[1_134_903_170, 1_836_311_903][..]));
        assert_eq!(
            running.advance(1),
            Err(FibonacciError::IncrementPastMax {
                increment: 1,
                running_index: 46
            })
        );
        assert_eq!(running.advance(0), Ok(&[][..]));
    }

    #[test]
    fn running_sequence_survives_extreme_increments() {
        let mut running = RunningSequence::default();
        running.advance(10).unwrap();
        assert_eq!(
            running.advance(i32::MAX),
            Err(FibonacciError::IncrementPastMax {
                increment: i32::MAX,
                running_index: 10
            })
        );
        assert_eq!(
            running.advance(i32::MIN),
            Err(FibonacciError::NegativeIncrement(i32::MIN))
        );
        assert_eq!(running.index(), 10);
    }

    #[test]
    fn messages_name_the_value_and_the_limit() {
        assert_eq!(
            at_index(47).unwrap_err().to_string(),
            "index 47 is past 46, the largest index whose Fibonacci number fits in an int32"
        );
        assert_eq!(
            at_index(-1).unwrap_err().to_string(),
            "index -1 is negative; indices start at 0"
        );
        assert_eq!(
            sequence(47).unwrap_err().to_string(),
            "count 47 is past 46, the longest sequence whose Fibonacci numbers fit in an int32"
        );
        assert_eq!(
            sequence(-1).unwrap_err().to_string(),
            "count -1 is negative; a sequence has 0 to 46 numbers"
        );
        let mut running = RunningSequence::default();
        running.advance(40).unwrap();
        assert_eq!(
            running.advance(i32::MAX).unwrap_err().to_string(),
            "increment 2147483647 would carry the running index from 40 to 2147483687, \
             past 46, the largest index whose Fibonacci number fits in an int32"
        );
        assert_eq!(
            running.advance(-3).unwrap_err().to_string(),
            "increment -3 is negative; an increment is 0 or more"
        );
    }
}
