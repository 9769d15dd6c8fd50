//! Fuzz targets over what an untrusted client controls: the decoding of
//! every request message the server accepts (Fibonacci, health,
//! reflection) and the reflection answer built from it, and the arithmetic
//! behind every method, for any int32 input.
//!
//! Property-based (proptest) rather than coverage-guided (cargo-fuzz):
//! cargo-fuzz needs a nightly toolchain, which a fresh machine with the
//! stable one does not have. `make test` runs a short pass; `make fuzz`
//! runs many more cases (`FUZZ_CASES`). Any panic, abort, failed property
//! or decoding that holds more heap than a bound on its input's size is a
//! failing test. The corpus is the inputs below: shapes a
//! decoder can choke on (deep nesting, open groups, huge lengths), and the
//! requests real tools send.

use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use protobuf::Message;

use crate::fibonacci::{self, IndexSum, RunningSequence};
use crate::health::HealthCheckRequest;
use crate::inbound;
use crate::proto::Number;
use crate::reflection::{self, Catalog};

/// Cases per target: `FUZZ_CASES`, or a pass short enough for `make test`.
fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(1_000_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The server's reflection catalog, built once for every case. Test code
/// only (this module is compiled only for tests): the `expect` can fail only
/// the test, and only if build.rs wrote a descriptor that does not parse,
/// which the server's own start-up would refuse too.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::new(
            &["fibonacci.Fibonacci", reflection::V1_SERVICE],
            &[
                crate::proto::FILE_DESCRIPTOR,
                crate::health::HEALTH_FILE_DESCRIPTOR,
                reflection::V1_FILE_DESCRIPTOR,
            ],
        )
        // Test code only (this module is cfg(test)); the descriptors are the
        // build's own, which the server also parses at every start-up.
        .expect("the compiled descriptors parse")
    })
}

/// A varint, for building length-delimited fields by hand.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The corpus: inputs that have broken protobuf decoders, and what tools
/// really send. Built once: the deepest input takes a while.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(build_corpus)
}

fn build_corpus() -> Vec<Vec<u8>> {
    let mut inputs = vec![
        Vec::new(),
        vec![0x08, 0x2e],                         // Number { value: 46 }
        vec![0x08, 0xff, 0xff, 0xff, 0xff, 0x0f], // value: -1 as a varint
        vec![
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ], // 11-byte varint
        vec![0x0b; 60_000],                       // open groups, nested
        vec![0x0c; 1_000],                        // group ends with no start
        [vec![0x12], varint(u64::MAX)].concat(),  // a length past the input
        [vec![0x12], varint(1 << 31)].concat(),
        b"\x22\x13fibonacci.Fibonacci".to_vec(), // file_containing_symbol
        b"\x3a\x00".to_vec(),                    // list_services ""
        b"\x32\x10fibonacci.Number".to_vec(),    // all_extension_numbers_of_type
        b"\x2a\x14\x0a\x10fibonacci.Number\x10\x01".to_vec(), // file_containing_extension
    ];
    // Length-delimited fields nested 10,000 deep (field 5 of a reflection
    // request is a message, ExtensionRequest).
    let mut nested = Vec::new();
    for _ in 0..10_000 {
        nested = [vec![0x2a], varint(nested.len() as u64), nested].concat();
    }
    inputs.push(nested);
    inputs
}

/// Decodes `bytes` as each request type the server accepts, as the server
/// decodes them (`crate::inbound`), and answers it
/// when it is a reflection request: nothing may panic, and nothing may
/// allocate past [`allocation_bound`] for the input's size.
fn decode_everything(catalog: &Catalog, bytes: &[u8]) {
    let peak = heap::peak_during(|| {
        let _: protobuf::Result<Number> = inbound::decode(&mut &bytes[..], bytes.len());
        let _: protobuf::Result<HealthCheckRequest> = inbound::decode(&mut &bytes[..], bytes.len());
        let _ = reflection::answer_encoded(catalog, bytes);
    });
    assert!(
        peak <= allocation_bound(bytes.len()),
        "decoding {} bytes took {peak} bytes of heap at the peak",
        bytes.len()
    );
}

/// What decoding an input of `len` bytes may hold on the heap at once: a
/// few copies of the input (unknown fields are kept, a reflection answer
/// echoes its request) and the largest reflection answer (a file
/// descriptor and the ones it depends on). A decoder that trusts a
/// length the input claims, or a recursion that allocates per level,
/// goes far past it.
fn allocation_bound(len: usize) -> usize {
    8 * len + (256 << 10)
}

/// Counts the heap each test thread holds, to find the peak while a closure
/// runs: the global allocator of this test binary only.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        // Const-initialised and without a destructor, so reading it from
        // inside the allocator never allocates.
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grew(bytes: usize) {
        let live = LIVE.get() + bytes;
        LIVE.set(live);
        if live > PEAK.get() {
            PEAK.set(live);
        }
    }

    fn shrank(bytes: usize) {
        // A block freed on another thread than its own can take a thread's
        // count below zero; it stays at zero.
        LIVE.set(LIVE.get().saturating_sub(bytes));
    }

    // SAFETY: every call goes to the system allocator unchanged; the
    // counting touches only this thread's two cells.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            grew(layout.size());
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            shrank(layout.size());
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            grew(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            shrank(layout.size());
            grew(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// The most heap this thread held above its start while `work` ran.
    pub fn peak_during(work: impl FnOnce()) -> usize {
        let start = LIVE.get();
        PEAK.set(start);
        work();
        PEAK.get() - start
    }
}

#[test]
fn the_corpus_decodes_or_is_refused() {
    for input in corpus() {
        decode_everything(catalog(), input);
    }
    // The requests tools send are answered: a list_services request decodes
    // and its answer names the service.
    let list = reflection::answer_encoded(catalog(), b"\x3a\x00").unwrap_or_default();
    assert!(list.windows(19).any(|w| w == b"fibonacci.Fibonacci"));
}

#[test]
fn groups_nested_past_the_recursion_limit_are_refused() {
    // protobuf 3 skips an unknown group by recursion, one level per group
    // nested in it. Before 3.7.2 that recursion had no bound
    // (RUSTSEC-2024-0437); now a deep nest is a decoding error, not a
    // stack overflow.
    let nested = [vec![0x0b; 60_000], vec![0x0c; 60_000]].concat();
    assert!(Number::parse_from_bytes(&nested).is_err());
    assert!(HealthCheckRequest::parse_from_bytes(&nested).is_err());
    assert!(reflection::answer_encoded(catalog(), &nested).is_none());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in vec(any::<u8>(), 0..2048)) {
        decode_everything(catalog(), &bytes);
    }

    #[test]
    fn any_corpus_input_with_bytes_changed_decodes_or_is_refused(
        pick in any::<prop::sample::Index>(),
        changes in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut input = pick.get(corpus()).clone();
        if !input.is_empty() {
            for (at, byte) in changes {
                let at = at.index(input.len());
                input[at] = byte;
            }
        }
        decode_everything(catalog(), &input);
    }

    #[test]
    fn any_reflection_name_gets_an_answer(name in ".{0,64}", query in 0u8..5) {
        // host, file_by_filename, file_containing_symbol,
        // all_extension_numbers_of_type, list_services: fields 1, 3, 4, 6, 7.
        let mut request = vec![[0x0a, 0x1a, 0x22, 0x32, 0x3a][usize::from(query)]];
        let name = name.as_bytes();
        request.extend(varint(name.len() as u64));
        request.extend(name);
        prop_assert!(reflection::answer_encoded(catalog(), &request).is_some());
    }

    #[test]
    fn any_int32_input_is_answered_or_refused(
        index in any::<i32>(),
        indices in vec(any::<i32>(), 0..64),
        increments in vec(any::<i32>(), 0..64),
    ) {
        match fibonacci::at_index(index) {
            Ok(value) => prop_assert!((0..=46).contains(&index) && value >= 0),
            Err(_) => prop_assert!(!(0..=46).contains(&index)),
        }
        match fibonacci::sequence(index) {
            Ok(values) => prop_assert_eq!(i64::try_from(values.len()), Ok(i64::from(index))),
            Err(_) => prop_assert!(!(0..=46).contains(&index)),
        }
        let mut sum = IndexSum::default();
        let mut wide: i64 = 0;
        for &index in &indices {
            if sum.add(index).is_err() {
                break;
            }
            let Ok(value) = fibonacci::at_index(index) else {
                return Err(TestCaseError::fail(format!("the sum took {index}, AtIndex refuses it")));
            };
            wide += i64::from(value);
            prop_assert_eq!(i64::from(sum.total()), wide);
        }
        let mut running = RunningSequence::default();
        for &increment in &increments {
            let before = running.index();
            match running.advance(increment) {
                Ok(values) => {
                    prop_assert_eq!(i64::try_from(values.len()), Ok(i64::from(increment)));
                    prop_assert_eq!(running.index(), before + increment);
                }
                Err(_) => prop_assert_eq!(running.index(), before),
            }
        }
    }
}
