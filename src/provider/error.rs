//! The provider layer's error type.
//!
//! Each variant names the provider and carries the facts a user needs to act
//! (HTTP status, the API's own message and request id, how long we waited and
//! what state the VM was last seen in); its [`Hint`](crate::Hint) turns it into
//! one line of advice. Retry decisions are made on the variant, never on
//! message text: see [`ProviderError::is_retryable`].

use std::time::Duration;

use crate::util::fmt_duration;

/// A `Result` whose error is [`ProviderError`].
pub type ProviderResult<T, E = ProviderError> = std::result::Result<T, E>;

/// Errors from a cloud provider's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The API token was refused (HTTP 401/403), or none was given.
    #[error("{provider}: authentication failed: {message}")]
    Authentication {
        /// Provider name (`digitalocean`, `hetzner`).
        provider: &'static str,
        /// The API's message.
        message: String,
    },

    /// The API rate limit was hit and waiting was not possible or not allowed.
    #[error("{provider}: API rate limit exceeded{}", match retry_after {
        Some(d) => format!("; the API allows the next request in {}", fmt_duration(*d)),
        None => String::new(),
    })]
    RateLimit {
        /// Provider name.
        provider: &'static str,
        /// How long the API asked us to wait (`Retry-After` or the reset header).
        retry_after: Option<Duration>,
    },

    /// The resource does not exist (HTTP 404).
    #[error("{provider}: {resource} {id} not found")]
    NotFound {
        /// Provider name.
        provider: &'static str,
        /// Kind of resource (`droplet`, `snapshot`, `action`, …).
        resource: &'static str,
        /// The id we asked for.
        id: String,
    },

    /// An account limit was reached (droplet limit, snapshot limit, …).
    #[error("{provider}: quota exceeded for {resource}: {message}")]
    QuotaExceeded {
        /// Provider name.
        provider: &'static str,
        /// What ran out (`droplets`, `servers`, …), as far as the API says.
        resource: String,
        /// The API's message.
        message: String,
    },

    /// The request was refused before any traffic: bad option, unknown
    /// region/size/image name, unusable base URL or CA file.
    #[error("{provider}: invalid {field}: {message}")]
    InvalidConfig {
        /// Provider name.
        provider: &'static str,
        /// The option at fault (`region`, `size`, `base_url`, `ca_file`, …).
        field: String,
        /// What is wrong with it, possibly with suggestions.
        message: String,
    },

    /// An operation did not finish in time.
    #[error("{provider}: {operation} timed out after {}{}", fmt_duration(*elapsed), match last_seen {
        Some(s) => format!("; last seen: {s}"),
        None => String::new(),
    })]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// What we were doing (`GET /v2/droplets/42`, `waiting for droplet 42 to become active`).
        operation: String,
        /// How long we waited.
        elapsed: Duration,
        /// The last state observed, when polling (`status new, no public IPv4 yet`).
        last_seen: Option<String>,
    },

    /// The API answered with an error status not covered by a more specific variant.
    #[error("{provider}: {operation} failed with HTTP {status}{}: {message}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        request_id.as_deref().map(|r| format!(" [request id {r}]")).unwrap_or_default())]
    Api {
        /// Provider name.
        provider: &'static str,
        /// Method and path (`POST /v2/droplets`).
        operation: String,
        /// HTTP status code.
        status: u16,
        /// The API's error code (`unprocessable_entity`, `invalid_input`, …).
        code: Option<String>,
        /// The API's message, or the raw body when it was not JSON.
        message: String,
        /// The request id to quote to the provider's support.
        request_id: Option<String>,
    },

    /// The request did not complete: DNS, connect, TLS, proxy, or a dropped or truncated response.
    #[error("{provider}: {operation}: {message}")]
    Network {
        /// Provider name.
        provider: &'static str,
        /// Method and path.
        operation: String,
        /// The error chain, flattened.
        message: String,
    },

    /// TLS failed: the server's certificate is not trusted or not valid for
    /// the host. Never retried: another try meets the same certificate.
    #[error("{provider}: {operation}: TLS failed: {message}")]
    Tls {
        /// Provider name.
        provider: &'static str,
        /// Method and path.
        operation: String,
        /// What rustls reported.
        message: String,
    },

    /// The response was larger than spuff accepts. Never retried.
    #[error("{provider}: {operation}: the response is larger than {limit} bytes")]
    ResponseTooLarge {
        /// Provider name.
        provider: &'static str,
        /// Method and path.
        operation: String,
        /// The cap, in bytes.
        limit: usize,
    },

    /// The API answered 2xx with a body we could not understand.
    #[error("{provider}: unexpected response to {operation}: {message}")]
    InvalidResponse {
        /// Provider name.
        provider: &'static str,
        /// Method and path.
        operation: String,
        /// What did not parse.
        message: String,
    },

    /// The provider does not implement this operation.
    #[error("{provider} does not support {operation}")]
    Unsupported {
        /// Provider name.
        provider: &'static str,
        /// The operation.
        operation: &'static str,
    },

    /// An action on the provider's side (snapshot, power off, …) ended in error.
    #[error("{provider}: {operation} failed on the provider's side (action {action_id}: {status})")]
    ActionFailed {
        /// Provider name.
        provider: &'static str,
        /// What the action was for.
        operation: String,
        /// The provider's action id.
        action_id: String,
        /// The final action status (`errored`, `error: …`).
        status: String,
    },

    /// The provider has no capacity for this size where it was asked (EC2's
    /// `InsufficientInstanceCapacity`, sent as a 500). Not retried: it
    /// rarely passes within seconds, and another size, zone or region is
    /// the user's call.
    #[error("{provider}: {operation}: no capacity right now ({code}): {message}")]
    Capacity {
        /// Provider name.
        provider: &'static str,
        /// What spuff asked for.
        operation: String,
        /// The provider's code.
        code: String,
        /// The provider's message.
        message: String,
    },

    /// Something on this machine failed for a local VM: QEMU missing or too
    /// old, a disk that could not be made, a VM that did not boot.
    #[error("{provider}: {operation}: {message}{}", match detail {
        Some(d) => format!("\n{d}"),
        None => String::new(),
    })]
    Host {
        /// Provider name (`local`).
        provider: &'static str,
        /// What spuff was doing.
        operation: String,
        /// What went wrong.
        message: String,
        /// More lines the user needs to see (the end of the VM's console).
        detail: Option<String>,
        /// What the user can do about it.
        hint: Option<String>,
    },
}

impl ProviderError {
    /// The provider this error came from.
    pub fn provider(&self) -> &'static str {
        match self {
            ProviderError::Authentication { provider, .. }
            | ProviderError::RateLimit { provider, .. }
            | ProviderError::NotFound { provider, .. }
            | ProviderError::QuotaExceeded { provider, .. }
            | ProviderError::InvalidConfig { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::Api { provider, .. }
            | ProviderError::Network { provider, .. }
            | ProviderError::Tls { provider, .. }
            | ProviderError::ResponseTooLarge { provider, .. }
            | ProviderError::InvalidResponse { provider, .. }
            | ProviderError::Unsupported { provider, .. }
            | ProviderError::ActionFailed { provider, .. }
            | ProviderError::Capacity { provider, .. }
            | ProviderError::Host { provider, .. } => provider,
        }
    }

    /// Whether the same request could succeed later: rate limits, timeouts,
    /// network failures and server-side (5xx) errors. Whether it is *safe* to
    /// resend is a separate question the HTTP layer answers (creates are never
    /// resent blindly).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimit { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Network { .. } => true,
            ProviderError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// How long to wait before retrying, when the API said so or a sensible
    /// default exists.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimit { retry_after, .. } => {
                Some(retry_after.unwrap_or(Duration::from_secs(60)))
            }
            ProviderError::Timeout { .. } => Some(Duration::from_secs(5)),
            ProviderError::Network { .. } => Some(Duration::from_secs(2)),
            ProviderError::Api { status, .. } if *status >= 500 => Some(Duration::from_secs(5)),
            _ => None,
        }
    }
}

impl crate::Hint for ProviderError {
    /// One line of advice the user can act on.
    fn hint(&self) -> Option<String> {
        let aws_code = match self {
            ProviderError::Api {
                provider: "aws",
                code: Some(code),
                ..
            }
            | ProviderError::Capacity {
                provider: "aws",
                code,
                ..
            } => Some(code),
            _ => None,
        };
        if let Some(h) = aws_code.and_then(|c| super::aws::errors::hint(c)) {
            return Some(h);
        }
        Some(match self {
            // AWS takes no token: credentials come as the AWS CLI finds them.
            ProviderError::Authentication { provider: "aws", .. } => {
                "check the AWS credentials spuff found (`spuff config show` says where): \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for \
                 temporary ones), else the profile in ~/.aws/credentials (AWS_PROFILE or \
                 `spuff config set aws_profile NAME`); a key may be mistyped, inactive, or \
                 its session expired, and this machine's clock must be right (signatures \
                 expire after 5 minutes)"
                    .into()
            }
            ProviderError::Authentication { provider, .. } => {
                match super::ProviderInfo::by_canonical(provider) {
                    Some(info) => format!(
                        "give spuff a {} API token: {}; a token that is set may be mistyped, expired or lack write scope (tokens: {})",
                        info.display_name,
                        info.token_hint(),
                        info.token_url
                    ),
                    None => format!("check the {provider} credentials"),
                }
            }
            ProviderError::Tls { .. } => {
                "the API's certificate is not trusted here: behind a TLS-inspecting proxy, give its CA with SPUFF_CA_FILE".into()
            }
            ProviderError::ResponseTooLarge { .. } => {
                "the API (or a proxy in between) sent far more than expected; check SPUFF_API_URL and any proxy".into()
            }
            ProviderError::RateLimit { .. } => {
                "wait a minute and try again; another tool using the same token may be consuming the quota".into()
            }
            ProviderError::NotFound { resource, .. } => format!(
                "the {resource} may have been deleted outside spuff; run `spuff status` or `spuff ls` to refresh"
            ),
            ProviderError::QuotaExceeded { provider, .. } => format!(
                "destroy unused VMs or snapshots (`spuff ls`), or ask {provider} to raise the account limit"
            ),
            ProviderError::InvalidConfig { field, .. } => {
                format!("fix `{field}` in the command line or config file")
            }
            ProviderError::Timeout { .. } => {
                "the provider is slow or the VM failed to boot; check its console, then retry".into()
            }
            ProviderError::Api { status, provider, .. } if *status >= 500 => format!(
                "{provider} reported a server error; retry in a few minutes and check its status page"
            ),
            ProviderError::Api { request_id: Some(_), .. } => {
                "if this persists, quote the request id to the provider's support".into()
            }
            ProviderError::Network { .. } => {
                "check your network connection, proxy settings (HTTPS_PROXY/NO_PROXY) and firewall".into()
            }
            ProviderError::ActionFailed { provider, .. } => {
                format!("see the VM's history in the {provider} console for the reason")
            }
            ProviderError::Host { hint, .. } => return hint.clone(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hint;

    #[test]
    fn timeout_names_last_state() {
        let e = ProviderError::Timeout {
            provider: "digitalocean",
            operation: "waiting for droplet 7 to become active".into(),
            elapsed: Duration::from_secs(300),
            last_seen: Some("status new, no public IPv4 yet".into()),
        };
        let s = e.to_string();
        assert!(
            s.contains("digitalocean") && s.contains("5m00s") && s.contains("status new"),
            "{s}"
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn server_errors_retry_client_errors_do_not() {
        let api = |status| ProviderError::Api {
            provider: "digitalocean",
            operation: "GET /v2/x".into(),
            status,
            code: None,
            message: "m".into(),
            request_id: Some("r-1".into()),
        };
        assert!(api(503).is_retryable());
        assert!(!api(422).is_retryable());
        assert!(api(422).to_string().contains("request id r-1"));
        let auth = ProviderError::Authentication {
            provider: "digitalocean",
            message: "x".into(),
        };
        assert!(
            auth.hint()
                .unwrap_or_default()
                .contains("DIGITALOCEAN_TOKEN")
        );
        let tls = ProviderError::Tls {
            provider: "hetzner",
            operation: "GET /v1/servers".into(),
            message: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(!tls.is_retryable());
        assert!(tls.hint().unwrap_or_default().contains("SPUFF_CA_FILE"));
    }
}
