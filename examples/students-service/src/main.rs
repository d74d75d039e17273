//! `students-service`: an axum service whose one handler, `POST /students`, is written against
//! the newest types only (`Student@5` in, `StudentCreated@3` out, with an id the service
//! makes), and which serves apps of releases 3, 4 and 5 of the student register through
//! `mutatis-axum`: each app sends and reads its own version, an app naming no release is
//! recognised by its body's shape, and apps of releases 1 and 2 are told to update
//! (`unsupported-release`). `GET /openapi.json?release=N` describes the route per release.
//!
//! ```text
//! students-service --listen 127.0.0.1:8080 [--reference-date 2026-12-01]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use mutatis_axum::{Negotiation, OpenApi, VersionedJson, VersionedResponse};
use mutatis_schema::SchemaSet;
use mutatis_versioned::schemars::JsonSchema;
use mutatis_versioned::Versioned;
use serde::{Deserialize, Serialize};

/// The service's command line.
#[derive(Parser)]
#[command(
    name = "students-service",
    about = "Student register service: one handler, releases 3 to 5"
)]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The day it is (`YYYY-MM-DD`): sunsets and `referenceYear` count from it. Default: today.
    #[arg(long)]
    reference_date: Option<String>,
}

/// A student as the handler sees it: `Student@5`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[schemars(crate = "mutatis_versioned::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[versioned(type = "Student", version = 5)]
struct Student {
    first_name: String,
    last_name: String,
    year_of_birth: i64,
}

/// What a create answers: `StudentCreated@3`, the student and its id.
#[derive(Debug, Serialize, Deserialize, JsonSchema, Versioned)]
#[schemars(crate = "mutatis_versioned::schemars")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[versioned(type = "StudentCreated", version = 3)]
struct StudentCreated {
    id: String,
    first_name: String,
    last_name: String,
    year_of_birth: i64,
}

/// The service's state: the negotiation (schema set, lens parameters) and the next id.
#[derive(Clone)]
struct AppState {
    negotiation: Negotiation,
    next_id: Arc<AtomicU64>,
}

impl FromRef<AppState> for Negotiation {
    fn from_ref(state: &AppState) -> Negotiation {
        state.negotiation.clone()
    }
}

/// `POST /students`: written once, against the newest versions.
async fn create_student(
    State(state): State<AppState>,
    VersionedJson { value, caller }: VersionedJson<Student>,
) -> VersionedResponse<StudentCreated> {
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let created = StudentCreated {
        id: format!("student-{n}"),
        first_name: value.first_name,
        last_name: value.last_name,
        year_of_birth: value.year_of_birth,
    };
    caller.respond(StatusCode::CREATED, created)
}

/// The schema set: examples/students's `Student` type and this service's own files.
fn schema_set() -> Result<SchemaSet, mutatis_schema::SchemaError> {
    SchemaSet::from_sources(vec![
        (
            "mutatis.yaml".into(),
            include_str!("../schema/mutatis.yaml").to_owned(),
        ),
        (
            "types/Student.yaml".into(),
            include_str!("../../students/types/Student.yaml").to_owned(),
        ),
        (
            "types/StudentCreated.yaml".into(),
            include_str!("../schema/types/StudentCreated.yaml").to_owned(),
        ),
    ])
}

fn app(negotiation: Negotiation) -> Router {
    let api = OpenApi::new("students-service").route::<Student, StudentCreated>(
        "POST",
        "/students",
        "Register a student",
        201,
    );
    Router::new()
        .route("/students", post(create_student))
        .merge(api.router())
        .with_state(AppState {
            negotiation,
            next_id: Arc::new(AtomicU64::new(1)),
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let today = match args.reference_date {
        Some(d) => d,
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let params = mutatis_lens::calendar::reference_params(i64::try_from(now)?);
            params["referenceDate"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let negotiation = Negotiation::as_of(schema_set()?, &today)
        .ok_or_else(|| format!("--reference-date {today:?} is not a date (YYYY-MM-DD)"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!(
        "students-service listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app(negotiation)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler's types still match the versions they are bound to (the drift check of
    /// `mutatis-versioned`): a field renamed in the schema set and not here fails this.
    #[test]
    fn the_head_types_match_their_versions() {
        let set = schema_set().unwrap();
        mutatis_versioned::assert_matches::<Student>(&set);
        mutatis_versioned::assert_matches::<StudentCreated>(&set);
    }
}
