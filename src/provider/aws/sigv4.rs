//! AWS Signature Version 4 for request headers: what every EC2 call carries
//! instead of a bearer token.
//!
//! We sign ourselves rather than pull in the AWS SDK, whose compile time and
//! binary size are its users' first complaint (issue 15): SigV4 is a few
//! SHA-256 hashes over a canonical form of the request. The hard part is
//! that canonical form (path normalisation, query and header ordering,
//! whitespace folding, duplicate headers), so every rule below is pinned by
//! both official test suites, run by `tests/aws_sigv4.rs`.
//!
//! [`sign`] is the whole signer for one request at one time;
//! [`canonical_request`], [`string_to_sign`] and [`signature`] are its
//! steps, public so that a server (spuff's fake EC2 in the tests) can check
//! a signature the same way AWS does.

use std::time::SystemTime;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;
use crate::provider::{RequestSigner, SignRequest};

/// The one algorithm name SigV4 signs with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The request, as the signer reads it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as it is sent (`/` for EC2). It is encoded once more for the
    /// canonical form, as AWS does for every service but S3.
    pub path: &'a str,
    /// The query string without `?`, as it is sent (empty for none).
    pub query: &'a str,
    /// Every header to sign, in the order it is sent, `host` included; names
    /// in any case. Repeated names are signed as one, values joined by `,`.
    pub headers: &'a [(String, String)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Where the signature is valid: the credential scope's region and service.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `us-east-1`, …
    pub region: &'a str,
    /// `ec2`, …
    pub service: &'a str,
}

/// The choices a service makes about signing.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Options {
    /// Remove `.`/`..` segments and repeated slashes from the path before
    /// signing: every service but S3.
    pub normalize_path: bool,
    /// Send and sign `x-amz-content-sha256` (S3 wants it; EC2 does not).
    pub sign_body: bool,
    /// Sign `x-amz-security-token` (temporary credentials) rather than add
    /// it after signing. EC2 accepts it signed.
    pub sign_session_token: bool,
}

impl Default for Options {
    /// What EC2 expects.
    fn default() -> Options {
        Options {
            normalize_path: true,
            sign_body: false,
            sign_session_token: true,
        }
    }
}

impl Options {
    /// S3's choices would differ; these builders serve the test vectors and
    /// any other service the SDK is pointed at.
    pub fn normalize_path(mut self, on: bool) -> Options {
        self.normalize_path = on;
        self
    }

    /// See [`Options::sign_body`].
    pub fn sign_body(mut self, on: bool) -> Options {
        self.sign_body = on;
        self
    }

    /// See [`Options::sign_session_token`].
    pub fn sign_session_token(mut self, on: bool) -> Options {
        self.sign_session_token = on;
        self
    }
}

/// A request's signature, and what was hashed to make it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Signed {
    /// The canonical request (the first thing AWS compares when it refuses
    /// a signature; its error message quotes it).
    pub canonical_request: String,
    /// The string that was signed.
    pub string_to_sign: String,
    /// The signature, lower-case hex.
    pub signature: String,
    /// Headers to add to the request, in this order: `X-Amz-Date`, then
    /// `x-amz-content-sha256` and `X-Amz-Security-Token` when they apply,
    /// then `Authorization`.
    pub headers: Vec<(&'static str, String)>,
}

/// Signs `request` with `credentials` for `scope` at `time`.
///
/// The request's own headers must not already carry the ones this adds
/// (`X-Amz-Date`, `Authorization`, …): they are computed here.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    scope: Scope<'_>,
    options: Options,
    time: SystemTime,
) -> Signed {
    let amz_date = amz_date(time);
    let mut headers: Vec<(String, String)> = request.headers.to_vec();
    let mut added: Vec<(&'static str, String)> = vec![("X-Amz-Date", amz_date.clone())];
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if options.sign_body {
        let hash = hex_sha256(request.body);
        headers.push(("x-amz-content-sha256".into(), hash.clone()));
        added.push(("x-amz-content-sha256", hash));
    }
    if let Some(token) = &credentials.session_token {
        if options.sign_session_token {
            headers.push(("x-amz-security-token".into(), token.expose().to_string()));
        }
        added.push(("X-Amz-Security-Token", token.expose().to_string()));
    }
    let signing = Request {
        headers: &headers,
        ..*request
    };
    let canonical = canonical_request(&signing, options.normalize_path);
    let scope_text = scope_text(&amz_date[..8], scope);
    let string_to_sign = string_to_sign(&amz_date, &scope_text, &canonical.text);
    let signature = signature(
        credentials.secret_access_key.expose(),
        &amz_date[..8],
        scope,
        &string_to_sign,
    );
    added.push((
        "Authorization",
        authorization(
            &credentials.access_key_id,
            &scope_text,
            &canonical.signed_headers,
            &signature,
        ),
    ));
    Signed {
        canonical_request: canonical.text,
        string_to_sign,
        signature,
        headers: added,
    }
}

/// Signs every request of a provider's HTTP client with SigV4, at the time
/// it is sent (each retry gets a fresh date and signature).
///
/// Signs `host`, `content-type` and any `x-amz-*` header: what AWS's own
/// SDKs sign for EC2. `user-agent` and `accept-encoding` stay unsigned, so
/// a proxy that rewrites them does not break the signature.
#[derive(Debug, Clone)]
pub struct SigV4Signer {
    credentials: Credentials,
    region: String,
    service: String,
}

impl SigV4Signer {
    /// A signer for `service` (`ec2`) in `region`.
    pub fn new(
        credentials: Credentials,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        SigV4Signer {
            credentials,
            region: region.into(),
            service: service.into(),
        }
    }
}

impl RequestSigner for SigV4Signer {
    fn sign(&self, request: SignRequest<'_>) -> Result<(), String> {
        let host = request
            .uri
            .authority()
            .ok_or_else(|| format!("{} has no host to sign", request.uri))?;
        let mut headers = vec![("host".to_string(), host.as_str().to_string())];
        for (name, value) in request.headers.iter() {
            if name == http::header::CONTENT_TYPE || name.as_str().starts_with("x-amz-") {
                let value = value
                    .to_str()
                    .map_err(|_| format!("header {name} is not text and cannot be signed"))?;
                headers.push((name.as_str().to_string(), value.to_string()));
            }
        }
        let signed = sign(
            &Request {
                method: request.method.as_str(),
                path: request.uri.path(),
                query: request.uri.query().unwrap_or(""),
                headers: &headers,
                body: request.body,
            },
            &self.credentials,
            Scope {
                region: &self.region,
                service: &self.service,
            },
            Options::default(),
            SystemTime::now(),
        );
        for (name, value) in signed.headers {
            let name = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| format!("header {name}: {e}"))?;
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| format!("the value of {name} is not a valid header"))?;
            // Kept out of hyper's debug output and HTTP/2's header tables.
            value.set_sensitive(
                name == http::header::AUTHORIZATION || name.as_str() == "x-amz-security-token",
            );
            request.headers.insert(name, value);
        }
        Ok(())
    }
}

/// A canonical request and the list of headers it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The canonical request text.
    pub text: String,
    /// The signed header names, lower case, sorted, joined by `;`.
    pub signed_headers: String,
}

/// The canonical form of `request`: method, path, query, headers, the
/// signed header names and the body's hash, one per line.
pub fn canonical_request(request: &Request<'_>, normalize_path: bool) -> CanonicalRequest {
    let path = if normalize_path {
        normalized_path(request.path)
    } else {
        request.path.to_string()
    };
    // Names sorted, values of a repeated name joined in the order sent.
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in request.headers {
        by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let mut headers = String::new();
    for (name, values) in &by_name {
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    let signed_headers = by_name.keys().cloned().collect::<Vec<_>>().join(";");
    let text = format!(
        "{}\n{}\n{}\n{headers}\n{signed_headers}\n{}",
        request.method,
        uri_encode(&path, false),
        canonical_query(request.query),
        hex_sha256(request.body),
    );
    CanonicalRequest {
        text,
        signed_headers,
    }
}

/// `date/region/service/aws4_request`, `date` being `YYYYMMDD`.
pub fn scope_text(date: &str, scope: Scope<'_>) -> String {
    format!("{date}/{}/{}/aws4_request", scope.region, scope.service)
}

/// The string to sign: algorithm, time, scope and the canonical request's
/// hash, one per line.
pub fn string_to_sign(amz_date: &str, scope_text: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope_text}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

/// The signature of `string_to_sign`, lower-case hex, with a key derived
/// from the secret for this `date` (`YYYYMMDD`) and scope.
pub fn signature(secret: &str, date: &str, scope: Scope<'_>, string_to_sign: &str) -> String {
    let key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let key = hmac(&key, scope.region.as_bytes());
    let key = hmac(&key, scope.service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    data_encoding::HEXLOWER.encode(&hmac(&key, string_to_sign.as_bytes()))
}

/// The `Authorization` header's value.
pub fn authorization(
    access_key_id: &str,
    scope_text: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope_text}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(time: SystemTime) -> String {
    // humantime gives `2015-08-30T12:36:00Z`.
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex_sha256(data: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(data))
}

/// RFC 3986 path normalisation as AWS applies it: `.` and `..` segments
/// resolved, empty segments (repeated slashes) dropped, a trailing slash
/// kept.
fn normalized_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::from("/");
    p.push_str(&out.join("/"));
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if trailing && !out.is_empty() {
        p.push('/');
    }
    p
}

/// Query parameters decoded, encoded again the one canonical way, sorted
/// by name and then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`;
/// `/` too when `slash` is set (query values), not in paths. EC2's form
/// bodies are encoded the same way (`query`).
pub(crate) fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `%XX` sequences decoded (bytes that do not form UTF-8 are kept as
/// replacement characters: such a name could not be sent anyway).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_should_normalise_as_aws_does() {
        for (given, want) in [
            ("/", "/"),
            ("//", "/"),
            ("//example//", "/example/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("/a/b/../c/", "/a/c/"),
        ] {
            assert_eq!(normalized_path(given), want, "{given}");
        }
    }

    #[test]
    fn percent_decoding_should_leave_broken_escapes_alone() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%E1%88%B4"), "ሴ");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    /// The signer as the HTTP client calls it, checked the way AWS checks:
    /// recompute from what was sent.
    #[test]
    fn the_client_signer_should_sign_what_is_sent() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret").with_session_token("tok");
        let signer = SigV4Signer::new(creds.clone(), "eu-west-1", "ec2");
        let uri: http::Uri = "https://ec2.eu-west-1.amazonaws.com/".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("spuff"),
        );
        let body = b"Action=DescribeRegions&Version=2016-11-15";
        signer
            .sign(SignRequest {
                method: &http::Method::POST,
                uri: &uri,
                headers: &mut headers,
                body,
            })
            .unwrap();
        let get = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_string();
        let auth = get("authorization");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{auth}"
        );
        assert!(headers.get("authorization").unwrap().is_sensitive());
        assert_eq!(get("x-amz-security-token"), "tok");
        // What a server recomputes from the request it received.
        let date = get("x-amz-date");
        let sent = vec![
            (
                "host".to_string(),
                "ec2.eu-west-1.amazonaws.com".to_string(),
            ),
            ("content-type".to_string(), get("content-type")),
            ("x-amz-date".to_string(), date.clone()),
            ("x-amz-security-token".to_string(), "tok".to_string()),
        ];
        let canonical = canonical_request(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &sent,
                body,
            },
            true,
        );
        let scope = Scope {
            region: "eu-west-1",
            service: "ec2",
        };
        let sts = string_to_sign(&date, &scope_text(&date[..8], scope), &canonical.text);
        assert!(auth.ends_with(&format!(
            "Signature={}",
            signature("secret", &date[..8], scope, &sts)
        )));
    }

    #[test]
    fn the_date_should_be_in_amz_form() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
    }
}
