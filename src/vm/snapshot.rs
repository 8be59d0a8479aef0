//! `snapshot`: save a recorded VM's disk as a provider snapshot, and wait
//! until the provider says it is finished.
//!
//! Only a VM whose create was answered has an id to snapshot: a record still
//! [`Creating`](Lifecycle::Creating) or [`Unconfirmed`](Lifecycle::Unconfirmed)
//! is refused before any request. `down --snapshot` runs this first and
//! destroys nothing if it fails.

use crate::provider::{Provider, ProviderError, Snapshot};
use crate::state::{Instance, Lifecycle};

use super::{Event, Observer};

/// Errors from [`snapshot`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record has no provider id: the create was never answered.
    #[error("{name} has no provider id (status {status}): there is no VM to snapshot yet")]
    NoVm {
        /// The VM's name.
        name: String,
        /// Its recorded status.
        status: Lifecycle,
    },
    /// The provider did not make the snapshot.
    #[error("cannot snapshot {name} ({provider} {id})")]
    Provider {
        /// The VM's name.
        name: String,
        /// The provider's name.
        provider: String,
        /// The VM's provider id.
        id: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::NoVm {
                status: Lifecycle::Unconfirmed,
                name,
            } => Some(format!(
                "the create's answer was lost; `spuff list` asks the provider whether {name} exists"
            )),
            Error::NoVm { .. } => Some("wait for `spuff up` to finish".into()),
            Error::Provider { source, .. } => crate::Hint::hint(source),
        }
    }
}

/// The default snapshot name: `NAME-<UTC time>`, with `-` for `:` (some
/// providers refuse colons in names).
pub fn default_name(vm: &str) -> String {
    format!("{vm}-{}", crate::agent::api::Timestamp::now()).replace(':', "-")
}

/// Snapshots the VM `record` stands for, as `snapshot_name`, and waits for
/// the provider to finish it.
///
/// Reports [`Event::Snapshotting`] then [`Event::Snapshotted`].
///
/// # Errors
/// [`Error::NoVm`] for a record without a provider id, [`Error::Provider`]
/// when the provider refuses or the snapshot fails (including
/// [`ProviderError::Unsupported`]).
pub async fn snapshot(
    provider: &dyn Provider,
    record: &Instance,
    snapshot_name: &str,
    observer: &dyn Observer,
) -> Result<Snapshot, Error> {
    if record.provider_id.is_empty() {
        return Err(Error::NoVm {
            name: record.name.clone(),
            status: record.status,
        });
    }
    snapshot_id(
        provider,
        &record.name,
        &record.provider_id,
        snapshot_name,
        observer,
    )
    .await
}

/// [`snapshot`] of the VM with provider id `id`, reported under `name`.
pub(crate) async fn snapshot_id(
    provider: &dyn Provider,
    name: &str,
    id: &str,
    snapshot_name: &str,
    observer: &dyn Observer,
) -> Result<Snapshot, Error> {
    observer.event(Event::Snapshotting {
        name: name.to_string(),
        snapshot: snapshot_name.to_string(),
    });
    let snapshot = provider
        .create_snapshot(id, snapshot_name)
        .await
        .map_err(|source| Error::Provider {
            name: name.to_string(),
            provider: provider.name().to_string(),
            id: id.to_string(),
            source,
        })?;
    observer.event(Event::Snapshotted {
        name: name.to_string(),
        snapshot: snapshot.clone(),
    });
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_should_have_no_colons() {
        let n = default_name("box");
        assert!(n.starts_with("box-") && !n.contains(':'), "{n}");
    }
}
