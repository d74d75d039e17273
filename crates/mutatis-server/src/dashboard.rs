//! The operator's dashboard at `/ui` (`mutatis serve --ui off` leaves it out): a page of
//! hand-written HTML, CSS and JavaScript modules built into the binary, so serving it needs no
//! folder, no CDN and no build step.
//!
//! The assets are public: a browser loads the page before it has a token. The page asks the
//! operator for an admin token and sends it in `Authorization` on every call it makes to the
//! node's own API (`/admin/releases`, `/admin/migrations`, `/changelog`, …), which checks it as
//! for any client; nothing here reads the store. Each answer carries a strict
//! `Content-Security-Policy` (scripts, styles and connections from this origin only, no inline
//! script or style, no framing), `nosniff`, and a strong `ETag` of the asset's bytes with
//! `Cache-Control: no-cache`: the names are not fingerprinted, so a browser revalidates
//! (a 304 when the binary did not change) and picks up a new version at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// The path the dashboard is served under (its first segment is in
/// [`crate::static_files::RESERVED_SEGMENTS`]).
pub const UI_PATH: &str = "/ui";

/// What the page may load and call: its own origin only. No `'unsafe-inline'`: every script
/// and style is a file below, and the page sets no `style` attribute (only CSSOM properties,
/// which CSP allows); its charts are SVG elements made by its scripts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of `crates/mutatis-server/ui/`, by the name it is served under.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../ui/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../ui/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/dom.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/charts.js"),
    },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/views.js"),
    },
    Asset {
        name: "openapi.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../ui/openapi.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../ui/favicon.svg"),
    },
];

/// The names of the embedded assets (for tests and the documentation).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// The strong ETag of each asset, in [`ASSETS`]' order: computed once, on first use.
fn etags() -> &'static [HeaderValue] {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                // Hex digits between quotes: always a valid header value.
                HeaderValue::from_str(&format!("\"{hex}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

/// `router` with the dashboard's routes (public), or as it is when `enabled` is false.
pub fn mount<S>(router: Router<S>, enabled: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if !enabled {
        return router;
    }
    router
        // `/ui` itself: the page's relative links (`app.js`) resolve only under `/ui/`.
        .route(UI_PATH, get(|| async { to_folder() }))
        .route(
            &format!("{UI_PATH}/"),
            get(|headers: HeaderMap| async move { asset("index.html", &headers) }),
        )
        .route(
            &format!("{UI_PATH}/{{file}}"),
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                asset(&file, &headers)
            }),
        )
}

fn to_folder() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(LOCATION, HeaderValue::from_static("/ui/"))],
    )
        .into_response()
}

/// The asset `name`, or 304 when `If-None-Match` names its tag, or a 404 problem.
fn asset(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Problem::new(
            404,
            "not-found",
            "Not found",
            format!("the dashboard has no file {name:?}"),
        )
        .into_response();
    };
    let a = &ASSETS[i];
    let tag = &etags()[i];
    let status = if if_none_match(headers, tag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut resp = if status == StatusCode::NOT_MODIFIED {
        status.into_response()
    } else {
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(a.content_type))],
            a.bytes,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(ETAG, tag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// Whether `If-None-Match` (a list, or `*`) names `tag`; weak comparison, as RFC 9110 §13.1.2
/// asks for this header.
fn if_none_match(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let Ok(tag) = tag.to_str() else { return false };
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_quoted_tag() {
        let tags = etags();
        assert_eq!(tags.len(), ASSETS.len());
        for t in tags {
            let t = t.to_str().unwrap();
            assert!(
                t.starts_with('"') && t.ends_with('"') && t.len() == 26,
                "{t}"
            );
        }
        let distinct: std::collections::BTreeSet<_> = tags.iter().collect();
        assert_eq!(distinct.len(), tags.len());
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let tag = HeaderValue::from_static("\"abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(IF_NONE_MATCH, HeaderValue::from_static(v));
            if_none_match(&h, &tag)
        };
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abcd\""));
        assert!(!if_none_match(&HeaderMap::new(), &tag));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!index.contains("<script>"), "no inline script");
        assert!(!index.contains("<style"), "no inline style");
        assert!(!index.contains("style=\""), "no style attribute");
        assert!(!index.contains("http://") && !index.contains("https://"));
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            assert!(
                !text.contains("innerHTML") && !text.contains("outerHTML"),
                "{}: data goes into the DOM through textContent only",
                a.name
            );
            assert!(!text.contains("eval("), "{}", a.name);
        }
    }
}
