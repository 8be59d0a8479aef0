//! Small pieces every layer needs and none owns: a [`Secret`] that never
//! prints, "did you mean" [`suggest`]ions, human durations, and text from
//! outside (API bodies, VM names) made safe to show on a terminal.
//!
//! They live here rather than in `provider` or `ssh` so that neither layer
//! imports the other for a helper, and so the CLI and library agree on one
//! definition of each.

mod secret;
mod text;

pub use secret::Secret;
pub use text::{fmt_duration, suggest, summarize_body, terminal_safe};
