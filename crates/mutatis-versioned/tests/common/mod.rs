//! Shared by the test files: loading the example schema sets and lens parameters.
#![allow(dead_code)]

use mutatis_versioned::{Params, SchemaSet};
use serde_json::json;

pub fn example(name: &str) -> SchemaSet {
    let dir = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    SchemaSet::load(&dir).unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

pub fn params(reference_year: i64) -> Params {
    let mut p = Params::new();
    p.insert("referenceYear".into(), json!(reference_year));
    p
}
