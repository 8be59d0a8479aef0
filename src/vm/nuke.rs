//! `nuke`: every resource spuff made at a provider, found by its label or
//! tag rather than by local state (which may be lost), deleted in the order
//! the provider needs, and reported one by one.
//!
//! The order is [`ResourceKind`]'s: VMs first (on EC2 a VM holds spuff's
//! security group until it has ended), then snapshots, security groups and
//! SSH keys. Within a kind, deletions run concurrently up to a bound; the
//! provider's throttling is waited out by the HTTP layer. A security group
//! in a region where a VM could not be deleted is left alone, as deleting
//! it could only wait for that VM and fail.

use std::collections::BTreeSet;

use futures::StreamExt as _;

use crate::provider::{Provider, ProviderError, ProviderResult, Resource, ResourceKind};
use crate::state::Store;

/// What could not be deleted, and why.
#[derive(Debug)]
pub struct NotDeleted {
    /// The resource.
    pub resource: Resource,
    /// Why: the provider's error, or `None` when it was left alone because
    /// a VM it depends on could not be deleted.
    pub error: Option<ProviderError>,
}

/// Everything spuff made at `provider` (in `region`, or everywhere), in the
/// order it must be deleted.
///
/// # Errors
/// Any listing that failed: a partial list would leave things billing.
pub async fn survey(
    provider: &dyn Provider,
    region: Option<&str>,
) -> ProviderResult<Vec<Resource>> {
    let mut found = provider.managed_resources(region).await?;
    found.sort_by_key(|r| r.kind);
    Ok(found)
}

/// Deletes `resources` kind by kind, `parallel` at a time within a kind,
/// calling `on_done` as each ends (`Ok` when deleted). A VM deleted here is
/// forgotten in `store` too, when it had a record. Returns what was not
/// deleted.
pub async fn delete_all(
    provider: &dyn Provider,
    resources: Vec<Resource>,
    parallel: usize,
    store: Option<&Store>,
    on_done: &(dyn Fn(&Resource, &ProviderResult<()>) + Sync),
) -> Vec<NotDeleted> {
    let kinds: BTreeSet<ResourceKind> = resources.iter().map(|r| r.kind).collect();
    let mut left = Vec::new();
    // Regions where a VM is still there: their security groups stay.
    let mut blocked: BTreeSet<Option<String>> = BTreeSet::new();
    for kind in kinds {
        let (now, held): (Vec<Resource>, Vec<Resource>) = resources
            .iter()
            .filter(|r| r.kind == kind)
            .cloned()
            .partition(|r| kind != ResourceKind::SecurityGroup || !blocked.contains(&r.region));
        left.extend(held.into_iter().map(|resource| NotDeleted {
            resource,
            error: None,
        }));
        let results: Vec<(Resource, ProviderResult<()>)> = futures::stream::iter(now)
            .map(|r| async move {
                let result = provider.delete_resource(&r).await;
                on_done(&r, &result);
                (r, result)
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        for (resource, result) in results {
            match result {
                Ok(()) => {
                    if resource.kind == ResourceKind::Vm
                        && let Some(store) = store
                    {
                        forget(store, provider.name(), &resource.id);
                    }
                }
                Err(error) => {
                    if resource.kind == ResourceKind::Vm {
                        blocked.insert(resource.region.clone());
                    }
                    left.push(NotDeleted {
                        resource,
                        error: Some(error),
                    });
                }
            }
        }
    }
    left
}

/// Removes the records of VM `id` at `provider`; a store that cannot be
/// read is left as it is (the VM is gone; `spuff list` will say so).
fn forget(store: &Store, provider: &str, id: &str) {
    let Ok(records) = store.list() else {
        return;
    };
    for r in records
        .iter()
        .filter(|r| r.provider == provider && r.provider_id == id)
    {
        let _ = store.remove(&r.name);
    }
}
