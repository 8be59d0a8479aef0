//! One way to ask any of spuff's errors for advice: the [`Hint`] trait.
//!
//! Every error type of the library (SSH, provider, cloud-init, agent, state,
//! config, paths and the VM lifecycle) implements it, choosing its line by
//! variant, never by message text. A caller holding an error chain (an
//! `anyhow::Error`, or any `std::error::Error` and its sources) asks each
//! link with [`hint_of`] and shows the first answer: the outermost error
//! knows the most about what the user was doing (a host key refused while
//! `up` logs in to a new VM says more than the same refusal on its own), and
//! the lifecycle errors fall back to their source's hint.
//!
//! ```
//! use spuff::{Hint, hint_of};
//!
//! let e = spuff::state::Error::NoDefault { count: 0 };
//! assert_eq!(e.hint().as_deref(), Some("create one with `spuff up`"));
//! assert_eq!(hint_of(&e), e.hint());
//! ```

use std::error::Error as StdError;

/// Advice for an error: one line the user can act on, when there is one.
pub trait Hint {
    /// One line of advice, or `None` when the message says all there is.
    fn hint(&self) -> Option<String>;
}

/// The hint of `error` if it is one of spuff's error types, else `None`.
///
/// It looks at `error` alone; to search a chain, call it on each link
/// (`anyhow::Error::chain`, or [`chain_hint`]).
pub fn hint_of(error: &(dyn StdError + 'static)) -> Option<String> {
    macro_rules! first_of {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(e) = error.downcast_ref::<$ty>() {
                    return e.hint();
                }
            )*
        };
    }
    first_of!(
        crate::vm::up::Error,
        crate::vm::down::Error,
        crate::vm::snapshot::Error,
        crate::vm::ConnectError,
        crate::ssh::Error,
        crate::provider::ProviderError,
        crate::provider::local::image::Error,
        crate::cloudinit::Error,
        crate::agent::Error,
        crate::state::Error,
        crate::config::Error,
        crate::paths::Error,
    );
    None
}

/// The first hint offered by `error` or any of its sources, outermost first.
pub fn chain_hint(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(hint) = hint_of(e) {
            return Some(hint);
        }
        current = e.source();
    }
    None
}
