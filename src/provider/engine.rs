//! The mechanics every REST provider shares, written once: building the
//! client, parsing bodies, paging (with loop detection), polling actions and
//! VMs, create-then-find, and idempotent deletes.
//!
//! A provider module only describes its API: URLs, JSON shapes, status
//! names and how its pages link (see docs/adr/0014-provider-engine.md). The
//! promises spuff makes about what exists are kept here, so every provider
//! keeps them the same way:
//!
//! - a create whose answer was lost is looked up by its spuff id label for
//!   as long as the provider's listing may lag ([`ProviderTimeouts::create_lookup`])
//!   before anything is resent, so it never makes a second VM;
//! - a listing whose expected field is missing is an error, never "no VMs";
//!   one malformed entry is skipped and reported, never hiding the rest;
//! - a page that links back to a page already read ends the listing with an
//!   error instead of looping.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ProviderError, ProviderResult};
use super::factory::ProviderConfig;
use super::http::{ApiRequest, ApiResponse, Auth, ErrorShape, HttpClient, RetryPolicy};
use super::info::ProviderInfo;
use super::types::{InstanceRequest, InstanceStatus, ProviderInstance, ProviderTimeouts, Skipped};

/// How a provider's list endpoints link their pages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Paging {
    /// An absolute URL to the next page at this JSON pointer
    /// (DigitalOcean: `/links/pages/next`).
    NextLink(&'static str),
    /// `page`/`per_page` query parameters, with the next page number at
    /// this JSON pointer (Hetzner: `/meta/pagination/next_page`).
    PageNumber {
        /// Items per page.
        per_page: u32,
        /// Where the next page number is.
        next: &'static str,
    },
}

/// The most pages one listing may take: far beyond any real account, and a
/// bound on a server that keeps inventing new pages.
const MAX_PAGES: usize = 1000;

/// One state of something being polled.
pub(crate) enum Poll<T> {
    /// Finished.
    Done(T),
    /// Not yet; what was seen, for progress and the timeout error.
    Pending(String),
}

/// A provider action (snapshot, power off) as the engine tracks it.
#[derive(Debug, Clone)]
pub(crate) struct ActionState {
    /// The provider's action id.
    pub(crate) id: String,
    /// Where it stands.
    pub(crate) progress: ActionProgress,
    /// The provider's status word, for messages.
    pub(crate) status: String,
}

/// Where an action stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionProgress {
    /// Still running.
    Running,
    /// Finished well.
    Done,
    /// Finished in error, with the provider's detail.
    Failed(String),
}

/// One provider's HTTP client plus its facts and limits.
#[derive(Debug, Clone)]
pub(crate) struct Rest {
    pub(crate) http: HttpClient,
    pub(crate) info: &'static ProviderInfo,
    pub(crate) timeouts: ProviderTimeouts,
    pub(crate) retry: RetryPolicy,
}

impl Rest {
    /// A client for `info`'s API at `config.base_url` (or `default_base`).
    ///
    /// # Errors
    /// A missing credential, a non-https base URL, an unreadable CA file.
    pub(crate) fn new(
        info: &'static ProviderInfo,
        config: &ProviderConfig,
        auth: Auth,
        default_base: &str,
        errors: ErrorShape,
    ) -> ProviderResult<Self> {
        let base = config.base_url.as_deref().unwrap_or(default_base);
        let http = HttpClient::new(
            info.name,
            base,
            &auth,
            &config.timeouts,
            &config.http,
            errors,
        )?;
        Ok(Rest {
            http,
            info,
            timeouts: config.timeouts.clone(),
            retry: config.http.retry.clone(),
        })
    }

    /// The provider's canonical name.
    pub(crate) fn name(&self) -> &'static str {
        self.info.name
    }

    /// An [`ProviderError::InvalidConfig`] for `field`.
    pub(crate) fn invalid(&self, field: &str, message: impl Into<String>) -> ProviderError {
        ProviderError::InvalidConfig {
            provider: self.name(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A response body as `T`.
    pub(crate) fn parse<T: DeserializeOwned>(&self, resp: &ApiResponse) -> ProviderResult<T> {
        serde_json::from_slice(&resp.body).map_err(|e| ProviderError::InvalidResponse {
            provider: self.name(),
            operation: format!("{} (HTTP {})", resp.operation, resp.status.as_u16()),
            message: e.to_string(),
        })
    }

    /// Sends `req` and parses the answer as `T`.
    pub(crate) async fn json<T: DeserializeOwned>(&self, req: ApiRequest) -> ProviderResult<T> {
        let resp = self.http.send(req).await?;
        self.parse(&resp)
    }

    /// Sends `req` and parses the answer; a 404 is `None`.
    pub(crate) async fn json_optional<T: DeserializeOwned>(
        &self,
        req: ApiRequest,
    ) -> ProviderResult<Option<T>> {
        match self.json(req).await {
            Ok(v) => Ok(Some(v)),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a delete; a 404 is success (a resent delete whose first try
    /// went through sees it: gone is gone).
    pub(crate) async fn delete(&self, req: ApiRequest) -> ProviderResult<()> {
        match self.http.send(req).await {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The raw items under `key` on every page of `path`.
    ///
    /// # Errors
    /// A page without `key` (or with something other than a list there) is
    /// [`ProviderError::InvalidResponse`]: a 200 that lacks the list is not
    /// an empty account. So is a page link that was already followed.
    pub(crate) async fn list_raw(
        &self,
        path: &str,
        key: &str,
        paging: Paging,
    ) -> ProviderResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut target = match paging {
            Paging::NextLink(_) => path.to_string(),
            Paging::PageNumber { per_page, .. } => page_target(path, 1, per_page),
        };
        loop {
            if !seen.insert(target.clone()) || seen.len() > MAX_PAGES {
                return Err(ProviderError::InvalidResponse {
                    provider: self.name(),
                    operation: format!("GET {}", path.split('?').next().unwrap_or(path)),
                    message: format!(
                        "the pages of `{key}` loop back to one already read (after {} pages); not following",
                        seen.len()
                    ),
                });
            }
            let resp = self.http.send(ApiRequest::get(target.clone())).await?;
            let page: Value = self.parse(&resp)?;
            match page.get(key) {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                other => {
                    return Err(ProviderError::InvalidResponse {
                        provider: self.name(),
                        operation: resp.operation.clone(),
                        message: match other {
                            None => format!("the answer has no `{key}` list"),
                            Some(v) => format!("`{key}` is {} instead of a list", kind_of(v)),
                        },
                    });
                }
            }
            let next = match paging {
                Paging::NextLink(pointer) => page
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                Paging::PageNumber { per_page, next } => page
                    .pointer(next)
                    .and_then(Value::as_u64)
                    .map(|n| page_target(path, n, per_page)),
            };
            match next {
                Some(n) => target = n,
                None => return Ok(out),
            }
        }
    }

    /// Every item under `key` on every page, each as `T`; one that does not
    /// parse fails the whole listing (for lists whose every entry matters,
    /// such as SSH keys, where a guess is worse than an error).
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        paging: Paging,
    ) -> ProviderResult<Vec<T>> {
        self.list_raw(path, key, paging)
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v).map_err(|e| ProviderError::InvalidResponse {
                    provider: self.name(),
                    operation: format!("GET {}", path.split('?').next().unwrap_or(path)),
                    message: format!("an entry of `{key}`: {e}"),
                })
            })
            .collect()
    }

    /// Every item under `key`, each as `T`; one that does not parse is
    /// skipped and reported (with its id and name when those can be read),
    /// so one malformed VM does not hide the others.
    pub(crate) async fn list_lenient<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        paging: Paging,
        resource: &'static str,
    ) -> ProviderResult<(Vec<T>, Vec<Skipped>)> {
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for raw in self.list_raw(path, key, paging).await? {
            match T::deserialize(&raw) {
                Ok(item) => items.push(item),
                Err(e) => {
                    let field = |k: &str| match raw.get(k) {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    };
                    let skip = Skipped {
                        resource,
                        id: field("id"),
                        name: field("name"),
                        reason: e.to_string(),
                    };
                    // Callers show the skipped entries (`Listing::skipped`); this is
                    // for `-v`, not a second warning.
                    tracing::info!(provider = self.name(), entry = %skip, "skipping a malformed entry");
                    skipped.push(skip);
                }
            }
        }
        Ok((items, skipped))
    }

    /// Calls `step` until it is done, fast at first and slower later, for
    /// at most `limit`.
    ///
    /// # Errors
    /// [`ProviderError::Timeout`] naming what was last seen; `step`'s own
    /// errors end the wait unless they are retryable.
    pub(crate) async fn poll<T, F, Fut>(
        &self,
        operation: &str,
        limit: Duration,
        mut step: F,
    ) -> ProviderResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ProviderResult<Poll<T>>>,
    {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        loop {
            let last_seen = match step().await {
                Ok(Poll::Done(v)) => return Ok(v),
                Ok(Poll::Pending(seen)) => seen,
                Err(e) if e.is_retryable() => format!("error: {e}"),
                Err(e) => return Err(e),
            };
            let elapsed = start.elapsed();
            if elapsed >= limit {
                return Err(ProviderError::Timeout {
                    provider: self.name(),
                    operation: operation.to_string(),
                    elapsed,
                    last_seen: Some(last_seen),
                });
            }
            let delay = backoff.next().unwrap_or(self.timeouts.poll_max);
            tracing::trace!(provider = self.name(), operation, state = %last_seen, delay_ms = delay.as_millis() as u64, "polling");
            tokio::time::sleep(delay.min(limit - elapsed)).await;
        }
    }

    /// Waits for an action to finish, fetching it again with `fetch(id)`.
    ///
    /// # Errors
    /// [`ProviderError::ActionFailed`] with the provider's detail, or
    /// [`ProviderError::Timeout`] after [`ProviderTimeouts::action`].
    pub(crate) async fn wait_action<F, Fut>(
        &self,
        first: ActionState,
        what: &str,
        fetch: F,
    ) -> ProviderResult<ActionState>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = ProviderResult<ActionState>>,
    {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        let mut action = first;
        loop {
            match &action.progress {
                ActionProgress::Done => return Ok(action),
                ActionProgress::Failed(detail) => {
                    return Err(ProviderError::ActionFailed {
                        provider: self.name(),
                        operation: what.to_string(),
                        action_id: action.id.clone(),
                        status: detail.clone(),
                    });
                }
                ActionProgress::Running => {}
            }
            let elapsed = start.elapsed();
            if elapsed >= self.timeouts.action {
                return Err(ProviderError::Timeout {
                    provider: self.name(),
                    operation: what.to_string(),
                    elapsed,
                    last_seen: Some(format!("action {} {}", action.id, action.status)),
                });
            }
            let delay = backoff.next().unwrap_or(self.timeouts.poll_max);
            tokio::time::sleep(delay.min(self.timeouts.action - elapsed)).await;
            action = fetch(action.id.clone()).await?;
        }
    }

    /// Creates a VM without ever creating two.
    ///
    /// `create` sends the create once; `find` lists the VMs carrying the
    /// request's spuff id. A refused create returns its error (nothing was
    /// made). A create that may have reached the provider (a timeout, a
    /// dropped connection, a 5xx) is looked up with `find` for up to
    /// [`ProviderTimeouts::create_lookup`], because a listing may lag a
    /// create by seconds, and only then resent, with the same spuff id.
    ///
    /// # Errors
    /// The create's error when it was refused, or when every try failed
    /// and no VM was found; the caller must then treat the VM as one that
    /// may exist (the error [`is_retryable`](ProviderError::is_retryable)).
    pub(crate) async fn create_then_find<C, CF, L, LF>(
        &self,
        request: &InstanceRequest,
        create: C,
        find: L,
    ) -> ProviderResult<ProviderInstance>
    where
        C: Fn() -> CF,
        CF: Future<Output = ProviderResult<ProviderInstance>>,
        L: Fn() -> LF,
        LF: Future<Output = ProviderResult<Vec<ProviderInstance>>>,
    {
        if request.spuff_id.is_empty() {
            return Err(self.invalid(
                "spuff_id",
                "a create needs a spuff id to be found again if its answer is lost",
            ));
        }
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let err = match create().await {
                Ok(vm) => return Ok(vm),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            tracing::info!(provider = self.name(), spuff_id = %request.spuff_id, attempt, error = %err,
                "the create's answer was lost; looking for the VM by its spuff id before resending");
            let looked = self
                .poll(
                    "looking for the VM a lost create may have made",
                    self.timeouts.create_lookup,
                    || async {
                        let mut found = find().await?;
                        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
                        Ok(match found.into_iter().next() {
                            Some(vm) => Poll::Done(vm),
                            None => Poll::Pending("not listed yet".into()),
                        })
                    },
                )
                .await;
            match looked {
                Ok(vm) => {
                    tracing::info!(provider = self.name(), id = %vm.id, "the lost create did make the VM");
                    return Ok(vm);
                }
                Err(ProviderError::Timeout { .. }) => {}
                // Could not even look: unsure, so never resend.
                Err(_) => return Err(err),
            }
            if attempt >= attempts {
                return Err(err);
            }
            attempt += 1;
        }
    }

    /// Polls `get` until the VM is running with an SSH endpoint.
    ///
    /// `stuck` names statuses that will not become running by themselves
    /// (DigitalOcean's `archive`, a powered-off server); seeing one ends the
    /// wait at once. A VM not found right after its create is given a few
    /// polls to appear.
    pub(crate) async fn wait_ready<F, Fut>(
        &self,
        id: &str,
        resource: &'static str,
        stuck: &[InstanceStatus],
        get: F,
    ) -> ProviderResult<ProviderInstance>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ProviderResult<Option<ProviderInstance>>>,
    {
        let operation = format!("waiting for {resource} {id} to become running");
        let missing = AtomicU32::new(0);
        let (missing, operation_ref) = (&missing, &operation);
        self.poll(&operation, self.timeouts.instance_ready, || {
            let fut = get();
            let operation = operation_ref;
            async move {
                match fut.await? {
                    Some(vm) if vm.is_ready() => Ok(Poll::Done(vm)),
                    Some(vm) if stuck.contains(&vm.status) => Err(ProviderError::Api {
                        provider: self.name(),
                        operation: operation.clone(),
                        status: 200,
                        code: None,
                        message: format!(
                            "the {resource} is {} and will not become running by itself",
                            vm.status
                        ),
                        request_id: None,
                    }),
                    Some(vm) => Ok(Poll::Pending(vm.describe_state())),
                    None if missing.fetch_add(1, Ordering::Relaxed) < 3 => {
                        Ok(Poll::Pending("not found".into()))
                    }
                    None => Err(ProviderError::NotFound {
                        provider: self.name(),
                        resource,
                        id: id.to_string(),
                    }),
                }
            }
        })
        .await
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn page_target(path: &str, page: u64, per_page: u32) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}page={page}&per_page={per_page}")
}

/// Poll intervals: fast at first (a VM is often up in seconds), ×1.5 up to
/// `poll_max` so a slow boot does not burn the API's rate limit.
pub(crate) fn poll_backoff(t: &ProviderTimeouts) -> impl Iterator<Item = Duration> + use<> {
    ExponentialBuilder::default()
        .with_min_delay(t.poll_initial)
        .with_max_delay(t.poll_max.max(t.poll_initial))
        .with_factor(1.5)
        .without_max_times()
        .build()
}

/// An id that goes into a URL path: letters, digits and `-` (numbers and
/// UUIDs), nothing that could change the path.
pub(crate) fn path_id<'a>(provider: &'static str, id: &'a str) -> ProviderResult<&'a str> {
    if !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(id)
    } else {
        Err(ProviderError::InvalidConfig {
            provider,
            field: "id".into(),
            message: format!(
                "`{}` is not a {provider} id",
                crate::util::terminal_safe(id)
            ),
        })
    }
}

/// Percent-encodes a query value.
pub(crate) fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A JSON id that is a string or a number, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdText(pub(crate) String);

impl<'de> serde::Deserialize<'de> for IdText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if !s.is_empty() => Ok(IdText(s)),
            Value::Number(n) => Ok(IdText(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id, got {}",
                kind_of(&other)
            ))),
        }
    }
}
