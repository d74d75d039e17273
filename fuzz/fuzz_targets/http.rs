//! Any request (method, target, headers, body) sent to the real router over a redb store:
//! nothing panics, no answer is a 5xx, and every error is an RFC 9457 problem of a
//! `urn:mutatis:problem:` type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mutatis_fuzz::http::http(data));
