//! One region's EC2 endpoint: Query requests signed with SigV4 over the
//! providers' shared HTTPS client, XML answers, EC2's error codes.
//!
//! Every provider shares the same pooled, retrying client (ADR 0010); EC2
//! differs in three places, all set here: requests are form POSTs to `/`
//! named by their action, signed per try ([`SigV4Signer`]), and failures
//! are classified by EC2's code rather than the HTTP status
//! ([`errors::from_response`]): `RequestLimitExceeded` arrives as 503 and is
//! retried with backoff for any action, as the HTTP client retries every
//! rate limit.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;

use super::credentials::Credentials;
use super::errors;
use super::query::{FORM, Query};
use super::sigv4::SigV4Signer;
use crate::provider::http::{ApiRequest, ErrorRules, HttpClient};
use crate::provider::{Auth, HttpConfig, ProviderError, ProviderResult, ProviderTimeouts};

/// A client for one region's EC2 endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Ec2Client {
    http: HttpClient,
}

impl Ec2Client {
    /// A client for `region`, at `https://ec2.REGION.amazonaws.com/` unless
    /// `endpoint` names another (a VPC endpoint, a test server).
    pub(crate) fn new(
        region: &str,
        endpoint: Option<&str>,
        credentials: Credentials,
        timeouts: &ProviderTimeouts,
        config: &HttpConfig,
    ) -> ProviderResult<Ec2Client> {
        // The region becomes part of a host name: nothing but what region
        // names are made of.
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ProviderError::InvalidConfig {
                provider: "aws",
                field: "region".into(),
                message: format!("`{region}` is not an AWS region name (like us-east-1)"),
            });
        }
        let base = match endpoint {
            Some(e) => e.to_string(),
            None => format!("https://ec2.{region}.amazonaws.com/"),
        };
        let signer = SigV4Signer::new(credentials, region, "ec2");
        let http = HttpClient::new(
            "aws",
            &base,
            &Auth::Signer(Arc::new(signer)),
            timeouts,
            config,
            ErrorRules::Custom(errors::classify),
        )?;
        Ok(Ec2Client { http })
    }

    /// The HTTP client underneath (its counters, the engine's polling).
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends `query` and returns the XML answer. `idempotent` lets the
    /// client resend after failures that may have reached EC2: true for
    /// every `Describe*`, and for creates that carry a `ClientToken`.
    /// `resource` names what a `*.NotFound` concerns.
    pub(crate) async fn call(
        &self,
        query: &Query,
        idempotent: bool,
        resource: Option<(&'static str, &str)>,
    ) -> ProviderResult<Bytes> {
        let mut req = ApiRequest::new(Method::POST, "").form(query.action(), query.body(), FORM);
        req.idempotent = idempotent;
        if let Some((kind, id)) = resource {
            req = req.resource(kind, id);
        }
        Ok(self.http.send(req).await?.body)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    use super::super::sigv4::{self, Request, Scope};
    use super::super::xml;
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// What the fake endpoint saw and what it answers next.
    #[derive(Default)]
    struct Fake {
        /// Answers to give before the real one: (status, body).
        before: Vec<(u16, String)>,
        /// (action, signature valid) per request.
        seen: Vec<(String, bool)>,
    }

    /// Checks a request's signature as EC2 does: recompute it from the
    /// signed headers as received and the shared secret.
    fn signature_valid(parts: &http::request::Parts, body: &[u8]) -> bool {
        let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
        let Some(auth) = header("authorization") else {
            return false;
        };
        let field = |name: &str| {
            auth.split([' ', ','])
                .find_map(|p| p.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        let (credential, signed, given) = (
            field("Credential="),
            field("SignedHeaders="),
            field("Signature="),
        );
        let mut scope = credential.splitn(5, '/').skip(1);
        let (Some(date), Some(region), Some(service)) = (scope.next(), scope.next(), scope.next())
        else {
            return false;
        };
        let headers: Vec<(String, String)> = signed
            .split(';')
            .map(|n| (n.to_string(), header(n).unwrap_or_default().to_string()))
            .collect();
        let canonical = sigv4::canonical_request(
            &Request {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &headers,
                body,
            },
            true,
        );
        let scope = Scope { region, service };
        let Some(amz_date) = header("x-amz-date") else {
            return false;
        };
        let sts = sigv4::string_to_sign(amz_date, &sigv4::scope_text(date, scope), &canonical.text);
        signed.contains("host") && sigv4::signature(SECRET, date, scope, &sts) == given
    }

    async fn start(fake: Arc<Mutex<Fake>>) -> (String, String) {
        // A CA and a certificate for 127.0.0.1, as the fake clouds do.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &issuer).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, fake) = (acceptor.clone(), fake.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<Incoming>| {
                            let fake = fake.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await?.to_bytes();
                                let valid = signature_valid(&parts, &body);
                                let action = String::from_utf8_lossy(&body)
                                    .split('&')
                                    .find_map(|p| p.strip_prefix("Action="))
                                    .unwrap_or_default()
                                    .to_string();
                                let mut f = fake.lock().unwrap();
                                f.seen.push((action, valid));
                                let (status, text) = if !valid {
                                    (
                                        401,
                                        error_body(
                                            "AuthFailure",
                                            "AWS was not able to validate the provided access credentials",
                                        ),
                                    )
                                } else if !f.before.is_empty() {
                                    f.before.remove(0)
                                } else {
                                    (200, include_str!("../../../tests/data/aws/ec2-xml/botocore/ec2-describe-regions.xml").to_string())
                                };
                                Ok::<_, hyper::Error>(
                                    http::Response::builder()
                                        .status(status)
                                        .header("content-type", "text/xml;charset=UTF-8")
                                        .body(Full::new(Bytes::from(text)))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (format!("https://127.0.0.1:{port}/"), ca_cert.pem())
    }

    fn error_body(code: &str, message: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
        )
    }

    fn client(endpoint: &str, ca: &str, secret: &str) -> Ec2Client {
        let mut config = HttpConfig {
            extra_ca_pem: Some(ca.to_string()),
            native_roots: false,
            proxy: crate::provider::ProxyConfig::None,
            ..HttpConfig::default()
        };
        config.retry.min_delay = Duration::from_millis(10);
        config.retry.max_delay = Duration::from_millis(50);
        let creds = Credentials::new("AKIDEXAMPLE", secret).with_session_token("token");
        Ec2Client::new(
            "us-east-1",
            Some(endpoint),
            creds,
            &ProviderTimeouts::default(),
            &config,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn signed_calls_should_pass_a_signature_check_and_survive_throttling() {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let (endpoint, ca) = start(fake.clone()).await;
        // Throttled twice (as EC2 does it: 503 and a code, no header).
        fake.lock().unwrap().before = vec![
            (
                503,
                error_body("RequestLimitExceeded", "Request limit exceeded."),
            ),
            (
                503,
                error_body("RequestLimitExceeded", "Request limit exceeded."),
            ),
        ];
        let ec2 = client(&endpoint, &ca, SECRET);
        let body = ec2
            .call(&Query::new("DescribeRegions"), true, None)
            .await
            .unwrap();
        let regions = xml::describe_regions(&body).unwrap();
        assert_eq!(regions.len(), 8);
        let seen = fake.lock().unwrap().seen.clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen.iter().all(|(a, ok)| a == "DescribeRegions" && *ok),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_should_fail_the_check_and_errors_should_carry_their_code() {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let (endpoint, ca) = start(fake.clone()).await;
        let wrong = client(&endpoint, &ca, "not-the-secret");
        let e = wrong
            .call(&Query::new("DescribeRegions"), true, None)
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
        assert!(e.to_string().contains("AuthFailure"), "{e}");
        assert_eq!(
            fake.lock().unwrap().seen,
            vec![("DescribeRegions".to_string(), false)]
        );

        let ec2 = client(&endpoint, &ca, SECRET);
        fake.lock().unwrap().before = vec![(
            400,
            error_body(
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient capacity",
            ),
        )];
        let e = ec2
            .call(&Query::new("RunInstances"), true, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::Capacity { code, operation, .. }
                if code == "InsufficientInstanceCapacity" && operation == "RunInstances"),
            "{e:?}"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_region_that_is_not_a_region_name_should_be_refused() {
        let creds = Credentials::new("AKIDEXAMPLE", SECRET);
        for bad in ["", "us-east-1.evil.com", "US-EAST-1", "a/b"] {
            let e = Ec2Client::new(
                bad,
                None,
                creds.clone(),
                &ProviderTimeouts::default(),
                &HttpConfig::default(),
            )
            .unwrap_err();
            assert!(
                matches!(e, ProviderError::InvalidConfig { .. }),
                "{bad}: {e:?}"
            );
        }
    }
}
