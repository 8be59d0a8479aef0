//! SigV4 against both official test suites, byte for byte (issue 15).
//!
//! `tests/data/aws/sigv4/aws-sig-v4-test-suite` (2015-08-30, from botocore):
//! each request carries its own `X-Amz-Date`; the canonical request, the
//! string to sign and the `Authorization` value must match. The newer
//! `aws-signing-test-suite-v4` (from aws-c-auth) gives a request and a
//! context (credentials, time, options): the whole signer must produce the
//! same canonical request, string to sign, signature and added headers.
//! Presigned-query vectors (`query-*`) do not apply: spuff signs headers.
//! Sources: tests/data/aws/SOURCES.tsv.

use std::path::{Path, PathBuf};

use spuff::provider::aws::Credentials;
use spuff::provider::aws::sigv4::{self, Options, Request, Scope};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/aws/sigv4")
        .join(dir)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A request file: request line, headers (continuation lines folded into
/// the header before, as HTTP/1.1's obs-fold), a blank line, the body.
struct ParsedRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ParsedRequest {
    fn parse(text: &str) -> ParsedRequest {
        let (head, body) = match text.split_once("\n\n") {
            Some((h, b)) => (h, b.as_bytes().to_vec()),
            None => (text, Vec::new()),
        };
        let mut lines = head.lines();
        let first = lines.next().expect("request line");
        // The target may hold spaces (`/example space/`).
        let (method, rest) = first.split_once(' ').expect("method");
        let target = rest.strip_suffix(" HTTP/1.1").expect("HTTP/1.1");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a header to continue");
                last.1.push('\n');
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("header");
                headers.push((name.to_string(), value.to_string()));
            }
        }
        ParsedRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers,
            body,
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Directories holding a vector: those with a file named `NAME.req` (old
/// suite) or `request.txt` (new suite).
fn vectors(root: &Path, marker: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if marker(&dir) {
            found.push(dir.clone());
        }
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    found.sort();
    found
}

const SCOPE: Scope<'static> = Scope {
    region: "us-east-1",
    service: "service",
};
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[test]
fn the_2015_suite_should_match_byte_for_byte() {
    let root = data("aws-sig-v4-test-suite");
    let name_of = |d: &Path| d.file_name().unwrap().to_string_lossy().into_owned();
    let dirs = vectors(&root, &|d| d.join(format!("{}.req", name_of(d))).is_file());
    // Every vector of the suite, not a lucky few.
    assert_eq!(dirs.len(), 34, "vectors found: {dirs:?}");
    for dir in dirs {
        let name = name_of(&dir);
        let file = |ext: &str| read(&dir.join(format!("{name}.{ext}")));
        let mut req = ParsedRequest::parse(&file("req"));
        // Temporary credentials: the suite's signer adds the token it was
        // given (see the signed request), signed unless the vector says
        // it comes after signing.
        let token = ParsedRequest::parse(&file("sreq"))
            .headers
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-security-token"));
        let has =
            |r: &ParsedRequest, h: &str| r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(h));
        if let Some(t) = token
            && !has(&req, "x-amz-security-token")
            && file("creq").contains("\nx-amz-security-token:")
        {
            req.headers.push(t);
        }
        let canonical = sigv4::canonical_request(&req.request(), true);
        assert_eq!(canonical.text, file("creq"), "{name}: canonical request");
        let amz_date = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
            .map(|(_, v)| v.clone())
            .expect("X-Amz-Date");
        let scope = sigv4::scope_text(&amz_date[..8], SCOPE);
        let sts = sigv4::string_to_sign(&amz_date, &scope, &canonical.text);
        assert_eq!(sts, file("sts"), "{name}: string to sign");
        let signature = sigv4::signature(SECRET, &amz_date[..8], SCOPE, &sts);
        let authz =
            sigv4::authorization("AKIDEXAMPLE", &scope, &canonical.signed_headers, &signature);
        assert_eq!(authz, file("authz"), "{name}: Authorization");
    }
}

#[derive(serde::Deserialize)]
struct Context {
    credentials: ContextCredentials,
    normalize: bool,
    region: String,
    service: String,
    sign_body: bool,
    timestamp: String,
    #[serde(default)]
    omit_session_token: bool,
}

#[derive(serde::Deserialize)]
struct ContextCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

#[test]
fn the_v4_suite_should_match_through_the_whole_signer() {
    let root = data("aws-signing-test-suite-v4");
    let dirs = vectors(&root, &|d| d.join("request.txt").is_file());
    assert_eq!(dirs.len(), 38, "vectors found: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let file = |f: &str| read(&dir.join(f));
        let ctx: Context = serde_json::from_str(&file("context.json")).expect("context.json");
        let mut creds = Credentials::new(
            ctx.credentials.access_key_id,
            ctx.credentials.secret_access_key,
        );
        if let Some(t) = ctx.credentials.token {
            creds = creds.with_session_token(t);
        }
        let time = humantime::parse_rfc3339(&ctx.timestamp).expect("timestamp");
        let req = ParsedRequest::parse(&file("request.txt"));
        let options = Options::default()
            .normalize_path(ctx.normalize)
            .sign_body(ctx.sign_body)
            .sign_session_token(!ctx.omit_session_token);
        let scope = Scope {
            region: &ctx.region,
            service: &ctx.service,
        };
        let signed = sigv4::sign(&req.request(), &creds, scope, options, time);
        assert_eq!(
            signed.canonical_request,
            file("header-canonical-request.txt"),
            "{name}: canonical request"
        );
        assert_eq!(
            signed.string_to_sign,
            file("header-string-to-sign.txt"),
            "{name}: string to sign"
        );
        assert_eq!(
            signed.signature,
            file("header-signature.txt").trim(),
            "{name}: signature"
        );
        // Every header the signer adds is in the signed request as given.
        let sent = ParsedRequest::parse(&file("header-signed-request.txt"));
        for (added, value) in &signed.headers {
            assert!(
                sent.headers
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case(added) && v == value),
                "{name}: {added}: {value} is not in the signed request"
            );
        }
        assert_eq!(
            signed.headers.len(),
            sent.headers.len() - req.headers.len(),
            "{name}: the signer adds exactly the headers the suite adds"
        );
    }
}

/// A change of any signed part changes the signature: the check a server
/// makes cannot be passed by a request altered on the way.
#[test]
fn any_change_to_a_signed_part_should_change_the_signature() {
    let headers = vec![
        (
            "Host".to_string(),
            "ec2.us-east-1.amazonaws.com".to_string(),
        ),
        (
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    let body = b"Action=DescribeRegions&Version=2016-11-15".to_vec();
    let creds = Credentials::new("AKIDEXAMPLE", SECRET).with_session_token("token");
    let time = humantime::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
    let scope = Scope {
        region: "us-east-1",
        service: "ec2",
    };
    let sig = |method: &str, body: &[u8], headers: &[(String, String)], creds: &Credentials| {
        let req = Request {
            method,
            path: "/",
            query: "",
            headers,
            body,
        };
        sigv4::sign(&req, creds, scope, Options::default(), time).signature
    };
    let base = sig("POST", &body, &headers, &creds);
    assert_ne!(base, sig("GET", &body, &headers, &creds), "method");
    assert_ne!(
        base,
        sig("POST", b"Action=TerminateInstances", &headers, &creds),
        "body"
    );
    let mut other_host = headers.clone();
    other_host[0].1 = "ec2.eu-west-1.amazonaws.com".into();
    assert_ne!(base, sig("POST", &body, &other_host, &creds), "host");
    let other_token = Credentials::new("AKIDEXAMPLE", SECRET).with_session_token("other");
    assert_ne!(base, sig("POST", &body, &headers, &other_token), "token");
    assert_eq!(base, sig("POST", &body, &headers, &creds), "deterministic");
}
