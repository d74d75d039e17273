//! JSON Schema dialects. The same keyword means different things in different drafts
//! (`exclusiveMinimum` is a flag in draft 4 and a number later; `items` is a tuple in draft 7
//! and a schema in 2020-12; `$ref` hides its siblings up to draft 7), and a keyword from another
//! draft is not a keyword at all: a validator ignores it. So each schema is read in its own
//! dialect, from its `$schema`, defaulting to 2020-12 like the rest of mutatis.

/// A JSON Schema draft, in release order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dialect {
    Draft4,
    Draft6,
    Draft7,
    Draft2019,
    Draft2020,
}

impl Dialect {
    /// The dialect a `$schema` URI names (with or without the trailing `#`, over http or https).
    pub(crate) fn from_uri(uri: &str) -> Option<Dialect> {
        let trimmed = uri.trim_end_matches('#');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))?;
        match rest {
            "json-schema.org/draft-04/schema" => Some(Dialect::Draft4),
            "json-schema.org/draft-06/schema" => Some(Dialect::Draft6),
            "json-schema.org/draft-07/schema" => Some(Dialect::Draft7),
            "json-schema.org/draft/2019-09/schema" => Some(Dialect::Draft2019),
            "json-schema.org/draft/2020-12/schema" | "json-schema.org/schema" => {
                Some(Dialect::Draft2020)
            }
            _ => None,
        }
    }

    /// Whether `format`, `contentEncoding` and `contentMediaType` assert by default in this
    /// draft (they do up to draft 7 and are annotations from 2019-09 on, as in the `jsonschema`
    /// crate). The checker treats them as possible assertions either way, but a format that
    /// asserts and one that only annotates are different constraints.
    pub(crate) fn asserts_format(self) -> bool {
        self <= Dialect::Draft7
    }

    /// Whether `integer` means "written without a fraction" (draft 4: `1.0` is not an integer)
    /// rather than "has no fractional part".
    pub(crate) fn integer_by_spelling(self) -> bool {
        self == Dialect::Draft4
    }

    /// Whether a `$ref` hides the other keywords of its schema object (up to draft 7).
    pub(crate) fn ref_hides_siblings(self) -> bool {
        self <= Dialect::Draft7
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_dialects() {
        assert_eq!(
            Dialect::from_uri("http://json-schema.org/draft-07/schema#"),
            Some(Dialect::Draft7)
        );
        assert_eq!(
            Dialect::from_uri("https://json-schema.org/draft/2020-12/schema"),
            Some(Dialect::Draft2020)
        );
        assert_eq!(
            Dialect::from_uri("http://json-schema.org/draft-04/schema"),
            Some(Dialect::Draft4)
        );
        assert_eq!(Dialect::from_uri("http://example.com/my-meta"), None);
    }
}
