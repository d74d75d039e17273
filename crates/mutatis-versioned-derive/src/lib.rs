//! `#[derive(Versioned)]`: binds a serde struct or enum to `Type@version` of a schema set.
//!
//! ```text
//! #[derive(Serialize, Deserialize, Versioned)]
//! #[versioned(type = "Student", version = 5)]
//! struct Student5 { /* … */ }
//! ```
//!
//! expands to `impl mutatis_versioned::Versioned for Student5 { const TYPE: &str = "Student";
//! const VERSION: u32 = 5; }`. Use it through `mutatis_versioned::Versioned`, which re-exports
//! it. A missing, repeated or malformed attribute is a compile error at the offending tokens.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{parse_macro_input, DeriveInput, LitInt, LitStr};

/// Derives `mutatis_versioned::Versioned` from `#[versioned(type = "Name", version = N)]`.
#[proc_macro_derive(Versioned, attributes(versioned))]
pub fn derive_versioned(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let mut type_name: Option<LitStr> = None;
    let mut version: Option<LitInt> = None;
    let mut seen = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("versioned"))
    {
        if seen.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "`#[versioned(...)]` is given twice: give `type` and `version` in one attribute",
            ));
        }
        seen = Some(attr);
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("type") {
                if type_name.is_some() {
                    return Err(meta.error("`type` is given twice"));
                }
                let lit: LitStr = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(e.span(), "`type` takes a string: `type = \"Student\"`")
                })?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new_spanned(&lit, "`type` must not be empty"));
                }
                type_name = Some(lit);
                Ok(())
            } else if meta.path.is_ident("version") {
                if version.is_some() {
                    return Err(meta.error("`version` is given twice"));
                }
                let lit: LitInt = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(e.span(), "`version` takes an integer: `version = 5`")
                })?;
                lit.base10_parse::<u32>().map_err(|_| {
                    syn::Error::new_spanned(
                        &lit,
                        "`version` must be a whole number that fits a u32",
                    )
                })?;
                version = Some(lit);
                Ok(())
            } else {
                Err(meta.error("unknown key: `#[versioned(...)]` takes `type` and `version`"))
            }
        })?;
    }
    let Some(attr) = seen else {
        return Err(syn::Error::new(
            Span::call_site(),
            "`#[derive(Versioned)]` needs `#[versioned(type = \"Name\", version = N)]`",
        ));
    };
    let type_name = type_name.ok_or_else(|| {
        syn::Error::new_spanned(attr, "`#[versioned(...)]` lacks `type = \"Name\"`")
    })?;
    let version = version
        .ok_or_else(|| syn::Error::new_spanned(attr, "`#[versioned(...)]` lacks `version = N`"))?;
    let version: u32 = version.base10_parse()?;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::mutatis_versioned::Versioned for #ident #ty_generics #where_clause {
            const TYPE: &'static str = #type_name;
            const VERSION: u32 = #version;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::expand;
    use syn::{parse_quote, DeriveInput};

    fn error(input: DeriveInput) -> String {
        expand(&input).unwrap_err().to_string()
    }

    #[test]
    fn expands_to_the_two_consts() {
        let input: DeriveInput = parse_quote! {
            #[versioned(type = "Student", version = 5)]
            struct Student5<T> { x: T }
        };
        let out = expand(&input).unwrap().to_string();
        assert!(
            out.contains("impl < T > :: mutatis_versioned :: Versioned for Student5 < T >"),
            "{out}"
        );
        assert!(
            out.contains("const TYPE : & 'static str = \"Student\""),
            "{out}"
        );
        assert!(out.contains("const VERSION : u32 = 5u32"), "{out}");
    }

    #[test]
    fn malformed_attributes_are_named() {
        assert!(error(parse_quote! { struct S; }).contains("needs `#[versioned("));
        assert!(
            error(parse_quote! { #[versioned(type = "S")] struct S; }).contains("lacks `version")
        );
        assert!(error(parse_quote! { #[versioned(version = 1)] struct S; }).contains("lacks `type"));
        assert!(
            error(parse_quote! { #[versioned(type = S, version = 1)] struct S; })
                .contains("`type` takes a string")
        );
        assert!(
            error(parse_quote! { #[versioned(type = "S", version = "1")] struct S; })
                .contains("`version` takes an integer")
        );
        assert!(
            error(parse_quote! { #[versioned(type = "S", version = 4294967296)] struct S; })
                .contains("fits a u32")
        );
        assert!(
            error(parse_quote! { #[versioned(type = "", version = 1)] struct S; })
                .contains("must not be empty")
        );
        assert!(
            error(parse_quote! { #[versioned(type = "S", version = 1, x = 2)] struct S; })
                .contains("unknown key")
        );
        assert!(error(
            parse_quote! { #[versioned(type = "S", type = "T", version = 1)] struct S; }
        )
        .contains("`type` is given twice"));
        assert!(error(parse_quote! {
            #[versioned(type = "S", version = 1)] #[versioned(type = "S", version = 1)] struct S;
        })
        .contains("given twice"));
    }
}
