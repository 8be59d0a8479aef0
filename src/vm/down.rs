//! `down`: destroy every VM a name stands for, make sure the provider no
//! longer reports any of them, and only then forget the record.
//!
//! What "every VM" means:
//! - a record with a spuff id stands for every VM carrying that id (a create
//!   resent after its first answer was lost can have made two), plus the
//!   VM its provider id names;
//! - a record from before spuff ids stands for the VM its provider id names,
//!   or, when the create was never answered, for the spuff-labelled VMs of
//!   its name that no other record claims;
//! - a name that local state does not know stands for its *orphans*: every
//!   spuff-labelled VM of that name that no record claims
//!   ([`find_orphans`], [`destroy_orphans`]). Names need not be unique at a
//!   provider, so there may be several.
//!
//! A destroy request being accepted is not the VM being gone. After the
//! requests, [`down`] polls the provider (each VM by id, and the lookup
//! again, which also catches a second VM whose listing lagged) until none
//! remains or [`Options::verify_timeout`] passes. Only a confirmed absence
//! forgets the record; otherwise the record stays (status
//! [`Lifecycle::Destroying`]) and [`Error::NotConfirmed`] says what is left.
//!
//! A record whose create was never answered ([`Lifecycle::Unconfirmed`], or
//! a `spuff up` killed during the create) is forgotten as
//! [`Outcome::NeverCreated`] only when the provider *answered* that no VM
//! carries its spuff id; when the provider cannot be asked, nothing is
//! claimed and the record stays ([`Error::Lookup`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::provider::{Provider, ProviderError, ProviderInstance, Snapshot};
use crate::state::{self, Instance, Lifecycle, Store};

use super::{Event, Observer};

/// How `down` goes about it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Snapshot the VM first, under this name (see
    /// [`snapshot::default_name`](super::snapshot::default_name)); nothing is
    /// destroyed if the snapshot fails.
    pub snapshot: Option<String>,
    /// How long to wait for the provider to stop reporting destroyed VMs
    /// (2 minutes).
    pub verify_timeout: Duration,
    /// The first pause between checks (1 s); it doubles up to
    /// [`Options::verify_poll_max`].
    pub verify_poll: Duration,
    /// The longest pause between checks (10 s).
    pub verify_poll_max: Duration,
    /// How long a provider's listing may lag a create (30 s, as
    /// [`ProviderTimeouts::create_lookup`](crate::provider::ProviderTimeouts::create_lookup)).
    /// A record still [`Creating`](Lifecycle::Creating) without a provider
    /// id (its `up` was stopped during the create call, which the provider
    /// may still carry out) is declared never created only once its spuff
    /// id has stayed absent this long after the record was written.
    pub listing_lag: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            snapshot: None,
            verify_timeout: Duration::from_secs(120),
            verify_poll: Duration::from_secs(1),
            verify_poll_max: Duration::from_secs(10),
            listing_lag: Duration::from_secs(30),
        }
    }
}

/// How a `down` ended well.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every VM was destroyed and the provider no longer reports any; the
    /// record (if any) was forgotten.
    Destroyed {
        /// The provider ids destroyed.
        ids: Vec<String>,
        /// The snapshots taken first.
        snapshots: Vec<Snapshot>,
    },
    /// The record's VM no longer exists at the provider (destroyed
    /// elsewhere); the record was forgotten.
    AlreadyGone,
    /// The record's create was never answered and the provider answered
    /// that no VM carries its spuff id: nothing was made. The record was
    /// forgotten.
    NeverCreated,
}

/// Errors from `down`. Each says whether anything was destroyed; a record
/// stays in local state unless the provider confirmed its VMs are gone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Local state could not be read or updated before anything was
    /// destroyed.
    #[error("cannot use local state for {name}")]
    State {
        /// The VM's name.
        name: String,
        /// Why.
        #[source]
        source: state::Error,
    },
    /// The provider could not be asked which VMs the name stands for:
    /// nothing was destroyed, and nothing is claimed about whether one
    /// exists.
    #[error("cannot ask {provider} which VMs {name} stands for; nothing was destroyed")]
    Lookup {
        /// The VM's name.
        name: String,
        /// The provider's name.
        provider: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The snapshot before the destroy failed: nothing was destroyed.
    #[error("the snapshot of {name} failed, so nothing was destroyed")]
    Snapshot {
        /// The VM's name.
        name: String,
        /// Why.
        #[source]
        source: super::snapshot::Error,
    },
    /// A destroy request failed.
    #[error("cannot destroy {name} ({provider} {id}){}", if *.recorded { "; it stays in local state" } else { "" })]
    Destroy {
        /// The VM's name.
        name: String,
        /// The provider's name.
        provider: String,
        /// The VM the request was for.
        id: String,
        /// Whether a local record stands for it (and was kept).
        recorded: bool,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The destroys were accepted, but the provider did not confirm within
    /// the wait that the VMs are gone (it still reports some, or could not
    /// be asked).
    #[error("{}{}",
        if .remaining.is_empty() {
            format!("{provider} accepted the destroy of {name}, but could not be asked whether it is gone")
        } else {
            format!("{provider} still reports {name} ({}) {} after accepting its destroy", .remaining.join(", "), crate::util::fmt_duration(*.waited))
        },
        if *.recorded { "; it stays in local state" } else { "" })]
    NotConfirmed {
        /// The VM's name.
        name: String,
        /// The provider's name.
        provider: String,
        /// The provider ids still reported (empty when the provider could
        /// not be asked).
        remaining: Vec<String>,
        /// How long we waited.
        waited: Duration,
        /// Whether a local record stands for them (and was kept).
        recorded: bool,
        /// The last error from asking, if asking failed.
        #[source]
        source: Option<ProviderError>,
    },
    /// The VMs are gone, but the record could not be removed.
    #[error("{name} was destroyed, but removing it from local state failed")]
    Forget {
        /// The VM's name.
        name: String,
        /// Why.
        #[source]
        source: state::Error,
    },
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::State { source, .. } | Error::Forget { source, .. } => source.hint(),
            Error::Lookup { source, name, .. } => source.hint().or_else(|| {
                Some(format!(
                    "run `spuff down {name}` again once the provider answers"
                ))
            }),
            Error::Snapshot { source, name } => source
                .hint()
                .or_else(|| Some(format!("retry, or destroy {name} without --snapshot"))),
            Error::Destroy { source, name, .. } => source
                .hint()
                .or_else(|| Some(format!("run `spuff down {name}` again"))),
            Error::NotConfirmed { name, .. } => Some(format!(
                "it may still bill: run `spuff down {name}` again to check and retry, or look in the provider's console"
            )),
        }
    }
}

/// A `Result` whose error is `down`'s [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Destroys every VM `record` stands for (see the module docs), verifies
/// with the provider that none remains, and forgets the record.
///
/// `provider` must be the record's provider. Reports [`Event::Found`],
/// then per VM [`Event::Destroying`], then [`Event::Verifying`],
/// [`Event::Destroyed`] and [`Event::Forgotten`] (and the snapshot's events
/// first when [`Options::snapshot`] is set).
///
/// # Errors
/// See [`Error`]: the record is kept unless the provider confirmed.
pub async fn down(
    provider: &dyn Provider,
    store: &Store,
    record: &Instance,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Outcome> {
    let name = record.name.as_str();
    let state_err = |source| Error::State {
        name: name.to_string(),
        source,
    };
    let finder = if !record.spuff_id.is_empty() {
        Finder::SpuffId(record.spuff_id.clone())
    } else if !record.provider_id.is_empty() {
        Finder::IdOnly
    } else {
        // A record from before spuff ids whose create was never answered.
        Finder::Name {
            name: name.to_string(),
            claimed: Claims::load(store, provider.name(), Some(name)).map_err(state_err)?,
        }
    };
    let forget_err = |source| Error::Forget {
        name: name.to_string(),
        source,
    };
    let lookup_err = |source| Error::Lookup {
        name: name.to_string(),
        provider: provider.name().to_string(),
        source,
    };
    let mut ids: Vec<String> = finder
        .find(provider)
        .await
        .map_err(lookup_err)?
        .into_iter()
        .map(|vm| vm.id)
        .collect();
    if !record.provider_id.is_empty()
        && !ids.contains(&record.provider_id)
        && provider
            .get_instance(&record.provider_id)
            .await
            .map_err(lookup_err)?
            .is_some()
    {
        ids.insert(0, record.provider_id.clone());
    }
    if ids.is_empty() && record.provider_id.is_empty() && record.status == Lifecycle::Creating {
        // The create call may still be under way at the provider: give its
        // listing the time it may lag before saying nothing was made.
        let mut delay = options.verify_poll;
        observer.event(Event::AwaitingCreate {
            name: name.to_string(),
            at_most: options
                .listing_lag
                .saturating_sub(record.created_at.elapsed()),
        });
        while ids.is_empty() {
            let left = options
                .listing_lag
                .saturating_sub(record.created_at.elapsed());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(options.verify_poll_max);
            ids = finder
                .find(provider)
                .await
                .map_err(lookup_err)?
                .into_iter()
                .map(|vm| vm.id)
                .collect();
        }
    }
    observer.event(Event::Found {
        name: name.to_string(),
        ids: ids.clone(),
    });
    if ids.is_empty() {
        // The provider answered: nothing carries this record's ids.
        forget(store, name, observer).map_err(forget_err)?;
        return Ok(if record.provider_id.is_empty() {
            Outcome::NeverCreated
        } else {
            Outcome::AlreadyGone
        });
    }

    let mut snapshots = Vec::new();
    if let Some(snapshot_name) = &options.snapshot {
        // The recorded VM if it is there, else the first found.
        let target = if ids.contains(&record.provider_id) {
            record.provider_id.as_str()
        } else {
            ids[0].as_str()
        };
        let s = super::snapshot::snapshot_id(provider, name, target, snapshot_name, observer)
            .await
            .map_err(|source| Error::Snapshot {
                name: name.to_string(),
                source,
            })?;
        snapshots.push(s);
    }

    let before = record.status;
    store
        .update(name, |i| i.status = Lifecycle::Destroying)
        .map_err(state_err)?;
    let ids = match destroy_and_verify(provider, name, ids, &finder, true, options, observer).await
    {
        Ok(ids) => ids,
        Err(e) => {
            if matches!(e, Error::Destroy { .. }) {
                // The request was refused: the record is as it was.
                let _ = store.update(name, |i| i.status = before);
            }
            return Err(e);
        }
    };
    forget(store, name, observer).map_err(forget_err)?;
    Ok(Outcome::Destroyed { ids, snapshots })
}

/// The spuff-labelled VMs named `name` at `provider` that no local record
/// claims (by provider id or spuff id): what `spuff down NAME` destroys when
/// state has no `NAME`. There may be several: names need not be unique.
///
/// # Errors
/// [`Error::State`], [`Error::Lookup`].
pub async fn find_orphans(
    provider: &dyn Provider,
    store: &Store,
    name: &str,
) -> Result<Vec<ProviderInstance>> {
    let claimed = Claims::load(store, provider.name(), None).map_err(|source| Error::State {
        name: name.to_string(),
        source,
    })?;
    Finder::Name {
        name: name.to_string(),
        claimed,
    }
    .find(provider)
    .await
    .map_err(|source| Error::Lookup {
        name: name.to_string(),
        provider: provider.name().to_string(),
        source,
    })
}

/// Destroys `orphans` (from [`find_orphans`]) and verifies with the
/// provider that none of them, nor another unclaimed VM of that name,
/// remains. With [`Options::snapshot`], each is snapshotted first (with its
/// id appended to the name when there are several).
///
/// # Errors
/// As [`down`]; there is no record to keep.
pub async fn destroy_orphans(
    provider: &dyn Provider,
    store: &Store,
    name: &str,
    orphans: &[ProviderInstance],
    options: &Options,
    observer: &dyn Observer,
) -> Result<Outcome> {
    let claimed = Claims::load(store, provider.name(), None).map_err(|source| Error::State {
        name: name.to_string(),
        source,
    })?;
    let ids: Vec<String> = orphans.iter().map(|vm| vm.id.clone()).collect();
    observer.event(Event::Found {
        name: name.to_string(),
        ids: ids.clone(),
    });
    let mut snapshots = Vec::new();
    if let Some(snapshot_name) = &options.snapshot {
        for id in &ids {
            let snapshot_name = if ids.len() > 1 {
                format!("{snapshot_name}-{id}")
            } else {
                snapshot_name.clone()
            };
            let s = super::snapshot::snapshot_id(provider, name, id, &snapshot_name, observer)
                .await
                .map_err(|source| Error::Snapshot {
                    name: name.to_string(),
                    source,
                })?;
            snapshots.push(s);
        }
    }
    let finder = Finder::Name {
        name: name.to_string(),
        claimed,
    };
    let ids = destroy_and_verify(provider, name, ids, &finder, false, options, observer).await?;
    Ok(Outcome::Destroyed { ids, snapshots })
}

/// Removes the record (the caller wraps a failure in [`Error::Forget`]).
fn forget(store: &Store, name: &str, observer: &dyn Observer) -> state::Result<()> {
    store.remove(name)?;
    observer.event(Event::Forgotten {
        name: name.to_string(),
    });
    Ok(())
}

/// How the VMs a name stands for are looked up again while verifying.
enum Finder {
    /// Every VM with this spuff id.
    SpuffId(String),
    /// The spuff-labelled VMs of this name that no record claims.
    Name { name: String, claimed: Claims },
    /// Only the ids already known (a record from before spuff ids).
    IdOnly,
}

impl Finder {
    async fn find(&self, provider: &dyn Provider) -> Result<Vec<ProviderInstance>, ProviderError> {
        match self {
            Finder::SpuffId(id) => provider.find_by_spuff_id(id).await,
            Finder::Name { name, claimed } => Ok(provider
                .list_instances()
                .await?
                .into_iter()
                .filter(|vm| vm.is_managed() && vm.name == *name && !claimed.claims(vm))
                .collect()),
            Finder::IdOnly => Ok(Vec::new()),
        }
    }
}

/// The provider ids and spuff ids local records hold for one provider: VMs
/// that are somebody's, so never an orphan.
struct Claims {
    ids: BTreeSet<String>,
    spuff_ids: BTreeSet<String>,
}

impl Claims {
    /// The claims of every record of `provider` except `except`.
    fn load(store: &Store, provider: &str, except: Option<&str>) -> state::Result<Claims> {
        let mut claims = Claims {
            ids: BTreeSet::new(),
            spuff_ids: BTreeSet::new(),
        };
        for record in store.list()? {
            if record.provider != provider || Some(record.name.as_str()) == except {
                continue;
            }
            if !record.provider_id.is_empty() {
                claims.ids.insert(record.provider_id);
            }
            if !record.spuff_id.is_empty() {
                claims.spuff_ids.insert(record.spuff_id);
            }
        }
        Ok(claims)
    }

    fn claims(&self, vm: &ProviderInstance) -> bool {
        self.ids.contains(&vm.id) || vm.spuff_id().is_some_and(|s| self.spuff_ids.contains(s))
    }
}

/// Sends a destroy for each of `ids`, then polls until the provider reports
/// none of them, destroying any further VM the finder turns up on the way.
/// Returns every id destroyed.
async fn destroy_and_verify(
    provider: &dyn Provider,
    name: &str,
    ids: Vec<String>,
    finder: &Finder,
    recorded: bool,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Vec<String>> {
    let mut destroyed: Vec<String> = Vec::new();
    let mut pending = ids;
    let mut started: Option<Instant> = None;
    let mut delay = options.verify_poll;
    loop {
        for id in std::mem::take(&mut pending) {
            if destroyed.contains(&id) {
                continue;
            }
            observer.event(Event::Destroying {
                name: name.to_string(),
                id: id.clone(),
            });
            provider
                .destroy_instance(&id)
                .await
                .map_err(|source| Error::Destroy {
                    name: name.to_string(),
                    provider: provider.name().to_string(),
                    id: id.clone(),
                    recorded,
                    source,
                })?;
            destroyed.push(id);
        }
        observer.event(Event::Verifying {
            name: name.to_string(),
            ids: destroyed.clone(),
        });
        // One deadline for the whole wait, however many rounds it takes.
        let started = *started.get_or_insert_with(Instant::now);
        loop {
            // Reported still there, and the last failure to ask (which
            // leaves a VM unknown, never gone).
            let mut remaining = Vec::new();
            let mut last_error = None;
            for id in &destroyed {
                match provider.get_instance(id).await {
                    Ok(None) => {}
                    Ok(Some(_)) => remaining.push(id.clone()),
                    Err(e) => last_error = Some(e),
                }
            }
            // The lookup again: a listing that lagged may show a VM now. One
            // already destroyed and still listed is judged by its own GET.
            match finder.find(provider).await {
                Ok(found) => pending.extend(
                    found
                        .into_iter()
                        .map(|vm| vm.id)
                        .filter(|id| !destroyed.contains(id)),
                ),
                Err(e) => last_error = Some(e),
            }
            if !pending.is_empty() {
                break;
            }
            if remaining.is_empty() && last_error.is_none() {
                observer.event(Event::Destroyed {
                    name: name.to_string(),
                    ids: destroyed.clone(),
                });
                return Ok(destroyed);
            }
            if started.elapsed() + delay > options.verify_timeout {
                return Err(Error::NotConfirmed {
                    name: name.to_string(),
                    provider: provider.name().to_string(),
                    remaining,
                    waited: started.elapsed(),
                    recorded,
                    source: last_error,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(options.verify_poll_max);
        }
    }
}
