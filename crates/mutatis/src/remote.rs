//! `--server URL`: the store commands (`export`, `import`, `migrate`, `status`) through a
//! running node instead of its store, which the node holds (a redb file is one process's).
//! A thin blocking client over the node's HTTP API (`crates/mutatis-server/API.md`): the
//! document list for export, `POST /admin/import`, the migration routes, `GET /meta` to check
//! that the node serves the same schema set. Problems the node answers are shown readably
//! ([`CliError::Remote`]).

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::cli::TargetArgs;
use crate::error::CliError;

/// How long one request may take: an import batch is one transaction of up to a thousand
/// documents on a node that may be busy migrating.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A node reached over HTTP.
pub struct Remote {
    base: Url,
    token: Option<String>,
    http: Client,
}

impl Remote {
    /// The node `--server` names, with the token of `--token` (or MUTATIS_TOKEN).
    pub fn from_args(url: &str, args: &TargetArgs) -> Result<Remote, CliError> {
        let base = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--server {url}: expected a node's URL, http://HOST:PORT"
                ))
            })?;
        let token = args
            .token
            .clone()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let http = Client::builder()
            .tls_certs_merge(mutatis_client::tls::trusted_cas())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot make an HTTP client: {e}")))?;
        Ok(Remote { base, token, http })
    }

    /// The node's URL as given.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` (each percent-encoded as one path segment) under the node's.
    pub fn url_of(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request with the token, not yet sent.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send `req` (for `what`, `METHOD URL`); a transport failure is [`CliError::Fetch`].
    pub fn send(&self, what: &str, req: RequestBuilder) -> Result<Response, CliError> {
        req.send().map_err(|e| CliError::Fetch {
            url: what.to_owned(),
            reason: describe(&e),
        })
    }

    /// Send `req` and read its JSON answer: a 2xx's body, or the node's problem as
    /// [`CliError::Remote`].
    pub fn json(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value, CliError> {
        let what = format!("{method} {url}");
        let mut req = self.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(&what, req)?;
        answer(&what, resp).map(|(_, v)| v)
    }

    /// `GET segments` as JSON.
    pub fn get(&self, segments: &[&str]) -> Result<Value, CliError> {
        self.json(Method::GET, self.url_of(segments), None)
    }

    /// Check that the node serves the schema set named `local` (`GET /meta`): the commands
    /// read and write documents in that set's versions, and another application's node
    /// would take them as its own. `force` skips it (`--force-set`).
    pub fn check_set(&self, local: &str, force: bool) -> Result<(), CliError> {
        if force {
            return Ok(());
        }
        let meta = self.get(&["meta"])?;
        match meta.get("schemaSet").and_then(Value::as_str) {
            Some(name) if name == local => Ok(()),
            Some(name) => Err(CliError::Usage(format!(
                "{} serves schema set {name:?}, not {local:?} (the set given); name the node of this set, or pass --force-set",
                self.url()
            ))),
            None => Err(CliError::Fetch {
                url: format!("GET {}", self.url_of(&["meta"])),
                reason: "the answer names no schema set: is this a mutatis node?".into(),
            }),
        }
    }
}

/// A 2xx answer's status and JSON body (`null` when it has none), or the problem it is.
pub fn answer(what: &str, resp: Response) -> Result<(StatusCode, Value), CliError> {
    let status = resp.status();
    let bytes = resp.bytes().map_err(|e| CliError::Fetch {
        url: what.to_owned(),
        reason: describe(&e),
    })?;
    if !status.is_success() {
        return Err(CliError::Remote {
            request: what.to_owned(),
            problem: Box::new(mutatis_client::Problem::from_body(status.as_u16(), &bytes)),
        });
    }
    if bytes.is_empty() {
        return Ok((status, Value::Null));
    }
    let value = serde_json::from_slice(&bytes).map_err(|e| CliError::Fetch {
        url: what.to_owned(),
        reason: format!("the answer is not JSON: {e}"),
    })?;
    Ok((status, value))
}

/// A transport error with its causes (reqwest's own message is often just "error sending
/// request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
