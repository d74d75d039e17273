//! `document NUL patch`: apply the JSON Patch (RFC 6902) and translate it through a lens;
//! nothing panics, and applying is deterministic and all-or-nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mutatis_fuzz::patch(data));
