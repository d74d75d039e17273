//! TLS end to end, on the real binary: `mutatis serve --tls-cert/--tls-key` (HTTPS answered,
//! plain http to the port dropped, bad files refused at start), HTTPS replication between two
//! nodes and `check --against https://…` with `--ca-cert`, and the PostgreSQL store over TLS
//! with `sslmode=verify-full` (checked from the server's side) or a wrong CA (refused).
//!
//! The certificates are made here (rcgen): a CA of the test's own and a server certificate
//! for 127.0.0.1 and localhost signed by it. The PostgreSQL tests need `DATABASE_URL` and
//! `MUTATIS_PG_CA` (the CA of the server's certificate: `.ci/postgres-tls` makes both);
//! without them they say SKIPPED, and under CI they fail.

mod support;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{bin, ci, example, ADMIN_TOKEN, REFERENCE_DATE};

/// A CA and a server certificate it signed, as PEM files in a folder of their own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().expect("a scratch folder");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mutatis test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a server certificate");
        // Another key, not the certificate's: for the mismatched pair.
        let other_key = KeyPair::generate().expect("another key");
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        write("ca.pem", ca_cert.pem());
        write("cert.pem", cert.pem());
        write("key.pem", key.serialize_pem());
        write("other-key.pem", other_key.serialize_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A blocking client that trusts this CA only.
    fn client(&self) -> reqwest::blocking::Client {
        mutatis_client::tls::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
        reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTPS client")
    }
}

/// A `mutatis serve` over HTTPS on a redb file of its own, killed on drop.
struct TlsNode {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    url: String,
    _scratch: tempfile::TempDir,
}

impl TlsNode {
    fn start(pki: &Pki, extra: &[&str]) -> TlsNode {
        let scratch = tempfile::tempdir().expect("a scratch folder");
        let mut child = Command::new(bin())
            .arg("serve")
            .arg(example("students"))
            .arg("--data")
            .arg(scratch.path().join("data.redb"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--reference-date",
                REFERENCE_DATE,
            ])
            .arg("--tls-cert")
            .arg(pki.path("cert.pem"))
            .arg("--tls-key")
            .arg(pki.path("key.pem"))
            .args(extra)
            .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mutatis serve starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("mutatis serve printed its address")
                .expect("a line");
            if let Some((_, at)) = line.split_once(" at ") {
                break at.trim().to_owned();
            }
        };
        // The node's stdout is drained for its whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        TlsNode {
            child,
            url,
            _scratch: scratch,
        }
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("https://")
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn put_student(http: &reqwest::blocking::Client, node: &TlsNode, id: &str, first: &str) {
    let r = http
        .put(format!("{}/docs/Student/{id}", node.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("Mutatis-Release", "5")
        .json(&json!({"firstName": first, "lastName": "Lovelace", "yearOfBirth": 1815}))
        .send()
        .expect("PUT over https");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
}

fn get_student(http: &reqwest::blocking::Client, node: &TlsNode, id: &str) -> Option<Value> {
    let r = http
        .get(format!("{}/docs/Student/{id}", node.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("Mutatis-Release", "5")
        .send()
        .expect("GET over https");
    (r.status().as_u16() == 200).then(|| r.json().expect("a JSON document"))
}

/// Everything an error run printed, for assertions on its message.
fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_answers_https_and_drops_plain_http_on_its_port() {
    let pki = Pki::new();
    let node = TlsNode::start(&pki, &[]);
    let http = pki.client();
    let meta = http
        .get(format!("{}/meta", node.url))
        .send()
        .expect("GET /meta over https");
    assert_eq!(meta.status().as_u16(), 200);
    let meta: Value = meta.json().expect("JSON");
    assert!(meta.is_object(), "{meta}");

    // Plain http to the TLS port: the handshake fails and the connection is closed, with no
    // HTTP answer.
    let plain = support::http()
        .get(format!("http://{}/meta", node.addr()))
        .send();
    assert!(plain.is_err(), "plain http was answered: {plain:?}");

    // A client that does not trust the CA refuses the node's certificate.
    let untrusting = support::http()
        .get(format!("{}/meta", node.url))
        .send()
        .expect_err("an unknown CA is refused");
    let chain = format!("{:?}", untrusting);
    assert!(chain.contains("UnknownIssuer"), "{chain}");

    // The node still serves after both.
    put_student(&http, &node, "ada", "Ada");
    assert_eq!(
        get_student(&http, &node, "ada").unwrap()["firstName"],
        "Ada"
    );
}

/// A client that opens a connection and never starts the handshake holds it only as long as
/// a request head may take (`--request-timeout`), then the node closes it.
#[test]
fn a_handshake_that_never_comes_is_cut_off() {
    use std::io::Read as _;
    let pki = Pki::new();
    let node = TlsNode::start(&pki, &["--request-timeout", "1", "--body-timeout", "0.5"]);
    let mut silent = std::net::TcpStream::connect(node.addr()).expect("a connection");
    // Far longer than the timeout: a connection still open then was never going to close.
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the node sent {n} bytes to a client that said nothing"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the node kept a silent connection open: {e}"
        ),
    }
    // The node serves on.
    let meta = pki.client().get(format!("{}/meta", node.url)).send();
    assert_eq!(meta.expect("GET /meta").status().as_u16(), 200);
}

/// Webhooks post over https with the node's trust: a node given the CA reaches the receiver
/// (which answers, here with an error status), one without it refuses the certificate.
#[test]
fn webhooks_post_over_https_with_the_nodes_trust() {
    let pki = Pki::new();
    let receiver = TlsNode::start(&pki, &[]);
    let trusting = TlsNode::start(&pki, &["--ca-cert", pki.ca().to_str().unwrap()]);
    let untrusting = TlsNode::start(&pki, &[]);
    let http = pki.client();
    let last_error = |node: &TlsNode| {
        let r = http
            .post(format!("{}/admin/webhooks", node.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"url": format!("{}/no-such-hook", receiver.url)}))
            .send()
            .expect("POST /admin/webhooks");
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
        put_student(&http, node, "ada", "Ada");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let hooks: Value = http
                .get(format!("{}/admin/webhooks", node.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .and_then(|r| r.json())
                .expect("GET /admin/webhooks");
            if let Some(e) = hooks["webhooks"][0]["lastError"].as_str() {
                return e.to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no delivery: {hooks}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let reached = last_error(&trusting);
    assert!(reached.contains("answered 4"), "{reached}");
    let refused = last_error(&untrusting);
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[test]
fn serve_refuses_to_start_with_bad_tls_files() {
    let pki = Pki::new();
    let scratch = tempfile::tempdir().unwrap();
    let run = |cert: &Path, key: &Path| {
        Command::new(bin())
            .arg("serve")
            .arg(example("students"))
            .arg("--data")
            .arg(scratch.path().join("data.redb"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .output()
            .expect("mutatis serve runs")
    };
    let missing = pki.path("no-such-key.pem");
    let out = run(&pki.path("cert.pem"), &missing);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("TLS private key") && err.contains("no-such-key.pem"),
        "{err}"
    );

    // A certificate file that holds a key, not a certificate.
    let out = run(&pki.path("key.pem"), &pki.path("key.pem"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("TLS certificate") && err.contains("key.pem"),
        "{err}"
    );

    // A key that is not the certificate's.
    let out = run(&pki.path("cert.pem"), &pki.path("other-key.pem"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("cert.pem") && err.contains("other-key.pem"),
        "{err}"
    );

    // One flag without the other is a usage error.
    let out = Command::new(bin())
        .arg("serve")
        .arg(example("students"))
        .arg("--tls-cert")
        .arg(pki.path("cert.pem"))
        .env_remove("MUTATIS_TLS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--tls-key"), "{}", stderr_of(&out));
    // Nothing was created: the start stopped before the store was opened.
    assert!(!scratch.path().join("data.redb").exists());
}

#[test]
fn replicate_and_check_over_https_with_a_private_ca() {
    let pki = Pki::new();
    let a = TlsNode::start(&pki, &[]);
    let b = TlsNode::start(&pki, &[]);
    let http = pki.client();
    put_student(&http, &a, "ada", "Ada");

    let replicate = |ca: Option<&Path>| {
        let mut cmd = Command::new(bin());
        cmd.args(["replicate", "--from", &a.url, "--to", &b.url])
            .env("MUTATIS_FROM_TOKEN", ADMIN_TOKEN)
            .env("MUTATIS_TO_TOKEN", ADMIN_TOKEN)
            .env_remove("MUTATIS_CA_CERT")
            .stdin(Stdio::null());
        if let Some(ca) = ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        cmd.output().expect("mutatis replicate runs")
    };
    // Without the CA the nodes' certificates are not trusted: nothing is sent.
    let out = replicate(None);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(get_student(&http, &b, "ada").is_none());

    let out = replicate(Some(&pki.ca()));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(get_student(&http, &b, "ada").unwrap()["firstName"], "Ada");

    // A replication job on B, pulling from A over https: the node trusts the CA given by
    // the environment variable.
    drop(b);
    let b = TlsNode::start(&pki, &["--ca-cert", pki.ca().to_str().unwrap()]);
    put_student(&http, &a, "grace", "Grace");
    let r = http
        .post(format!("{}/admin/replications", b.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"source": a.url, "sourceToken": ADMIN_TOKEN, "target": "self"}))
        .send()
        .expect("POST /admin/replications");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while get_student(&http, &b, "grace").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not bring grace over https: {}",
            http.get(format!("{}/admin/replications", b.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // `check --against https://…` reads the node's manifest over TLS.
    let check = |ca: Option<&Path>| {
        let mut cmd = Command::new(bin());
        cmd.arg("check")
            .arg(example("students"))
            .args(["--against", &a.url])
            .env_remove("MUTATIS_CA_CERT");
        if let Some(ca) = ca {
            cmd.env("MUTATIS_CA_CERT", ca);
        }
        cmd.output().expect("mutatis check runs")
    };
    let out = check(Some(&pki.ca()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    let out = check(None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&a.url) && err.contains("UnknownIssuer"),
        "{err}"
    );

    // `translate --manifest https://…` translates as the folder does.
    let translate = |source: &[&str]| {
        let mut child = Command::new(bin())
            .arg("translate")
            .args(source)
            .args(["--type", "Student", "--from", "5", "--to", "3"])
            .args(["--reference-date", REFERENCE_DATE])
            .arg("--ca-cert")
            .arg(pki.ca())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mutatis translate starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"{\"firstName\":\"Ada\",\"lastName\":\"Lovelace\",\"yearOfBirth\":1815}\n")
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let folder = example("students");
    let expected = translate(&[folder.to_str().unwrap()]);
    assert_eq!(expected.lines().count(), 1, "{expected}");
    assert_eq!(translate(&["--manifest", &a.url]), expected);
}

// ----------------------------------------------------------------------------- PostgreSQL

/// `DATABASE_URL` and `MUTATIS_PG_CA`, or a loud skip (a failure under CI).
fn pg_tls_env(what: &str) -> Option<(String, PathBuf)> {
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let ca = std::env::var("MUTATIS_PG_CA")
        .ok()
        .filter(|c| !c.is_empty());
    match (url, ca) {
        (Some(url), Some(ca)) => Some((url, PathBuf::from(ca))),
        _ => {
            assert!(
                !ci(),
                "CI must run {what}, but DATABASE_URL or MUTATIS_PG_CA is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: DATABASE_URL or MUTATIS_PG_CA is not set: {what} did NOT run"
            );
            None
        }
    }
}

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// A schema name no other test (or helper) uses at the same time.
fn unique_schema() -> String {
    format!(
        "tls_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

#[test]
fn postgres_store_over_verified_tls() {
    let Some((url, ca)) = pg_tls_env("the PostgreSQL TLS test (sslmode=verify-full)") else {
        return;
    };
    let schema = unique_schema();
    // The node's connections (its pool's and its NOTIFY listener's) are found on the server
    // by the application name the store gives them: `mutatis/<schema>[/listen]`.
    let app = mutatis_store::application_name(&schema);
    let node_url = with_params(
        &url,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let mut child = Command::new(bin())
        .arg("serve")
        .arg(example("students"))
        .args(["--postgres", &node_url, "--pg-schema", &schema])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--reference-date",
            REFERENCE_DATE,
        ])
        .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mutatis serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let served = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some((_, at)) = line.split_once(" at ") {
                    break Some(at.trim().to_owned());
                }
            }
            _ => break None,
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("an admin connection");
    let encrypted: Vec<bool> = served
        .as_ref()
        .map(|_| {
            admin
                .query(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = $1 OR a.application_name LIKE $1 || '/%'",
                    &[&app],
                )
                .expect("pg_stat_ssl")
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let served = served.expect("mutatis serve started on PostgreSQL with sslmode=verify-full");
    assert!(served.starts_with("http://"), "{served}");
    assert!(
        !encrypted.is_empty(),
        "no connection of {app} on the server"
    );
    assert!(
        encrypted.iter().all(|e| *e),
        "a connection was not encrypted: {encrypted:?}"
    );
}

#[test]
fn postgres_store_refuses_a_server_certificate_from_another_ca() {
    let Some((url, _)) = pg_tls_env("the PostgreSQL TLS test (a wrong CA)") else {
        return;
    };
    // The test's own CA did not sign the server's certificate.
    let pki = Pki::new();
    let schema = unique_schema();
    let node_url = with_params(
        &url,
        &format!("sslmode=verify-full&sslrootcert={}", pki.ca().display()),
    );
    let out = Command::new(bin())
        .arg("serve")
        .arg(example("students"))
        .args(["--postgres", &node_url, "--pg-schema", &schema])
        .args(["--listen", "127.0.0.1:0"])
        .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("mutatis serve runs");
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("postgres") && err.contains("UnknownIssuer"),
        "{err}"
    );
    // A verify mode without its CA file is refused before connecting, saying what is missing.
    let out = Command::new(bin())
        .arg("serve")
        .arg(example("students"))
        .args(["--postgres", &with_params(&url, "sslmode=verify-ca")])
        .args(["--pg-schema", &schema, "--listen", "127.0.0.1:0"])
        .env("MUTATIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("mutatis serve runs");
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("sslrootcert"), "{err}");
}
