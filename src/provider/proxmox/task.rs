//! Proxmox tasks: the UPID an asynchronous call answers with, and how a
//! task's status says it ended.
//!
//! A UPID is `UPID:node:pid:pstart:starttime:type:id:user:` (hex numbers,
//! a trailing `:`); the task must be polled on the node the UPID names,
//! not the one the call went to. A stopped task's `exitstatus` is `OK`,
//! `WARNINGS: n` (also a success) or the error text.

use serde::Deserialize;

/// A parsed UPID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upid {
    /// The whole UPID as sent.
    pub(crate) text: String,
    /// The node that runs the task (where to poll it).
    pub(crate) node: String,
    pub(crate) pid: u32,
    pub(crate) pstart: u64,
    pub(crate) starttime: u32,
    /// The worker type (`qmclone`, `qmstart`, …).
    pub(crate) kind: String,
    /// Usually a VM id; for a clone, the **source** VM's.
    pub(crate) id: String,
    /// `user@realm`, or `user@realm!tokenid`.
    pub(crate) user: String,
}

impl Upid {
    /// Parses a UPID as pve-common's rule does; `None` for anything else
    /// (a proxmoxer-style suffix after the last `:` included).
    pub(crate) fn parse(text: &str) -> Option<Upid> {
        let rest = text.strip_prefix("UPID:")?.strip_suffix(':')?;
        let fields: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, kind, id, user] = fields.as_slice() else {
            return None;
        };
        let hex = |s: &str, lens: std::ops::RangeInclusive<usize>| {
            (lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        let node_ok = !node.is_empty()
            && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !node.starts_with('-')
            && !node.ends_with('-');
        let word = |s: &str, may_be_empty: bool| {
            (may_be_empty || !s.is_empty())
                && !s.bytes().any(|b| b == b'/' || b.is_ascii_whitespace())
        };
        if !node_ok || !word(kind, false) || !word(id, true) || !word(user, false) {
            return None;
        }
        Some(Upid {
            text: text.to_string(),
            node: node.to_string(),
            pid: u32::try_from(hex(pid, 8..=8)?).ok()?,
            pstart: hex(pstart, 8..=9)?,
            starttime: u32::try_from(hex(starttime, 8..=8)?).ok()?,
            kind: kind.to_string(),
            id: id.to_string(),
            user: user.to_string(),
        })
    }
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Still running.
    Running,
    /// Ended well (`OK`), or with this many warnings.
    Done { warnings: u32 },
    /// Ended in error, with Proxmox's text.
    Failed(String),
}

/// `GET /nodes/{node}/tasks/{upid}/status`'s `data`.
#[derive(Debug, Deserialize)]
pub(crate) struct TaskStatus {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    exitstatus: Option<String>,
}

impl TaskStatus {
    /// What the status says; an unknown `status` word counts as running
    /// (the wait is bounded by its timeout).
    pub(crate) fn state(&self) -> TaskState {
        if self.status.as_deref() != Some("stopped") {
            return TaskState::Running;
        }
        match self.exitstatus.as_deref().map(str::trim) {
            Some("OK") => TaskState::Done { warnings: 0 },
            Some(s) if s.starts_with("WARNINGS:") => TaskState::Done {
                warnings: s["WARNINGS:".len()..].trim().parse().unwrap_or(1),
            },
            Some(s) if !s.is_empty() => TaskState::Failed(s.to_string()),
            _ => TaskState::Failed("the task stopped without an exit status".into()),
        }
    }
}

/// One line of `GET /nodes/{node}/tasks/{upid}/log`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogLine {
    #[serde(default)]
    pub(crate) t: String,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn data(path: &str) -> Value {
        let path = format!("{}/tests/data/proxmox/{path}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn upids_should_parse_as_pve_commons_rule_does() {
        let v = data("encoding/upid-vectors.json");
        let vectors = v["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 16);
        for case in vectors {
            let text = case["upid"].as_str().unwrap();
            let parsed = Upid::parse(text);
            let valid = case["valid_for_pve_regex"].as_bool().unwrap();
            assert_eq!(parsed.is_some(), valid, "{text}");
            if let Some(u) = parsed {
                let d = &case["decoded"];
                assert_eq!(u.node, d["node"].as_str().unwrap(), "{text}");
                assert_eq!(u64::from(u.pid), d["pid"].as_u64().unwrap(), "{text}");
                assert_eq!(u.pstart, d["pstart"].as_u64().unwrap(), "{text}");
                assert_eq!(u64::from(u.starttime), d["starttime"].as_u64().unwrap());
                assert_eq!(u.kind, d["type"].as_str().unwrap());
                assert_eq!(u.id, d["id"].as_str().unwrap());
                assert_eq!(u.user, d["user"].as_str().unwrap());
            }
        }
    }

    #[test]
    fn task_statuses_should_say_how_the_task_ended() {
        let state = |file: &str| {
            let v = data(&format!(
                "reconstructed/GET_nodes_pve1_tasks_UPID_status.{file}.json"
            ));
            serde_json::from_value::<TaskStatus>(v["data"].clone())
                .unwrap()
                .state()
        };
        assert_eq!(state("running_clone"), TaskState::Running);
        assert_eq!(state("stopped_ok_clone"), TaskState::Done { warnings: 0 });
        assert_eq!(
            state("stopped_ok_start_ticket_user"),
            TaskState::Done { warnings: 0 }
        );
        assert_eq!(state("stopped_warnings"), TaskState::Done { warnings: 1 });
        assert_eq!(
            state("stopped_error_shutdown_timeout"),
            TaskState::Failed("VM quit/powerdown failed - got timeout".into())
        );
        // proxmoxer's bodies, whose UPIDs carry its routing suffix.
        for (file, want) in [
            ("proxmoxer__GET_task_status.running.json", None),
            ("proxmoxer__GET_task_status.stopped_ok.json", Some(true)),
            (
                "proxmoxer__GET_task_status.stopped_interrupted.json",
                Some(false),
            ),
        ] {
            let v = data(&format!("real-bodies/{file}"));
            let s = serde_json::from_value::<TaskStatus>(v["data"].clone()).unwrap();
            let got = match s.state() {
                TaskState::Running => None,
                TaskState::Done { .. } => Some(true),
                TaskState::Failed(_) => Some(false),
            };
            assert_eq!(got, want, "{file}");
            let upid = v["data"]["upid"].as_str().unwrap();
            assert!(
                Upid::parse(upid).is_none(),
                "proxmoxer's suffix is not a UPID: {upid}"
            );
        }
        // The UPID a clone answers names the source VM.
        let clone = data("reconstructed/POST_nodes_pve1_qemu_9000_clone.200.json");
        let u = Upid::parse(clone["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            (u.kind.as_str(), u.id.as_str(), u.node.as_str()),
            ("qmclone", "9000", "pve1")
        );
    }

    #[test]
    fn a_failed_tasks_log_should_end_with_its_error() {
        let v = data("reconstructed/GET_nodes_pve1_tasks_UPID_log.shutdown_error.json");
        let lines: Vec<LogLine> = serde_json::from_value(v["data"].clone()).unwrap();
        assert!(lines.last().unwrap().t.starts_with("TASK ERROR: "));
    }
}
