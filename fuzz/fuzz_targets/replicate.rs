//! An `ApplyRequest` (JSON) applied to a replication target's store: nothing panics, a batch
//! is refused as the source's fault and writes nothing, an accepted one answers once per
//! revision and is idempotent, and what it wrote is served back as a source would.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| mutatis_fuzz::replicate::replicate(data));

// Mostly JSON-aware mutation (byte-level mutation of JSON seldom yields JSON), and now and
// then libFuzzer's own, which also reaches the wire format's parse errors.
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    if seed & 3 != 0 {
        if let Some(len) = mutatis_fuzz::replicate::mutate(data, size, max_size, seed) {
            return len;
        }
    }
    fuzzer_mutate(data, size, max_size)
});
