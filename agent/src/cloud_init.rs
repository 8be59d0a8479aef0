//! `GET /cloud-init`: what cloud-init reports about this boot, from its own
//! files.
//!
//! cloud-init writes `/run/cloud-init/status.json` while it runs and
//! `/run/cloud-init/result.json` when it has finished (with the errors of
//! every stage), and touches `/var/lib/cloud/instance/boot-finished` at the
//! end of its final stage. Reading those files costs microseconds; the
//! `cloud-init status --format=json` command costs a Python start-up (about a
//! second on a small VM), so it is only asked when the files are missing. See
//! <https://docs.cloud-init.io/en/latest/reference/cli.html#status>.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use spuff_agent_api::{CloudInit, Timestamp};

/// The longest the `cloud-init status` fallback may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a `cloud-init status` answer is reused while cloud-init is still
/// running. Final states (`done`, `error`, `disabled`) are kept for good:
/// they cannot change during a boot.
const CLI_CACHE: Duration = Duration::from_secs(30);

/// Reads cloud-init's state, remembering the CLI fallback's answer so that
/// `GET /status` polled in a loop does not start a Python process each time.
#[derive(Debug)]
pub(crate) struct Reader {
    run_dir: PathBuf,
    lib_dir: PathBuf,
    cli: Option<PathBuf>,
    /// Also serialises CLI runs: 50 concurrent requests start one process.
    cli_cache: tokio::sync::Mutex<Option<(Instant, CloudInit)>>,
}

impl Reader {
    pub(crate) fn new(run_dir: PathBuf, lib_dir: PathBuf, cli: Option<PathBuf>) -> Self {
        Reader {
            run_dir,
            lib_dir,
            cli,
            cli_cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The current state: files first, then the (cached) CLI, else unknown.
    pub(crate) async fn read(&self) -> CloudInit {
        let (run, lib) = (self.run_dir.clone(), self.lib_dir.clone());
        let from_files = tokio::task::spawn_blocking(move || from_files(&run, &lib))
            .await
            .ok()
            .flatten();
        if let Some(state) = from_files {
            return state;
        }
        if let Some(cli) = &self.cli {
            let mut cache = self.cli_cache.lock().await;
            if let Some((at, state)) = cache.as_ref()
                && (state.done || at.elapsed() < CLI_CACHE)
            {
                return state.clone();
            }
            let state = from_cli(cli).await.unwrap_or_else(unknown);
            *cache = Some((Instant::now(), state.clone()));
            return state;
        }
        unknown()
    }
}

fn unknown() -> CloudInit {
    CloudInit {
        status: "unknown".into(),
        done: false,
        errors: Vec::new(),
        boot_finished: None,
    }
}

fn read_json(path: &Path) -> Option<Value> {
    let data = std::fs::read(path).ok()?;
    match serde_json::from_slice(&data) {
        Ok(v) => Some(v),
        Err(err) => {
            // Possibly caught mid-write; the next request reads it again.
            tracing::debug!(path = %path.display(), %err, "unreadable cloud-init file");
            None
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The state from cloud-init's files, or `None` if it left none.
fn from_files(run_dir: &Path, lib_dir: &Path) -> Option<CloudInit> {
    let boot_finished_path: PathBuf = lib_dir.join("instance").join("boot-finished");
    let boot_finished = std::fs::metadata(&boot_finished_path)
        .and_then(|m| m.modified())
        .ok()
        .map(Timestamp);

    if run_dir.join("disabled").exists() {
        return Some(CloudInit {
            status: "disabled".into(),
            done: true,
            errors: Vec::new(),
            boot_finished,
        });
    }
    if let Some(result) = read_json(&run_dir.join("result.json")) {
        let errors = strings(result.pointer("/v1/errors"));
        let status = if errors.is_empty() { "done" } else { "error" };
        return Some(CloudInit {
            status: status.into(),
            done: true,
            errors,
            boot_finished,
        });
    }
    if let Some(status) = read_json(&run_dir.join("status.json")) {
        let v1 = status.get("v1").and_then(Value::as_object);
        let mut errors = Vec::new();
        let mut started = false;
        for (_, stage) in v1.into_iter().flatten() {
            if let Some(stage) = stage.as_object() {
                errors.extend(strings(stage.get("errors")));
                started |= stage.get("start").is_some_and(|s| !s.is_null());
            }
        }
        let status = if started { "running" } else { "not started" };
        return Some(CloudInit {
            status: status.into(),
            done: false,
            errors,
            boot_finished,
        });
    }
    // Only the marker: an older cloud-init, or /run was cleared (a reboot
    // of an already provisioned VM).
    boot_finished.map(|t| CloudInit {
        status: "done".into(),
        done: true,
        errors: Vec::new(),
        boot_finished: Some(t),
    })
}

/// Asks `cloud-init status --format=json`.
async fn from_cli(cli: &Path) -> Option<CloudInit> {
    let mut cmd = tokio::process::Command::new(cli);
    cmd.args(["status", "--format=json"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // cloud-init exits non-zero for error/degraded states but still prints
    // its JSON, so the exit status is ignored.
    let output = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()?;
    let v: Value = serde_json::from_slice(&output.stdout).ok()?;
    let status = v.get("status")?.as_str()?.to_string();
    let done = matches!(status.as_str(), "done" | "error" | "disabled");
    let boot_finished = v
        .get("last_update")
        .and_then(Value::as_str)
        .and_then(parse_cli_time);
    Some(CloudInit {
        errors: strings(v.get("errors")),
        done,
        status,
        boot_finished: boot_finished.filter(|_| done),
    })
}

/// `last_update` looks like `Thu, 01 Jan 2024 00:05:00 +0000`; only the RFC
/// 3339 form is understood, anything else is left out.
fn parse_cli_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_should_keep_non_string_errors_as_json() {
        let v: Value = serde_json::json!(["a", {"b": 1}]);
        assert_eq!(
            strings(Some(&v)),
            vec!["a".to_string(), "{\"b\":1}".to_string()]
        );
    }
}
