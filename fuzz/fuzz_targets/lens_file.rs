//! Arbitrary bytes as a lens file: parsing, canonical re-reading and compiling never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mutatis_fuzz::lens_file(data));
