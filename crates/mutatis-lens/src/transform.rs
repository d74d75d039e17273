//! Named transforms: conversions an embedding Rust program registers in code, for what a table
//! or an expression cannot say. Lens files refer to them by name (`transform: {name, using}`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// A value conversion written in Rust. Both directions are required: a lens is bidirectional.
///
/// `args` is the op's `args` value, so one transform can serve many fields.
pub trait Transform: Send + Sync {
    /// Old → new.
    fn forward(&self, value: &Value, args: &Value) -> Result<Value, String>;
    /// New → old.
    fn backward(&self, value: &Value, args: &Value) -> Result<Value, String>;
}

struct FnTransform<F, B> {
    forward: F,
    backward: B,
}

impl<F, B> Transform for FnTransform<F, B>
where
    F: Fn(&Value, &Value) -> Result<Value, String> + Send + Sync,
    B: Fn(&Value, &Value) -> Result<Value, String> + Send + Sync,
{
    fn forward(&self, value: &Value, args: &Value) -> Result<Value, String> {
        (self.forward)(value, args)
    }
    fn backward(&self, value: &Value, args: &Value) -> Result<Value, String> {
        (self.backward)(value, args)
    }
}

/// The transforms a program makes available to its lenses.
///
/// ```
/// use mutatis_lens::Transforms;
/// use serde_json::{json, Value};
///
/// let mut transforms = Transforms::new();
/// transforms.register_fn(
///     "cents",
///     |v: &Value, _: &Value| v.as_f64().map(|d| json!((d * 100.0).round() as i64)).ok_or("not a number".into()),
///     |v: &Value, _: &Value| v.as_i64().map(|c| json!(c as f64 / 100.0)).ok_or("not an integer".into()),
/// );
/// assert!(transforms.get("cents").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Transforms {
    by_name: BTreeMap<String, Arc<dyn Transform>>,
}

impl fmt::Debug for Transforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Transforms {
    /// No transforms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a transform under `name`, replacing any earlier one.
    pub fn register(&mut self, name: impl Into<String>, t: impl Transform + 'static) -> &mut Self {
        self.by_name.insert(name.into(), Arc::new(t));
        self
    }

    /// Register a transform from two closures.
    pub fn register_fn<F, B>(
        &mut self,
        name: impl Into<String>,
        forward: F,
        backward: B,
    ) -> &mut Self
    where
        F: Fn(&Value, &Value) -> Result<Value, String> + Send + Sync + 'static,
        B: Fn(&Value, &Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.register(name, FnTransform { forward, backward })
    }

    /// The transform registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Transform>> {
        self.by_name.get(name).cloned()
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
