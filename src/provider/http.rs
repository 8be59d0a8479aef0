//! The HTTP client every provider talks through.
//!
//! Hand-tuned rather than reqwest (see docs/adr/0010-provider-http-client.md):
//! hyper 1 with hyper-util's pooled client, rustls on aws-lc-rs (the crate's one
//! crypto backend, ADR 0021), HTTP/2 by ALPN with HTTP/1.1 fallback, CONNECT
//! tunnelling through `HTTPS_PROXY` (honouring `NO_PROXY`), gzip, a body size
//! cap, connect and whole-request timeouts, and retries that are safe:
//!
//! - only idempotent requests are resent after a failure that may have reached
//!   the server (5xx, timeout, dropped connection); a create is resent only by
//!   its provider, after looking for what the lost request may have created;
//! - any request is resent after a 429, because a rate-limited request was not
//!   processed; the wait honours `Retry-After` and the `RateLimit-Reset`
//!   header (both DigitalOcean and Hetzner send it), or gives up with
//!   [`ProviderError::RateLimit`] when the API asks for more than
//!   [`RetryPolicy::max_server_wait`].
//!
//! One client keeps one pool, so a whole `spuff up` (create, dozens of polls,
//! key lookups) runs over one TLS connection; [`HttpStats`] counts connections
//! and requests so tests and the bench can check that.
//!
//! Failures that cannot succeed on a second try (an untrusted certificate,
//! a response over the size cap, a 4xx other than 429) are never resent, and
//! every request has one total budget ([`RetryPolicy::total`]) across its
//! tries, so a provider that never answers costs one stated wait, not five.
//!
//! Credentials ([`Auth`]: a bearer token, a Proxmox API token, or a request
//! signer such as AWS SigV4) travel only in sensitive headers, are never
//! logged, and are never sent to a host other than the base URL's
//! (pagination links are checked).

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower_service::Service;

use super::error::{ProviderError, ProviderResult};
use super::types::ProviderTimeouts;
use crate::util::{Secret, fmt_duration};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where to send requests through a proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyConfig {
    /// Read `HTTPS_PROXY`/`https_proxy`, `ALL_PROXY` and `NO_PROXY` as curl does.
    #[default]
    FromEnv,
    /// Connect directly.
    None,
    /// Tunnel through this `http://[user:pass@]host:port` proxy with CONNECT,
    /// except for hosts matched by `no_proxy` (curl's syntax: `a.com,.b.com,10.0.0.0/8`).
    Url {
        /// The proxy URL.
        url: String,
        /// Comma-separated exclusions.
        no_proxy: String,
    },
}

/// When and how often to resend a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff delay (then doubled, with jitter).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest wait the API may ask for (429) before we give up with
    /// [`ProviderError::RateLimit`] instead of sleeping.
    pub max_server_wait: Duration,
    /// The most one request may take, all tries and waits included: a
    /// provider that never answers costs this once per request, and the
    /// error says so. Kept well under a minute so a read command fails in
    /// bounded time.
    pub total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_server_wait: Duration::from_secs(90),
            total: Duration::from_secs(40),
        }
    }
}

/// How requests prove who they are.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer TOKEN` (DigitalOcean, Hetzner).
    Bearer(Secret),
    /// `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET` (Proxmox VE);
    /// the secret holds everything after `PVEAPIToken=`.
    PveApiToken(Secret),
    /// Each request is signed by this signer (AWS Signature Version 4).
    Signer(Arc<dyn RequestSigner>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Auth::Bearer(***)",
            Auth::PveApiToken(_) => "Auth::PveApiToken(***)",
            Auth::Signer(_) => "Auth::Signer(..)",
        })
    }
}

impl Auth {
    /// Whether there is no credential at all (an empty token).
    pub fn is_missing(&self) -> bool {
        match self {
            Auth::Bearer(t) | Auth::PveApiToken(t) => t.is_empty(),
            Auth::Signer(_) => false,
        }
    }
}

/// A request about to be sent, for a [`RequestSigner`] to sign.
#[derive(Debug)]
#[non_exhaustive]
pub struct SignRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The absolute URL.
    pub uri: &'a Uri,
    /// The headers so far (`host` is not among them: it is the URL's
    /// authority); the signer adds its own.
    pub headers: &'a mut HeaderMap,
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signs each request (AWS SigV4 plugs in here). Called once per try, so a
/// resent request carries a fresh signature and date.
pub trait RequestSigner: Send + Sync {
    /// Adds the signature headers.
    ///
    /// # Errors
    /// Why the request cannot be signed (reported as a config error).
    fn sign(&self, request: SignRequest<'_>) -> Result<(), String>;
}

/// Transport settings shared by all providers.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `User-Agent` header; names spuff and its version by default.
    pub user_agent: String,
    /// Trust the platform's root certificates (rustls-native-certs).
    pub native_roots: bool,
    /// Trust the Mozilla roots compiled in (webpki-roots), so spuff works on
    /// machines whose certificate store is empty or unreadable.
    pub webpki_roots: bool,
    /// An extra PEM file of CA certificates (a corporate TLS-inspecting proxy).
    pub extra_ca_file: Option<PathBuf>,
    /// Extra CA certificates as PEM text (tests use their own CA).
    pub extra_ca_pem: Option<String>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint
    /// instead of any CA: a Proxmox cluster's self-signed certificate, as
    /// `pvenode cert info` shows it. Like an SSH host key, it is the key
    /// itself that is trusted; any other certificate is refused.
    pub pinned_cert_sha256: Option<[u8; 32]>,
    /// Offer HTTP/2 in ALPN (HTTP/1.1 is always offered).
    pub http2: bool,
    /// Proxy settings.
    pub proxy: ProxyConfig,
    /// Largest response body accepted, before and after gzip decoding.
    pub max_body_bytes: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            user_agent: concat!(
                "spuff/",
                env!("CARGO_PKG_VERSION"),
                " (+https://github.com/spuff-dev/spuff)"
            )
            .to_string(),
            native_roots: true,
            webpki_roots: true,
            extra_ca_file: None,
            extra_ca_pem: None,
            pinned_cert_sha256: None,
            http2: true,
            proxy: ProxyConfig::FromEnv,
            max_body_bytes: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Counters kept by a client, for tests, the bench and `--verbose`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Connections opened (each one a TCP connect and a TLS handshake).
    pub connections: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Requests that were resent.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// One request, described so the retry loop knows whether it may resend it.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    /// A path under the base URL (`droplets?tag_name=spuff`) or an absolute
    /// URL on the same host (a pagination link).
    pub(crate) target: String,
    pub(crate) body: Option<Vec<u8>>,
    /// The body's content type (JSON unless said otherwise).
    pub(crate) content_type: &'static str,
    /// What the answer may be (JSON unless said otherwise).
    pub(crate) accept: &'static str,
    /// How the operation is named in errors; the method and path when
    /// `None` (EC2 names its action instead: every call is `POST /`).
    pub(crate) name: Option<String>,
    /// Resend after failures that may have reached the server.
    pub(crate) idempotent: bool,
    /// What a 404 means (`droplet`, `42`).
    pub(crate) resource: Option<(&'static str, String)>,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, target: impl Into<String>) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        ApiRequest {
            method,
            target: target.into(),
            body: None,
            content_type: "application/json",
            accept: "application/json",
            name: None,
            idempotent,
            resource: None,
        }
    }

    pub(crate) fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }

    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    /// A form body (`application/x-www-form-urlencoded`), as EC2's Query
    /// API takes, under the operation name `name`, answered in XML.
    pub(crate) fn form(mut self, name: &str, body: String, content_type: &'static str) -> Self {
        self.body = Some(body.into_bytes());
        self.content_type = content_type;
        self.accept = "text/xml";
        self.name = Some(name.to_string());
        self
    }

    pub(crate) fn resource(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.resource = Some((kind, id.into()));
        self
    }

    fn operation(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let path = self.target.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

/// A successful (2xx) response.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) operation: String,
}

/// What a provider's error body said.
#[derive(Debug, Default)]
pub(crate) struct ErrorBody {
    pub(crate) code: Option<String>,
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

/// Where a provider's error body keeps its facts, as JSON pointers, and
/// which header carries the request id when the body does not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorShape {
    /// The API's error code (`/id`, `/error/code`).
    pub(crate) code: &'static str,
    /// The message (`/message`, `/error/message`).
    pub(crate) message: &'static str,
    /// The request id in the body, if the API puts it there.
    pub(crate) request_id: Option<&'static str>,
    /// The request id header (`x-request-id`, `x-correlation-id`).
    pub(crate) request_id_header: &'static str,
}

/// How a provider's failed answers become [`ProviderError`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorRules {
    /// A JSON body read through the shape; the HTTP status decides the kind
    /// (DigitalOcean, Hetzner).
    Json(ErrorShape),
    /// The provider reads status and body itself: EC2 answers in XML and
    /// says nearly everything with HTTP 400 and a code. Arguments: status,
    /// body, operation (`POST /`, `RunInstances`), and what a 404 concerns.
    Custom(Classify),
}

/// [`ErrorRules::Custom`]'s function: status, body, operation, and what a
/// not-found concerns.
pub(crate) type Classify = fn(&ErrorAnswer<'_>) -> ProviderError;

/// A failed answer, as an [`ErrorRules::Custom`] function reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorAnswer<'a> {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The status line's reason phrase when it is not the standard one:
    /// Proxmox puts its error message there (HTTP/1.1 only).
    pub(crate) reason: Option<&'a str>,
    /// The body, decoded.
    pub(crate) body: &'a [u8],
    /// What was asked (`POST /`, `RunInstances`).
    pub(crate) operation: &'a str,
    /// What a "not found" concerns, when the request says.
    pub(crate) resource: Option<(&'static str, &'a str)>,
}

impl From<ErrorShape> for ErrorRules {
    fn from(shape: ErrorShape) -> Self {
        ErrorRules::Json(shape)
    }
}

impl ErrorShape {
    /// Reads an error body. A body that is not the API's JSON (an HTML page
    /// from a proxy, plain text) is summarised, never dumped; text from the
    /// API is made terminal-safe.
    pub(crate) fn parse(&self, body: &[u8], headers: &HeaderMap) -> ErrorBody {
        let header_id = headers
            .get(self.request_id_header)
            .and_then(|v| v.to_str().ok())
            .map(|s| crate::util::terminal_safe(s).into_owned());
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let text = |pointer: &str| {
            json.as_ref()
                .and_then(|j| j.pointer(pointer))
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| crate::util::summarize_body(s.as_bytes()))
        };
        let message = match (&json, text(self.message)) {
            (_, Some(m)) => m,
            (Some(_), None) => "(no message)".into(),
            (None, None) => crate::util::summarize_body(body),
        };
        ErrorBody {
            code: text(self.code),
            message,
            request_id: self.request_id.and_then(text).or(header_id),
        }
    }
}

type Connector = CountingConnector<HttpsConnector<ProxyConnector>>;

/// The pooled client under both [`HttpClient`] and [`Fetcher`].
type Pooled = Client<Connector, Full<Bytes>>;

/// [`Auth`] made ready once: a header value, or the signer.
#[derive(Clone)]
enum AuthHeader {
    Value(HeaderValue),
    Signer(Arc<dyn RequestSigner>),
}

/// A pooled HTTPS client bound to one provider's base URL and token.
#[derive(Clone)]
pub(crate) struct HttpClient {
    provider: &'static str,
    client: Client<Connector, Full<Bytes>>,
    base: Uri,
    auth: AuthHeader,
    user_agent: HeaderValue,
    request_timeout: Duration,
    max_body: usize,
    retry: RetryPolicy,
    counters: Arc<Counters>,
    errors: ErrorRules,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is deliberately absent.
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client. `base_url` must be `https://` and end with the API
    /// version's path (`https://api.digitalocean.com/v2/`).
    pub(crate) fn new(
        provider: &'static str,
        base_url: &str,
        auth: &Auth,
        timeouts: &ProviderTimeouts,
        config: &HttpConfig,
        errors: impl Into<ErrorRules>,
    ) -> ProviderResult<Self> {
        let invalid = |field: &str, message: String| ProviderError::InvalidConfig {
            provider,
            field: field.into(),
            message,
        };
        if auth.is_missing() {
            return Err(ProviderError::Authentication {
                provider,
                message: "no API token given".into(),
            });
        }
        let mut base_text = base_url.trim().to_string();
        if !base_text.ends_with('/') {
            base_text.push('/');
        }
        let base: Uri = base_text
            .parse()
            .map_err(|e| invalid("base_url", format!("`{base_url}` is not a URL: {e}")))?;
        if base.scheme_str() != Some("https") || base.host().is_none() {
            return Err(invalid(
                "base_url",
                format!(
                    "`{base_url}` must be an https:// URL (the token must not travel in clear text)"
                ),
            ));
        }
        let header = |text: String| {
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                invalid(
                    "token",
                    "contains characters not allowed in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            Ok::<_, ProviderError>(AuthHeader::Value(value))
        };
        let auth = match auth {
            Auth::Bearer(t) => header(format!("Bearer {}", t.expose().trim()))?,
            Auth::PveApiToken(t) => header(format!("PVEAPIToken={}", t.expose().trim()))?,
            Auth::Signer(s) => AuthHeader::Signer(s.clone()),
        };
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| invalid("user_agent", "not a valid header value".into()))?;

        let (client, counters) = pooled_client(provider, config, timeouts.connect)?;
        Ok(HttpClient {
            provider,
            client,
            base,
            auth,
            user_agent,
            request_timeout: timeouts.request,
            max_body: config.max_body_bytes,
            retry: config.retry.clone(),
            counters,
            errors: errors.into(),
        })
    }

    pub(crate) fn stats(&self) -> HttpStats {
        HttpStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// The absolute URL of `target` (a path under the base), as a string:
    /// for a request made elsewhere (a VM's self-destroy).
    pub(crate) fn absolute_url(&self, target: &str) -> ProviderResult<String> {
        self.url(target).map(|u| u.to_string())
    }

    /// The absolute URL for a target, refusing links to other hosts so the
    /// token never leaves the API's origin.
    fn url(&self, target: &str) -> ProviderResult<Uri> {
        let text = if target.starts_with("https://") || target.starts_with("http://") {
            target.to_string()
        } else {
            format!("{}{}", self.base, target.trim_start_matches('/'))
        };
        let uri: Uri = text.parse().map_err(|e| ProviderError::InvalidResponse {
            provider: self.provider,
            operation: target.to_string(),
            message: format!("bad URL `{text}`: {e}"),
        })?;
        if uri.scheme() != self.base.scheme() || uri.authority() != self.base.authority() {
            return Err(ProviderError::InvalidResponse {
                provider: self.provider,
                operation: target.to_string(),
                message: format!(
                    "link to `{}` leaves the API host {}; not following it with the token",
                    uri.authority().map(|a| a.as_str()).unwrap_or_default(),
                    self.base
                        .authority()
                        .map(|a| a.as_str())
                        .unwrap_or_default()
                ),
            });
        }
        Ok(uri)
    }

    /// Sends `req`, resending it when that is safe and could help, within
    /// one total budget ([`RetryPolicy::total`]), and returns the 2xx
    /// response or the classified error.
    pub(crate) async fn send(&self, req: ApiRequest) -> ProviderResult<ApiResponse> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .with_max_times(self.retry.max_attempts.saturating_sub(1) as usize)
            .build();
        let started = Instant::now();
        let deadline = started + self.retry.total;
        let mut attempt = 1u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match self.send_once(&req, left).await {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            // A 429 was refused before processing: resending is safe for any
            // method. Anything else that may have reached the server is
            // resent only for idempotent requests, and only if another try
            // could change the outcome.
            let resend = match &err.error {
                ProviderError::RateLimit { .. } => true,
                e => req.idempotent && e.is_retryable(),
            };
            let out_of_time = |error: ProviderError| {
                // The budget, not one try, ran out: say how long in all.
                match error {
                    ProviderError::Timeout {
                        provider,
                        operation,
                        ..
                    } if attempt > 1 => ProviderError::Timeout {
                        provider,
                        operation,
                        elapsed: started.elapsed(),
                        last_seen: Some(format!("no answer to {attempt} tries")),
                    },
                    ProviderError::Network {
                        provider,
                        operation,
                        message,
                    } if attempt > 1 => ProviderError::Network {
                        provider,
                        operation,
                        message: format!(
                            "{message} (gave up after {attempt} tries in {})",
                            fmt_duration(started.elapsed())
                        ),
                    },
                    ProviderError::Api {
                        provider,
                        operation,
                        status,
                        code,
                        message,
                        request_id,
                    } if attempt > 1 => ProviderError::Api {
                        provider,
                        operation,
                        status,
                        code,
                        message: format!(
                            "{message} (gave up after {attempt} tries in {})",
                            fmt_duration(started.elapsed())
                        ),
                        request_id,
                    },
                    e => e,
                }
            };
            let Some(mut delay) = resend.then(|| backoff.next()).flatten() else {
                return Err(out_of_time(err.error));
            };
            if let Some(wait) = err.server_wait {
                if wait > self.retry.max_server_wait {
                    return Err(err.error);
                }
                delay = delay.max(wait);
            }
            if Instant::now() + delay >= deadline {
                return Err(out_of_time(err.error));
            }
            tracing::info!(
                provider = self.provider,
                operation = %req.operation(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err.error,
                "retrying provider request"
            );
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// The request as it goes on the wire: URL, headers, credentials.
    fn build(&self, req: &ApiRequest) -> ProviderResult<http::Request<Full<Bytes>>> {
        let uri = self.url(&req.target)?;
        let body = req.body.clone().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        headers.insert(header::ACCEPT, HeaderValue::from_static(req.accept));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        if req.body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(req.content_type),
            );
        }
        match &self.auth {
            AuthHeader::Value(v) => {
                headers.insert(header::AUTHORIZATION, v.clone());
            }
            AuthHeader::Signer(signer) => signer
                .sign(SignRequest {
                    method: &req.method,
                    uri: &uri,
                    headers: &mut headers,
                    body: &body,
                })
                .map_err(|message| ProviderError::InvalidConfig {
                    provider: self.provider,
                    field: "credentials".into(),
                    message,
                })?,
        }
        let mut request = http::Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::InvalidConfig {
                provider: self.provider,
                field: "request".into(),
                message: e.to_string(),
            })?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    async fn send_once(&self, req: &ApiRequest, budget: Duration) -> Result<ApiResponse, Failure> {
        let operation = req.operation();
        let request = self.build(req).map_err(Failure::from)?;

        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| transport_error(self.provider, &operation, &e))?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        ProviderError::ResponseTooLarge {
                            provider: self.provider,
                            operation: operation.clone(),
                            limit: self.max_body,
                        }
                    } else {
                        ProviderError::Network {
                            provider: self.provider,
                            operation: operation.clone(),
                            message: format!(
                                "reading the response body: {}",
                                error_chain(e.as_ref())
                            ),
                        }
                    }
                })?
                .to_bytes();
            Ok::<_, ProviderError>((parts, bytes))
        };
        let (parts, raw) =
            match tokio::time::timeout(self.request_timeout.min(budget), exchange).await {
                Ok(r) => r.map_err(Failure::from)?,
                Err(_) => {
                    return Err(Failure::from(ProviderError::Timeout {
                        provider: self.provider,
                        operation,
                        elapsed: started.elapsed(),
                        last_seen: None,
                    }));
                }
            };
        let body = self
            .decode(&parts.headers, raw, &operation)
            .map_err(Failure::from)?;
        tracing::trace!(
            provider = self.provider,
            %operation,
            status = parts.status.as_u16(),
            version = ?parts.version,
            bytes = body.len(),
            ms = started.elapsed().as_millis() as u64,
            "provider response"
        );
        if parts.status.is_success() {
            return Ok(ApiResponse {
                status: parts.status,
                body,
                operation,
            });
        }
        let reason = parts
            .extensions
            .get::<hyper::ext::ReasonPhrase>()
            .and_then(|r| std::str::from_utf8(r.as_bytes()).ok());
        Err(self.classify(req, parts.status, reason, &parts.headers, &body, operation))
    }

    /// Undoes `Content-Encoding: gzip`, keeping the size cap on the output.
    fn decode(&self, headers: &HeaderMap, raw: Bytes, operation: &str) -> ProviderResult<Bytes> {
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        if !gzip {
            return Ok(raw);
        }
        let mut out = Vec::with_capacity(raw.len() * 4);
        let limit = self.max_body as u64 + 1;
        flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| ProviderError::Network {
                provider: self.provider,
                operation: operation.to_string(),
                message: format!("bad gzip body: {e}"),
            })?;
        if out.len() > self.max_body {
            return Err(ProviderError::ResponseTooLarge {
                provider: self.provider,
                operation: operation.to_string(),
                limit: self.max_body,
            });
        }
        Ok(Bytes::from(out))
    }

    fn classify(
        &self,
        req: &ApiRequest,
        status: StatusCode,
        reason: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        operation: String,
    ) -> Failure {
        let shape = match self.errors {
            ErrorRules::Json(shape) => shape,
            ErrorRules::Custom(classify) => {
                let resource = req.resource.as_ref().map(|(kind, id)| (*kind, id.as_str()));
                return Failure::from(classify(&ErrorAnswer {
                    status: status.as_u16(),
                    reason,
                    body,
                    operation: &operation,
                    resource,
                }));
            }
        };
        let parsed = shape.parse(body, headers);
        let provider = self.provider;
        let code = parsed.code.clone().unwrap_or_default();
        let error = match status.as_u16() {
            401 => ProviderError::Authentication {
                provider,
                message: parsed.message,
            },
            403 if !code.contains("limit") => ProviderError::Authentication {
                provider,
                message: parsed.message,
            },
            404 => {
                let (resource, id) = req.resource.clone().unwrap_or(("resource", operation));
                ProviderError::NotFound {
                    provider,
                    resource,
                    id,
                }
            }
            429 => {
                let wait = server_wait(headers);
                return Failure {
                    error: ProviderError::RateLimit {
                        provider,
                        retry_after: wait,
                    },
                    server_wait: Some(wait.unwrap_or(Duration::ZERO)),
                };
            }
            _ if code.contains("limit_exceeded") || is_quota_message(&parsed.message) => {
                ProviderError::QuotaExceeded {
                    provider,
                    resource: req
                        .resource
                        .as_ref()
                        .map(|r| r.0.to_string())
                        .unwrap_or_else(|| "resources".into()),
                    message: parsed.message,
                }
            }
            s => ProviderError::Api {
                provider,
                operation,
                status: s,
                code: parsed.code,
                message: parsed.message,
                request_id: parsed.request_id,
            },
        };
        Failure::from(error)
    }
}

/// The pooled HTTPS client both [`HttpClient`] and [`Fetcher`] send
/// through: TLS ([`tls_config`]), the proxy, and counted, time-bounded
/// connects, set up in one place.
fn pooled_client(
    provider: &'static str,
    config: &HttpConfig,
    connect_timeout: Duration,
) -> ProviderResult<(Pooled, Arc<Counters>)> {
    let tls = tls_config(provider, config)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let proxy = ProxyConnector::new(http, &config.proxy);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let https = if config.http2 {
        builder.enable_all_versions().wrap_connector(proxy)
    } else {
        builder.enable_http1().wrap_connector(proxy)
    };
    let counters = Arc::new(Counters::default());
    let connector = CountingConnector {
        inner: https,
        counters: counters.clone(),
        timeout: connect_timeout,
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(4)
        .timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    Ok((client, counters))
}

/// A bare GET over the providers' HTTPS stack, for downloads (cloud images):
/// same TLS roots, proxy and connect timeout as [`HttpClient`], but no base
/// URL, no credentials, no retries, no gzip and no body cap. The body comes
/// back as a stream for the caller to bound and store; redirects are
/// returned as they are, for the caller to vet and follow.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: Client<Connector, Full<Bytes>>,
    user_agent: HeaderValue,
    counters: Arc<Counters>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the client; `what` names the caller in configuration errors
    /// (`cloud image`).
    pub(crate) fn new(
        what: &'static str,
        config: &HttpConfig,
        connect_timeout: Duration,
    ) -> ProviderResult<Self> {
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            ProviderError::InvalidConfig {
                provider: what,
                field: "user_agent".into(),
                message: "not a valid header value".into(),
            }
        })?;
        let (client, counters) = pooled_client(what, config, connect_timeout)?;
        Ok(Fetcher {
            client,
            user_agent,
            counters,
        })
    }

    /// Sends `GET uri` with `headers` (plus `User-Agent`) and returns the
    /// response head with its body unread, whatever the status.
    ///
    /// # Errors
    /// [`ProviderError::Tls`] when the server's certificate is refused,
    /// [`ProviderError::Network`] for any other transport failure (both
    /// name `what` as their provider).
    pub(crate) async fn get(
        &self,
        what: &'static str,
        uri: Uri,
        headers: HeaderMap,
    ) -> ProviderResult<http::Response<hyper::body::Incoming>> {
        let operation = format!("GET {uri}");
        let mut request = http::Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ProviderError::InvalidConfig {
                provider: what,
                field: "url".into(),
                message: e.to_string(),
            })?;
        *request.headers_mut() = headers;
        request
            .headers_mut()
            .insert(header::USER_AGENT, self.user_agent.clone());
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.client
            .request(request)
            .await
            .map_err(|e| transport_error(what, &operation, &e))
    }
}

fn is_quota_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("limit")
        && (m.contains("exceed") || m.contains("reached") || m.contains("would exceed"))
}

/// How long the API asked us to wait: `Retry-After` (seconds), else
/// `RateLimit-Reset` (a Unix time) minus now. Names are case-insensitive.
fn server_wait(headers: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = num("retry-after") {
        return Some(Duration::from_secs(secs));
    }
    let reset = num("ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

/// An error and, for a 429, the wait the API asked for.
struct Failure {
    error: ProviderError,
    server_wait: Option<Duration>,
}

impl From<ProviderError> for Failure {
    fn from(error: ProviderError) -> Self {
        Failure {
            error,
            server_wait: None,
        }
    }
}

/// Classifies a failed exchange: a TLS failure (an untrusted or invalid
/// certificate: another try cannot fix it) or a network failure (which may
/// pass).
fn transport_error(
    provider: &'static str,
    operation: &str,
    e: &(dyn std::error::Error + 'static),
) -> ProviderError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(inner) = source {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return ProviderError::Tls {
                provider,
                operation: operation.to_string(),
                message: tls.to_string(),
            };
        }
        // `io::Error::source` skips the error an io::Error wraps (it returns
        // that error's source), and hyper-rustls wraps tokio-rustls's
        // io::Error, which wraps the rustls::Error, in another: descend
        // through what each io::Error wraps.
        source = match inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped),
            None => inner.source(),
        };
    }
    ProviderError::Network {
        provider,
        operation: operation.to_string(),
        message: error_chain(e),
    }
}

/// The error and its sources on one line: hyper's top-level messages
/// ("client error (Connect)") say little without the chain.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// rustls with aws-lc-rs, trusting webpki roots, the platform's roots and any extra CA.
fn tls_config(provider: &'static str, config: &HttpConfig) -> ProviderResult<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let invalid = |field: &str, message: String| ProviderError::InvalidConfig {
        provider,
        field: field.into(),
        message,
    };
    if let Some(pin) = config.pinned_cert_sha256 {
        let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PinnedCert {
            sha256: pin,
            crypto: crypto.clone(),
        });
        return Ok(rustls::ClientConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("tls", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    if config.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if config.native_roots {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "skipping part of the platform certificate store");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "platform root certificates");
    }
    let mut add_pem = |pem: &[u8], origin: &str| -> ProviderResult<()> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid("ca_file", format!("{origin}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| invalid("ca_file", format!("{origin}: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(invalid(
                "ca_file",
                format!("{origin}: no PEM certificate found"),
            ));
        }
        Ok(())
    };
    if let Some(path) = &config.extra_ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| invalid("ca_file", format!("{}: {e}", path.display())))?;
        add_pem(&pem, &path.display().to_string())?;
    }
    if let Some(pem) = &config.extra_ca_pem {
        add_pem(pem.as_bytes(), "extra CA")?;
    }
    if roots.is_empty() {
        return Err(invalid(
            "ca_file",
            "no trusted root certificates: enable webpki or native roots, or give a CA file".into(),
        ));
    }
    let provider_crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider_crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tls)
}

/// Accepts the one server certificate whose SHA-256 is pinned (see
/// [`HttpConfig::pinned_cert_sha256`]); the handshake's signatures are
/// still checked against it, so only the holder of its key gets through.
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    crypto: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let seen: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if seen == self.sha256 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.crypto
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate fingerprint as Proxmox and browsers show it
/// (`AB:CD:…`, 32 bytes of hex, colons optional).
///
/// # Errors
/// Why it is not one.
pub fn parse_sha256_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| format!("`{text}` is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| format!("`{text}` is not a SHA-256 fingerprint (32 bytes)"))
}

/// Connects directly or through a CONNECT tunnel, per destination.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    matcher: Option<Arc<Matcher>>,
}

impl ProxyConnector {
    fn new(direct: HttpConnector, config: &ProxyConfig) -> Self {
        let matcher = match config {
            ProxyConfig::None => None,
            ProxyConfig::FromEnv => Some(Matcher::from_env()),
            ProxyConfig::Url { url, no_proxy } => Some(
                Matcher::builder()
                    .all(url.clone())
                    .no(no_proxy.clone())
                    .build(),
            ),
        };
        ProxyConnector {
            direct,
            matcher: matcher.map(Arc::new),
        }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.matcher.as_ref().and_then(|m| m.intercept(&dst));
        let mut direct = self.direct.clone();
        Box::pin(async move {
            match intercept {
                None => Ok(direct.call(dst).await?),
                Some(proxy) => {
                    if proxy.uri().scheme_str() == Some("https") {
                        return Err("TLS to the proxy itself (https:// proxy URL) is not supported; use http://".into());
                    }
                    tracing::debug!(proxy = %proxy.uri().authority().map(|a| a.as_str()).unwrap_or_default(), "tunnelling through proxy");
                    let mut tunnel = Tunnel::new(proxy.uri().clone(), direct);
                    if let Some(auth) = proxy.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    Ok(tunnel.call(dst).await?)
                }
            }
        })
    }
}

/// Counts connections and bounds the whole connect (TCP, proxy, TLS) in time.
#[derive(Clone)]
pub(crate) struct CountingConnector<C> {
    inner: C,
    counters: Arc<Counters>,
    timeout: Duration,
}

impl<C> Service<Uri> for CountingConnector<C>
where
    C: Service<Uri, Response = MaybeHttpsStream<TokioIo<TcpStream>>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let counters = self.counters.clone();
        let timeout = self.timeout;
        let fut = self.inner.call(dst);
        Box::pin(async move {
            counters.connections.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!("connect timed out after {}", fmt_duration(timeout)).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_error_wrapped_in_io_errors_should_be_tls() {
        // As hyper-rustls reports an untrusted certificate.
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        let e = transport_error("p", "GET x", &std::io::Error::other(io));
        assert!(matches!(e, ProviderError::Tls { .. }), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn reset_header_gives_wait() {
        let mut h = HeaderMap::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        h.insert("RateLimit-Reset", HeaderValue::from(now + 30));
        let w = server_wait(&h).unwrap_or_default();
        assert!(
            w >= Duration::from_secs(29) && w <= Duration::from_secs(30),
            "{w:?}"
        );
        h.insert("retry-after", HeaderValue::from(3u64));
        assert_eq!(server_wait(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn token_never_in_debug_and_http_base_refused() {
        let parse = ErrorShape {
            code: "/id",
            message: "/message",
            request_id: None,
            request_id_header: "x-request-id",
        };
        let cfg = HttpConfig {
            native_roots: false,
            ..HttpConfig::default()
        };
        let t = ProviderTimeouts::default();
        let c = HttpClient::new(
            "digitalocean",
            "https://api.example/v2",
            &Auth::Bearer(Secret::new("tok-123")),
            &t,
            &cfg,
            parse,
        );
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{c:?}").contains("tok-123"));
        let e = HttpClient::new(
            "digitalocean",
            "http://api.example/v2",
            &Auth::Bearer(Secret::new("t")),
            &t,
            &cfg,
            parse,
        );
        assert!(matches!(e, Err(ProviderError::InvalidConfig { .. })));
        assert!(c.url("https://evil.example/v2/droplets?page=2").is_err());
        assert!(c.url("droplets?page=2").is_ok());
    }

    fn client(auth: Auth) -> HttpClient {
        let cfg = HttpConfig {
            native_roots: false,
            ..HttpConfig::default()
        };
        let shape = ErrorShape {
            code: "/error/code",
            message: "/error/message",
            request_id: None,
            request_id_header: "x-correlation-id",
        };
        HttpClient::new(
            "test",
            "https://api.example/v1/",
            &auth,
            &ProviderTimeouts::default(),
            &cfg,
            shape,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn auth_should_become_the_right_header() {
        let req = ApiRequest::get("nodes");
        let c = client(Auth::PveApiToken(Secret::new("root@pam!spuff=1234-abcd")));
        let built = c.build(&req).unwrap_or_else(|e| panic!("{e}"));
        let h = built.headers().get(header::AUTHORIZATION);
        assert_eq!(
            h.and_then(|v| v.to_str().ok()),
            Some("PVEAPIToken=root@pam!spuff=1234-abcd")
        );
        assert!(h.is_some_and(HeaderValue::is_sensitive));
        let c = client(Auth::Bearer(Secret::new("t0k")));
        let built = c.build(&req).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            built
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer t0k")
        );
    }

    struct Stamp;

    impl RequestSigner for Stamp {
        fn sign(&self, r: SignRequest<'_>) -> Result<(), String> {
            if r.uri.path().contains("refuse") {
                return Err("cannot sign".into());
            }
            let v = format!("{} {} {}", r.method, r.uri.path(), r.body.len());
            r.headers.insert(
                "x-signed",
                HeaderValue::from_str(&v).map_err(|e| e.to_string())?,
            );
            Ok(())
        }
    }

    #[test]
    fn a_signer_should_see_method_url_and_body() {
        let c = client(Auth::Signer(Arc::new(Stamp)));
        let req = ApiRequest::new(Method::POST, "instances").json(&serde_json::json!({"a": 1}));
        let built = c.build(&req).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            built
                .headers()
                .get("x-signed")
                .and_then(|v| v.to_str().ok()),
            Some("POST /v1/instances 7")
        );
        assert!(built.headers().get(header::AUTHORIZATION).is_none());
        let e = c.build(&ApiRequest::get("refuse")).expect_err("refused");
        assert!(matches!(e, ProviderError::InvalidConfig { .. }), "{e}");
    }

    #[test]
    fn error_bodies_should_be_read_by_shape_and_summarised() {
        let shape = ErrorShape {
            code: "/error/code",
            message: "/error/message",
            request_id: None,
            request_id_header: "x-correlation-id",
        };
        let mut h = HeaderMap::new();
        h.insert("x-correlation-id", HeaderValue::from_static("c-1"));
        let e = shape.parse(br#"{"error":{"code":"locked","message":"m\u001b[2J"}}"#, &h);
        assert_eq!(e.code.as_deref(), Some("locked"));
        assert_eq!(e.message, "m\\x1b[2J");
        assert_eq!(e.request_id.as_deref(), Some("c-1"));
        let e = shape.parse(
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            &h,
        );
        assert!(
            e.message.starts_with("HTML page \"502 Bad Gateway\""),
            "{}",
            e.message
        );
        let e = shape.parse(
            br#"{"error":{"code":null,"message":null}}"#,
            &HeaderMap::new(),
        );
        assert_eq!((e.code, e.message.as_str()), (None, "(no message)"));
    }
}
