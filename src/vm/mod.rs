//! Putting local state and the provider's view of VMs side by side.
//!
//! spuff's promise is that no VM keeps billing unseen. Two things can break
//! it: a VM the provider has but local state lacks (spuff was killed between
//! the provider's answer and the state write, or state was lost), and a state
//! entry whose VM is gone (destroyed in the provider's console). [`reconcile`]
//! finds both, so `spuff list` can flag them and `spuff down` can act on them.
//!
//! The lifecycle steps are the other half of that promise, each a library
//! call that reports through one [`Observer`] and fails with a typed error
//! saying what exists:
//! - [`up`](up()): the whole creation flow, which records the VM before anything
//!   can fail;
//! - [`down`](down()): destroy every VM a record stands for (all that carry its
//!   spuff id), confirm with the provider that none remains, and only then
//!   forget the record; orphans are found by name ([`down::find_orphans`]);
//! - [`snapshot`](snapshot()): a provider snapshot of a recorded VM;
//! - [`gc::finished`]: which recorded VMs are powered off, past their
//!   lifetime or gone, for `spuff gc` to destroy after confirming;
//! - [`nuke`]: everything spuff made at a provider, found by its tag, for
//!   `spuff nuke` to delete after confirming.

mod agent_upload;
pub mod bootstrap;
pub mod down;
mod event;
pub mod gc;
pub mod nuke;
pub mod off;
pub mod snapshot;
pub mod up;

use std::net::IpAddr;

use serde::Serialize;

use crate::provider::{InstanceStatus, MANAGED_LABEL, ProviderInstance};
use crate::state::{Instance, Lifecycle};

#[doc(inline)]
pub use agent_upload::{
    AgentInstall, AgentPayload, arm_self_destroy, install_agent, install_uploaded_agent,
};
#[doc(inline)]
pub use down::down;
#[doc(inline)]
pub use event::{Event, Ignore, Observer};
#[doc(inline)]
pub use snapshot::snapshot;
#[doc(inline)]
pub use up::up;

/// Records where `vm` is reached: its public addresses and, through
/// `endpoint`, the SSH host (kept apart only when it differs from the public
/// address, as a local VM's forwarded port on 127.0.0.1 does), port and user.
/// `up` does it once the VM runs, `start` again after powering it on (a
/// local VM gets a new forwarded port).
pub fn apply_endpoint(
    record: &mut Instance,
    vm: &ProviderInstance,
    endpoint: &crate::provider::SshEndpoint,
) {
    record.ipv4 = vm.public_ipv4.map(IpAddr::V4);
    record.ipv6 = vm.public_ipv6.map(IpAddr::V6);
    let public = record.ipv4.or(record.ipv6);
    record.ssh_host = (public != Some(endpoint.host)).then_some(endpoint.host);
    record.ssh_port = endpoint.port;
    if let Some(user) = &endpoint.user {
        record.ssh_user = user.clone();
    }
}

/// Connecting to a recorded VM failed.
///
/// It exists for its hint: the host key pinned for a spuff VM is the one
/// spuff generated and put in the VM's user-data, kept in spuff's state, so
/// a refusal must not be explained as a stale `known_hosts` line.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {name}")]
#[non_exhaustive]
pub struct ConnectError {
    /// The VM's name.
    pub name: String,
    /// Why.
    #[source]
    pub source: crate::ssh::Error,
}

impl ConnectError {
    /// Wraps the SSH layer's error for the VM `name`.
    pub fn new(name: impl Into<String>, source: crate::ssh::Error) -> Self {
        ConnectError {
            name: name.into(),
            source,
        }
    }
}

impl crate::Hint for ConnectError {
    fn hint(&self) -> Option<String> {
        pinned_key_refused(&self.source, &self.name).or_else(|| crate::Hint::hint(&self.source))
    }
}

/// The hint for a host key refused although it was pinned from spuff's
/// state, if `error` is that refusal.
pub(crate) fn pinned_key_refused(error: &crate::ssh::Error, name: &str) -> Option<String> {
    use crate::ssh::{Error, KeySource};
    match error {
        Error::HostKeyChanged { expected, .. }
            if expected.iter().all(|k| k.source == KeySource::Pinned) =>
        {
            Some(format!(
                "the expected key is the host key spuff generated for {name} and put in its \
                 user-data (pinned from spuff's state, not from known_hosts): a different key means \
                 the VM did not boot with that user-data (an image or snapshot whose cloud-init \
                 ignores `ssh_keys`) or someone is intercepting the connection; do not trust it, \
                 destroy it with `spuff down {name}`"
            ))
        }
        Error::LoginTimeout { last, .. } => pinned_key_refused(last, name),
        _ => None,
    }
}

/// How a VM's local record and the provider's listing relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tracking {
    /// Both know it.
    Tracked,
    /// The provider has a spuff-labelled VM that local state lacks: it bills
    /// and nothing here manages it.
    Orphan,
    /// Local state has it, the provider does not: it was destroyed elsewhere.
    Gone,
    /// Local state has it but its provider was not asked (another provider,
    /// or `--local`) or could not be asked (unreachable, refused).
    Unchecked,
}

/// One row of `spuff list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The VM's name.
    pub name: String,
    /// The provider's name.
    pub provider: String,
    /// The provider's id (empty for a create that never got an answer).
    pub provider_id: String,
    /// How the two views relate.
    pub tracking: Tracking,
    /// What local state says, if it has the VM.
    pub local_status: Option<Lifecycle>,
    /// What the provider says, if it has the VM.
    pub provider_status: Option<String>,
    /// The best-known public address.
    pub ip: Option<IpAddr>,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// Whether it is the active instance.
    pub active: bool,
}

/// Joins local records with the provider's spuff-labelled VMs.
///
/// `remote` is the listing of the provider named `provider` (only VMs with
/// the [`MANAGED_LABEL`] count; others are not spuff's business). Local
/// records of other providers come back as [`Tracking::Unchecked`]. A local
/// record without a provider id (the create call's answer never arrived)
/// matches a remote VM by its spuff id (by name for records older than
/// spuff ids).
pub fn reconcile(
    local: &[Instance],
    active: Option<&str>,
    provider: &str,
    remote: &[ProviderInstance],
) -> Vec<Entry> {
    let remote: Vec<&ProviderInstance> = remote
        .iter()
        .filter(|r| r.labels.contains_key(MANAGED_LABEL))
        .collect();
    let mut used = vec![false; remote.len()];
    let mut out = Vec::new();
    for record in local {
        let is_active = active == Some(record.name.as_str());
        if record.provider != provider {
            out.push(entry_from_local(
                record,
                Tracking::Unchecked,
                None,
                is_active,
            ));
            continue;
        }
        let found = remote.iter().enumerate().position(|(i, r)| {
            !used[i]
                && if !record.provider_id.is_empty() {
                    r.id == record.provider_id
                } else if !record.spuff_id.is_empty() {
                    r.spuff_id() == Some(record.spuff_id.as_str())
                } else {
                    r.name == record.name
                }
        });
        match found {
            Some(i) => {
                used[i] = true;
                let r = remote[i];
                let mut e = entry_from_local(record, Tracking::Tracked, Some(&r.status), is_active);
                e.provider_id = r.id.clone();
                e.ip =
                    e.ip.or(r.public_ipv4.map(IpAddr::V4))
                        .or(r.public_ipv6.map(IpAddr::V6));
                out.push(e);
            }
            None => out.push(entry_from_local(record, Tracking::Gone, None, is_active)),
        }
    }
    for (i, r) in remote.iter().enumerate() {
        if used[i] {
            continue;
        }
        out.push(Entry {
            name: r.name.clone(),
            provider: provider.to_string(),
            provider_id: r.id.clone(),
            tracking: Tracking::Orphan,
            local_status: None,
            provider_status: Some(r.status.to_string()),
            ip: r
                .public_ipv4
                .map(IpAddr::V4)
                .or(r.public_ipv6.map(IpAddr::V6)),
            region: r.region.clone(),
            size: r.size.clone(),
            active: false,
        });
    }
    out
}

fn entry_from_local(
    record: &Instance,
    tracking: Tracking,
    remote_status: Option<&InstanceStatus>,
    active: bool,
) -> Entry {
    Entry {
        name: record.name.clone(),
        provider: record.provider.clone(),
        provider_id: record.provider_id.clone(),
        tracking,
        local_status: Some(record.status),
        provider_status: remote_status.map(|s| s.to_string()),
        ip: record.address(),
        region: record.region.clone(),
        size: record.size.clone(),
        active,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::util::Secret;

    fn local(name: &str, id: &str, provider: &str) -> Instance {
        Instance::new(
            name,
            provider,
            id,
            "fra1",
            "s-1",
            "img",
            "dev",
            "ssh-ed25519 AAAA",
            Secret::new("t"),
        )
    }

    fn remote(name: &str, id: &str, managed: bool) -> ProviderInstance {
        let mut labels = BTreeMap::new();
        if managed {
            labels.insert(MANAGED_LABEL.to_string(), String::new());
        }
        ProviderInstance {
            id: id.to_string(),
            name: name.to_string(),
            public_ipv4: Some("203.0.113.9".parse().unwrap()),
            public_ipv6: None,
            private_ipv4: None,
            status: InstanceStatus::Active,
            region: "fra1".to_string(),
            size: "s-1".to_string(),
            created_at: None,
            ssh: Some(crate::provider::SshEndpoint::new(
                "203.0.113.9".parse().unwrap(),
            )),
            labels,
        }
    }

    #[test]
    fn reconcile_should_flag_orphans_gone_and_unchecked() {
        let locals = [
            local("a", "1", "digitalocean"),
            local("b", "2", "digitalocean"),
            local("pending", "", "digitalocean"),
            local("h", "9", "hetzner"),
        ];
        let remotes = [
            remote("a", "1", true),
            remote("pending", "5", true),
            remote("stray", "7", true),
            remote("not-ours", "8", false),
        ];
        let rows = reconcile(&locals, Some("a"), "digitalocean", &remotes);
        let by = |n: &str| rows.iter().find(|r| r.name == n).unwrap().clone();
        assert_eq!(by("a").tracking, Tracking::Tracked);
        assert!(by("a").active);
        assert_eq!(by("b").tracking, Tracking::Gone);
        assert_eq!(by("pending").tracking, Tracking::Tracked);
        assert_eq!(by("pending").provider_id, "5");
        assert_eq!(by("pending").ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(by("h").tracking, Tracking::Unchecked);
        assert_eq!(by("stray").tracking, Tracking::Orphan);
        assert!(rows.iter().all(|r| r.name != "not-ours"));
        assert_eq!(rows.len(), 5);
    }
}
