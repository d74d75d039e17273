//! `students_floor`: the floor of the `service_load` benchmark — `students-service`'s
//! handler with no versioning. One axum `POST /students` taking `Student@5` JSON straight
//! into a serde struct and answering it with an id (`student-N`, the same scheme as
//! `students-service`), status 201. No release negotiation, no validation against a schema,
//! no translation: what is left is axum, serde and the socket.
//!
//! ```text
//! students_floor [--listen 127.0.0.1:0]
//! ```
//!
//! Prints `students_floor serving at http://ADDR` once it listens.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// `Student@5`, as `students-service`'s handler takes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Student {
    first_name: String,
    last_name: String,
    year_of_birth: i64,
}

/// The answer, as `students-service`'s handler makes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StudentCreated {
    id: String,
    first_name: String,
    last_name: String,
    year_of_birth: i64,
}

async fn create_student(
    State(next_id): State<Arc<AtomicU64>>,
    Json(student): Json<Student>,
) -> (StatusCode, Json<StudentCreated>) {
    let n = next_id.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(StudentCreated {
            id: format!("student-{n}"),
            first_name: student.first_name,
            last_name: student.last_name,
            year_of_birth: student.year_of_birth,
        }),
    )
}

fn main() -> ExitCode {
    let mut listen = String::from("127.0.0.1:0");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: students_floor [--listen ADDR]");
                return ExitCode::FAILURE;
            }
        }
    }
    // The same runtime as `students-service` (`#[tokio::main]`: one worker per core the
    // process may run on).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("students_floor: start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        println!(
            "students_floor serving at http://{}",
            listener.local_addr()?
        );
        let app = Router::new()
            .route("/students", post(create_student))
            .with_state(Arc::new(AtomicU64::new(1)));
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("students_floor: {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}
