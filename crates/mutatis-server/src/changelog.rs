//! `GET /changelog[?format=markdown]` (public): the served schema set's changelog, release by
//! release ([`mutatis_schema::SchemaSet::changelog`]), as JSON or Markdown.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mutatis_store::Backend;

use crate::app::AppState;
use crate::http::json_response;
use crate::problem::Problem;

/// `GET /changelog`: JSON by default, `?format=markdown` for `text/markdown`.
pub async fn changelog<B: Backend + 'static>(
    State(state): State<Arc<AppState<B>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let markdown = match query.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("markdown") => true,
        Some(other) => {
            return Err(
                Problem::bad_request(format!("format={other}: expected json or markdown"))
                    .with("parameter", "format"),
            )
        }
    };
    let store = state.store();
    let log = store.schema_set().changelog().map_err(|e| {
        // A loaded set has a path between any two of its versions: this is a defect.
        tracing::error!("the changelog of the served schema set failed: {e}");
        Problem::internal()
    })?;
    Ok(if markdown {
        (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/markdown; charset=utf-8")],
            log.to_markdown(),
        )
            .into_response()
    } else {
        json_response(StatusCode::OK, &log.to_json())
    })
}
