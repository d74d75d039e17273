//! `lens NUL document`: compile the lens both ways and translate the document by every path;
//! nothing panics, and the raw-bytes and parsed-value paths agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mutatis_fuzz::translate(data));
