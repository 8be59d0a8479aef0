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
pub(crate) use super::http::ErrorShape;
use super::http::{ApiRequest, ApiResponse, Auth, HttpClient, RetryPolicy};
use super::info::ProviderInfo;
use super::types::{InstanceRequest, InstanceStatus, ProviderInstance, ProviderTimeouts, Skipped};

/// Declares a REST provider's `Client` (holding a [`Rest`]), its registry
/// `Factory`, `info()`, and its whole [`Provider`](super::Provider) impl:
/// the VM operations run through the engine's generic ones with the
/// module's [`VmResource`] and wire type; everything provider-specific
/// (snapshots, power, keys, sizes, regions, the create body, list filters)
/// is the module's [`Extras`] impl. Written once, so no provider module
/// repeats another.
macro_rules! rest_provider {
    (
        $(#[$doc:meta])*
        $kind:ident at $base:expr, VMs $wire:ty as $noun:literal in $collection:literal (stuck: $($stuck:ident),*);
        pages: $paging:expr;
        errors: $code:literal, $message:literal, $request_id:expr, $request_id_header:literal;
        actions: $done:literal | $failed:literal;
        statuses: $($($word:literal)|+ => $status:ident),+ $(,)?;
        snapshots: $snap_wire:ty as $snap_noun:literal in $snap_collection:literal listed at $snap_list:expr;
    ) => {
        /// The snapshot resource: listed at its own path, deleted at
        /// `collection/{id}`.
        const SNAPSHOTS: $crate::provider::engine::VmResource = $crate::provider::engine::VmResource {
            noun: $snap_noun,
            collection: $snap_collection,
            stuck: &[],
            paging: PAGING,
        };

        /// Where spuff's snapshots are listed.
        fn snapshots_path() -> String {
            $snap_list
        }

        /// How the lists page.
        const PAGING: $crate::provider::engine::Paging = $paging;

        /// The VM resource, for the engine's generic VM operations.
        const VMS: $crate::provider::engine::VmResource = $crate::provider::engine::VmResource {
            noun: $noun,
            collection: $collection,
            stuck: &[$($crate::provider::InstanceStatus::$stuck),*],
            paging: PAGING,
        };

        /// The action status words.
        const ACTIONS: $crate::provider::engine::ActionWords =
            $crate::provider::engine::ActionWords { done: $done, failed: $failed };

        /// The VM status words as spuff's.
        fn status_of(word: &str) -> $crate::provider::InstanceStatus {
            match word {
                $($($word)|+ => $crate::provider::InstanceStatus::$status,)+
                other => $crate::provider::InstanceStatus::Unknown(other.to_string()),
            }
        }

        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct Client {
            rest: $crate::provider::engine::Rest,
        }

        impl Client {
            /// A client for the account the token in `config` belongs to.
            ///
            /// # Errors
            /// A missing token, a non-https base URL, or an unreadable CA file.
            pub fn new(config: $crate::provider::ProviderConfig) -> $crate::provider::ProviderResult<Self> {
                let auth = $crate::provider::Auth::Bearer(config.token.clone());
                let errors = $crate::provider::engine::ErrorShape {
                    code: $code,
                    message: $message,
                    request_id: $request_id,
                    request_id_header: $request_id_header,
                };
                $crate::provider::engine::Rest::new(info(), &config, auth, $base, errors)
                    .map(|rest| Client { rest })
            }
        }

        /// Builds [`Client`]s for the registry.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct Factory;

        impl $crate::provider::ProviderFactory for Factory {
            fn info(&self) -> &'static $crate::provider::ProviderInfo {
                info()
            }

            fn create(
                &self,
                config: $crate::provider::ProviderConfig,
            ) -> $crate::provider::ProviderResult<std::sync::Arc<dyn $crate::provider::Provider>> {
                Ok(std::sync::Arc::new(Client::new(config)?))
            }
        }

        fn info() -> &'static $crate::provider::ProviderInfo {
            $crate::provider::ProviderType::$kind.info()
        }

        $crate::provider::engine::rest_provider_impl!(VMS, $wire, SNAPSHOTS, $snap_wire);
    };
}
pub(crate) use rest_provider;

/// The `Provider` impl of [`rest_provider!`].
macro_rules! rest_provider_impl {
    ($vms:expr, $wire:ty, $snaps:expr, $snap_wire:ty) => {
        #[async_trait::async_trait]
        impl $crate::provider::Provider for Client {
            fn info(&self) -> &'static $crate::provider::ProviderInfo {
                info()
            }

            fn arch_of_size(&self, size: &str) -> Option<$crate::agent_bin::Arch> {
                use $crate::provider::engine::Extras as _;
                self.size_arch(size)
            }

            async fn create_instance(
                &self,
                request: &$crate::provider::InstanceRequest,
            ) -> $crate::provider::ProviderResult<$crate::provider::ProviderInstance> {
                use $crate::provider::engine::Extras as _;
                if request.spot.is_some() {
                    return Err(self.unsupported("spot instances"));
                }
                if request.disk_gb.is_some() {
                    return Err(
                        self.unsupported("a disk size of its own (pick a size with a bigger disk)")
                    );
                }
                let body = self.create_body(request)?;
                let find = || self.find_by_spuff_id(&request.spuff_id);
                self.rest
                    .create_vm::<$wire, _, _>(&$vms, &body, request, find)
                    .await
            }

            async fn destroy_instance(&self, id: &str) -> $crate::provider::ProviderResult<()> {
                use $crate::provider::engine::Extras as _;
                self.rest.destroy_vm(&$vms, self.check_id(id)?).await
            }

            fn self_destroy_url(&self, id: &str) -> Option<String> {
                use $crate::provider::engine::Extras as _;
                let id = self.check_id(id).ok()?;
                self.rest
                    .http
                    .absolute_url(&format!("{}/{id}", $vms.collection))
                    .ok()
            }

            async fn get_instance(
                &self,
                id: &str,
            ) -> $crate::provider::ProviderResult<Option<$crate::provider::ProviderInstance>> {
                use $crate::provider::engine::Extras as _;
                self.rest.get_vm::<$wire>(&$vms, self.check_id(id)?).await
            }

            async fn list_instances(
                &self,
            ) -> $crate::provider::ProviderResult<$crate::provider::Listing> {
                use $crate::provider::engine::Extras as _;
                let query = self.vms_query($crate::provider::engine::Selector::Managed)?;
                self.rest.list_vms::<$wire>(&$vms, &query).await
            }

            async fn find_by_spuff_id(
                &self,
                spuff_id: &str,
            ) -> $crate::provider::ProviderResult<Vec<$crate::provider::ProviderInstance>> {
                use $crate::provider::engine::Extras as _;
                let query =
                    self.vms_query($crate::provider::engine::Selector::SpuffId(spuff_id))?;
                let listing = self.rest.list_vms::<$wire>(&$vms, &query).await?;
                Ok(listing
                    .instances
                    .into_iter()
                    .filter(|i| i.is_managed() && i.spuff_id() == Some(spuff_id))
                    .collect())
            }

            async fn wait_ready(
                &self,
                id: &str,
            ) -> $crate::provider::ProviderResult<$crate::provider::ProviderInstance> {
                self.rest
                    .wait_ready(id, $vms.noun, $vms.stuck, || self.get_instance(id))
                    .await
            }

            async fn create_snapshot(
                &self,
                instance_id: &str,
                name: &str,
            ) -> $crate::provider::ProviderResult<$crate::provider::Snapshot> {
                $crate::provider::engine::Extras::snapshot(self, instance_id, name).await
            }

            async fn list_snapshots(
                &self,
            ) -> $crate::provider::ProviderResult<Vec<$crate::provider::Snapshot>> {
                self.rest
                    .list_into::<$snap_wire, _>(&snapshots_path(), $snaps.collection, $snaps.paging)
                    .await
            }

            async fn delete_snapshot(&self, id: &str) -> $crate::provider::ProviderResult<()> {
                use $crate::provider::engine::Extras as _;
                // Gone is success, as for VMs.
                self.rest.destroy_vm(&$snaps, self.check_id(id)?).await
            }

            async fn power_off(&self, id: &str) -> $crate::provider::ProviderResult<()> {
                $crate::provider::engine::Extras::power(self, id, false).await
            }

            async fn power_on(&self, id: &str) -> $crate::provider::ProviderResult<()> {
                $crate::provider::engine::Extras::power(self, id, true).await
            }

            async fn list_ssh_keys(
                &self,
            ) -> $crate::provider::ProviderResult<Vec<$crate::provider::SshKeyInfo>> {
                $crate::provider::engine::Extras::ssh_keys(self).await
            }

            async fn ensure_ssh_key(
                &self,
                name: &str,
                public_key: &str,
            ) -> $crate::provider::ProviderResult<$crate::provider::SshKeyInfo> {
                $crate::provider::engine::Extras::import_ssh_key(self, name, public_key).await
            }

            async fn list_sizes(
                &self,
            ) -> $crate::provider::ProviderResult<Vec<$crate::provider::SizeInfo>> {
                $crate::provider::engine::Extras::sizes(self).await
            }

            async fn list_regions(
                &self,
            ) -> $crate::provider::ProviderResult<Vec<$crate::provider::RegionInfo>> {
                $crate::provider::engine::Extras::regions(self).await
            }

            fn http_stats(&self) -> $crate::provider::HttpStats {
                self.rest.http.stats()
            }
        }
    };
}
pub(crate) use rest_provider_impl;

/// Which VMs a listing asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selector<'a> {
    /// Every VM carrying [`MANAGED_LABEL`](super::MANAGED_LABEL).
    Managed,
    /// The VMs carrying this spuff id.
    SpuffId(&'a str),
}

/// A provider's VM resource, as the engine's generic VM operations need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VmResource {
    /// One VM, for messages and single-VM envelopes (`droplet`, `server`).
    pub(crate) noun: &'static str,
    /// The collection's path and listing key (`droplets`, `servers`).
    pub(crate) collection: &'static str,
    /// Statuses that will not become running by themselves.
    pub(crate) stuck: &'static [InstanceStatus],
    /// How the collection pages.
    pub(crate) paging: Paging,
}

/// What a REST provider module writes itself: everything that is not the
/// same for every provider.
#[async_trait::async_trait]
pub(crate) trait Extras {
    /// An id checked for use in a URL path.
    fn check_id<'a>(&self, id: &'a str) -> ProviderResult<&'a str>;
    /// [`Provider::arch_of_size`](super::Provider::arch_of_size): x86_64
    /// unless the provider has arm64 sizes.
    fn size_arch(&self, size: &str) -> Option<crate::agent_bin::Arch> {
        let _ = size;
        Some(crate::agent_bin::Arch::X86_64)
    }
    /// The create request's JSON body, labels included.
    fn create_body(&self, request: &InstanceRequest) -> ProviderResult<Value>;
    /// The listing path and query for `selector`.
    fn vms_query(&self, selector: Selector<'_>) -> ProviderResult<String>;
    /// [`Provider::create_snapshot`](super::Provider::create_snapshot).
    async fn snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<super::Snapshot>;
    /// [`Provider::power_on`](super::Provider::power_on) and off.
    async fn power(&self, id: &str, on: bool) -> ProviderResult<()>;
    /// [`Provider::list_ssh_keys`](super::Provider::list_ssh_keys).
    async fn ssh_keys(&self) -> ProviderResult<Vec<super::SshKeyInfo>>;
    /// [`Provider::ensure_ssh_key`](super::Provider::ensure_ssh_key).
    async fn import_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> ProviderResult<super::SshKeyInfo>;
    /// [`Provider::list_sizes`](super::Provider::list_sizes).
    async fn sizes(&self) -> ProviderResult<Vec<super::SizeInfo>>;
    /// [`Provider::list_regions`](super::Provider::list_regions).
    async fn regions(&self) -> ProviderResult<Vec<super::RegionInfo>>;
}

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

/// The status words a provider's actions end with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActionWords {
    /// Finished well (`completed`, `success`).
    pub(crate) done: &'static str,
    /// Finished in error (`errored`, `error`).
    pub(crate) failed: &'static str,
}

/// An action as DigitalOcean and Hetzner send it: an id, a status word and,
/// at Hetzner, an `error` object.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WireAction {
    id: IdText,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<WireActionError>,
}

#[derive(Debug, serde::Deserialize)]
struct WireActionError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `{"action": …}`, the answer to starting or fetching an action.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ActionEnvelope {
    pub(crate) action: WireAction,
}

impl WireAction {
    /// Only the status word decides: a running Hetzner action may already
    /// carry an `error` object that is not final.
    fn state(self, words: ActionWords) -> ActionState {
        let progress = if self.status == words.done {
            ActionProgress::Done
        } else if self.status == words.failed {
            ActionProgress::Failed(
                self.error
                    .as_ref()
                    .and_then(|e| e.message.clone().or_else(|| e.code.clone()))
                    .map(|m| format!("{}: {}", words.failed, crate::util::terminal_safe(&m)))
                    .unwrap_or_else(|| words.failed.to_string()),
            )
        } else {
            ActionProgress::Running
        };
        ActionState {
            id: self.id.0,
            progress,
            status: self.status,
        }
    }
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

    /// Every item under `key` on every page, read as the wire type `W` and
    /// converted to spuff's `T` (strict, as [`Rest::list_all`]).
    pub(crate) async fn list_into<W, T>(
        &self,
        path: &str,
        key: &str,
        paging: Paging,
    ) -> ProviderResult<Vec<T>>
    where
        W: DeserializeOwned + Into<T>,
    {
        Ok(self
            .list_all::<W>(path, key, paging)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
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

    /// Sends `req`, which starts an action (answered `{"action": …}`), and
    /// waits for the action to finish.
    pub(crate) async fn run_action(
        &self,
        req: ApiRequest,
        words: ActionWords,
        what: &str,
    ) -> ProviderResult<()> {
        let started: ActionEnvelope = self.json(req).await?;
        self.await_action(started.action, words, what).await
    }

    /// Waits for a started action, fetching it from `actions/{id}`.
    pub(crate) async fn await_action(
        &self,
        action: WireAction,
        words: ActionWords,
        what: &str,
    ) -> ProviderResult<()> {
        self.wait_action(action.state(words), what, |id| async move {
            let req = ApiRequest::get(format!("actions/{}", path_id(self.name(), &id)?))
                .resource("action", id.clone());
            Ok(self.json::<ActionEnvelope>(req).await?.action.state(words))
        })
        .await
        .map(drop)
    }

    /// Waits for an action to finish, fetching it again with `fetch(id)`.
    ///
    /// # Errors
    /// [`ProviderError::ActionFailed`] with the provider's detail, or
    /// [`ProviderError::Timeout`] after [`ProviderTimeouts::action`].
    async fn wait_action<F, Fut>(
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
    /// The create's error when the first one was refused. When an answer
    /// was lost, and every try failed or a resend was refused, and no VM
    /// was found: the lost create's error, and the caller must then treat
    /// the VM as one that may exist (the error
    /// [`is_retryable`](ProviderError::is_retryable)).
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
        // The error of a create whose answer was lost, once one was resent.
        let mut lost: Option<ProviderError> = None;
        loop {
            let err = match create().await {
                Ok(vm) => return Ok(vm),
                Err(e) if !e.is_retryable() => {
                    let Some(lost) = lost else { return Err(e) };
                    // A refused resend does not prove that nothing was made:
                    // the lost create may have made the VM (Hetzner refuses
                    // the resend's name as taken by it). Keep the error that
                    // says the VM may exist.
                    tracing::warn!(provider = self.name(), spuff_id = %request.spuff_id, error = %e,
                        "the resend of a lost create was refused; its VM may exist");
                    return Err(lost);
                }
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
            lost = Some(err);
            attempt += 1;
        }
    }

    /// Creates a VM (see [`Rest::create_then_find`]): POSTs `body`, with the
    /// request's user-data as `user_data` once checked against the
    /// provider's limit, to the collection and reads the `noun` envelope of
    /// the answer.
    pub(crate) async fn create_vm<W, L, LF>(
        &self,
        res: &VmResource,
        body: &Value,
        request: &InstanceRequest,
        find: L,
    ) -> ProviderResult<ProviderInstance>
    where
        W: DeserializeOwned + Into<ProviderInstance>,
        L: Fn() -> LF,
        LF: Future<Output = ProviderResult<Vec<ProviderInstance>>>,
    {
        let mut body = body.clone();
        if let Some(ud) = &request.user_data {
            let limit = self.info.user_data_limit;
            if ud.len() > limit {
                return Err(self.invalid(
                    "user_data",
                    format!(
                        "{} bytes; {} accepts at most {limit}",
                        ud.len(),
                        self.info.display_name
                    ),
                ));
            }
            body["user_data"] = Value::String(ud.clone());
        }
        let body = &body;
        let create = || async {
            // POST is not idempotent, so the HTTP layer resends it only after
            // a 429 (which the API refused before doing anything).
            let req = ApiRequest::new(http::Method::POST, res.collection)
                .json(body)
                .resource(res.noun, &request.name);
            let resp = self.http.send(req).await?;
            self.envelope::<W>(res, &resp).map(Into::into)
        };
        self.create_then_find(request, create, find).await
    }

    /// The VM with this (checked) id, or `None` on a 404.
    pub(crate) async fn get_vm<W>(
        &self,
        res: &VmResource,
        id: &str,
    ) -> ProviderResult<Option<ProviderInstance>>
    where
        W: DeserializeOwned + Into<ProviderInstance>,
    {
        let req = ApiRequest::get(format!("{}/{id}", res.collection)).resource(res.noun, id);
        match self.http.send(req).await {
            Ok(resp) => self.envelope::<W>(res, &resp).map(|w| Some(w.into())),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the VM (or snapshot) with this (checked) id; gone is success.
    pub(crate) async fn destroy_vm(&self, res: &VmResource, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(http::Method::DELETE, format!("{}/{id}", res.collection))
            .resource(res.noun, id);
        self.delete(req).await
    }

    /// The VMs at `query`, malformed entries skipped and reported.
    pub(crate) async fn list_vms<W>(
        &self,
        res: &VmResource,
        query: &str,
    ) -> ProviderResult<super::Listing>
    where
        W: DeserializeOwned + Into<ProviderInstance>,
    {
        let (vms, skipped) = self
            .list_lenient::<W>(query, res.collection, res.paging, res.noun)
            .await?;
        Ok(super::Listing {
            instances: vms.into_iter().map(Into::into).collect(),
            skipped,
        })
    }

    /// The `{"<noun>": {...}}` envelope of a single-VM answer.
    fn envelope<W: DeserializeOwned>(
        &self,
        res: &VmResource,
        resp: &ApiResponse,
    ) -> ProviderResult<W> {
        let mut body: Value = self.parse(resp)?;
        let vm = body
            .get_mut(res.noun)
            .map(Value::take)
            .unwrap_or(Value::Null);
        serde_json::from_value(vm).map_err(|e| ProviderError::InvalidResponse {
            provider: self.name(),
            operation: format!("{} (HTTP {})", resp.operation, resp.status.as_u16()),
            message: format!("`{}`: {e}", res.noun),
        })
    }

    /// Makes sure a public key is registered, never twice: looks it up by
    /// its MD5 fingerprint with `keys` (the account's keys, or a filtered
    /// listing), imports it with `import` if absent, and when the import is
    /// refused as a duplicate (`conflict`: another spuff imported it
    /// meanwhile) or its answer is lost, looks again.
    pub(crate) async fn ensure_key<K, KF>(
        &self,
        public_key: &str,
        keys: K,
        import: ApiRequest,
        conflict: u16,
    ) -> ProviderResult<super::SshKeyInfo>
    where
        K: Fn(String) -> KF,
        KF: Future<Output = ProviderResult<Vec<super::SshKeyInfo>>>,
    {
        let fingerprint = super::md5_fingerprint(public_key).ok_or_else(|| {
            self.invalid(
                "ssh_key",
                "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)",
            )
        })?;
        let find = || async {
            Ok::<_, ProviderError>(
                keys(fingerprint.clone())
                    .await?
                    .into_iter()
                    .find(|k| k.fingerprint.eq_ignore_ascii_case(&fingerprint)),
            )
        };
        if let Some(k) = find().await? {
            return Ok(k);
        }
        match self.json::<SshKeyEnvelope>(import).await {
            Ok(env) => Ok(env.ssh_key.into()),
            Err(e)
                if e.is_retryable()
                    || matches!(e, ProviderError::Api { status, .. } if status == conflict) =>
            {
                find().await?.ok_or(e)
            }
            Err(e) => Err(e),
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

/// The `image` field for a custom image or snapshot: an integer id when it
/// is a number, else the name or slug as given.
pub(crate) fn image_id(provider: &'static str, id: &str) -> ProviderResult<Value> {
    if id.is_empty() {
        return Err(ProviderError::InvalidConfig {
            provider,
            field: "image".into(),
            message: "empty image id".into(),
        });
    }
    Ok(match id.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(id),
    })
}

/// The fields every provider's VM starts with: its id, name and status
/// word (flattened into each provider's wire type). A `null` name or status
/// fails the entry, which a lenient listing then skips and reports.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct VmHead {
    pub(crate) id: IdText,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) status: String,
}

impl VmHead {
    /// The VM, reached at its public address (see
    /// [`ProviderInstance::cloud`]), with the status word read by the
    /// provider's `status_of`.
    pub(crate) fn into_instance(
        self,
        status_of: fn(&str) -> InstanceStatus,
        ips: (
            Option<std::net::Ipv4Addr>,
            Option<std::net::Ipv6Addr>,
            Option<std::net::Ipv4Addr>,
        ),
        labels: std::collections::BTreeMap<String, String>,
    ) -> ProviderInstance {
        ProviderInstance::cloud(self.id.0, self.name, status_of(&self.status), ips, labels)
    }
}

/// An account SSH key as DigitalOcean and Hetzner both send it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WireSshKey {
    id: IdText,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fingerprint: String,
}

impl From<WireSshKey> for super::SshKeyInfo {
    fn from(k: WireSshKey) -> Self {
        super::SshKeyInfo {
            id: k.id.0,
            name: k.name,
            fingerprint: k.fingerprint,
        }
    }
}

/// `{"ssh_key": …}`, the answer to a key import.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SshKeyEnvelope {
    pub(crate) ssh_key: WireSshKey,
}

/// Key or image ids: integers when they are numbers, else strings.
pub(crate) fn id_values(ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|k| match k.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(k.as_str()),
        })
        .collect()
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
