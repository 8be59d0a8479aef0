//! Activity and idleness: what resets the idle time, what holds the VM, the
//! warning to logged-in terminals and the idle action, through a recording
//! runner with a deadline of a second or two.

use std::time::{Duration, SystemTime};

use spuff_agent_api::{
    Activity, ActivityKind, AgentConfig, Heartbeat, IdleAction, StopReason, Timestamp, paths,
};

use crate::util::{Agent, eventually};

async fn activity(agent: &Agent) -> Activity {
    agent.get(paths::ACTIVITY).await.json()
}

async fn wait_idle(agent: &Agent, secs: u64) -> Activity {
    eventually(Duration::from_secs(15), "the VM to become idle", || async {
        let a = activity(agent).await;
        (a.idle_seconds >= secs).then_some(a)
    })
    .await
}

fn source(a: &Activity, kind: ActivityKind) -> &spuff_agent_api::ActivitySource {
    a.sources.iter().find(|s| s.kind == kind).expect("source")
}

#[tokio::test]
async fn heartbeat_should_reset_the_idle_time() {
    let agent = Agent::start().await;
    let before = wait_idle(&agent, 1).await;
    assert!(
        source(&before, ActivityKind::Heartbeat)
            .last_seen_seconds_ago
            .is_none()
    );

    assert_eq!(
        agent
            .post(paths::HEARTBEAT, serde_json::json!({}))
            .await
            .status,
        200
    );
    let after = activity(&agent).await;
    assert_eq!(after.idle_seconds, 0);
    assert_eq!(
        source(&after, ActivityKind::Heartbeat).last_seen_seconds_ago,
        Some(0)
    );
    assert_eq!(after.recent[0].kind, ActivityKind::Heartbeat);
    // It resets the idle time (an event); `holding` shows it while recent
    // so `status` can say a spuff command keeps the VM awake.
    assert_eq!(after.holding, [ActivityKind::Heartbeat]);
}

/// Observation never counts (issue 12): a forgotten `status --watch` or a
/// dashboard must not keep a VM alive.
#[tokio::test]
async fn read_only_requests_should_never_count_as_activity() {
    let agent = Agent::start().await;
    wait_idle(&agent, 1).await;
    for path in [
        paths::STATUS,
        paths::METRICS,
        paths::PROCESSES,
        paths::CLOUD_INIT,
        paths::ACTIVITY,
        "/logs?file=/var/log/none&lines=1",
    ] {
        let _ = agent.get(path).await;
    }
    let a = activity(&agent).await;
    assert!(a.idle_seconds >= 1, "idle reset by reading: {a:?}");
    assert!(
        a.recent
            .iter()
            .all(|e| e.kind != ActivityKind::AgentRequest),
        "{:?}",
        a.recent
    );
}

#[tokio::test]
async fn activity_should_report_the_deadline_and_action() {
    let agent = Agent::start_with(|o| {
        o.config.idle_timeout_secs = Some(3600);
        o.config.idle_action = IdleAction::None;
    })
    .await;
    let a = activity(&agent).await;
    assert_eq!(a.idle_timeout_seconds, Some(3600));
    assert_eq!(a.idle_action, IdleAction::None);
    assert!(a.action_in_seconds.is_some_and(|s| s <= 3600 && s > 3500));
    let kinds: Vec<ActivityKind> = a.sources.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            ActivityKind::SshTraffic,
            ActivityKind::SshSession,
            ActivityKind::Exec,
            ActivityKind::Heartbeat,
            ActivityKind::AgentRequest,
            ActivityKind::CpuLoad
        ]
    );
}

#[tokio::test]
async fn cpu_above_the_threshold_should_hold_the_vm() {
    // A threshold of 0% is met by any sample, however idle the machine.
    let agent = Agent::start_with(|o| o.config.cpu_busy_percent = 0.0).await;
    let a = eventually(Duration::from_secs(10), "a CPU sample", || async {
        let a = activity(&agent).await;
        a.holding.contains(&ActivityKind::CpuLoad).then_some(a)
    })
    .await;
    assert_eq!(a.idle_seconds, 0);
    assert!(source(&a, ActivityKind::CpuLoad).active);
    // `status` names what keeps the CPU busy (issue 12).
    #[cfg(unix)]
    {
        let a = eventually(Duration::from_secs(10), "the busiest processes", || async {
            let a = activity(&agent).await;
            source(&a, ActivityKind::CpuLoad)
                .detail
                .contains("%): ")
                .then_some(a)
        })
        .await;
        let detail = &source(&a, ActivityKind::CpuLoad).detail;
        assert!(detail.contains('%'), "{detail}");
    }
}

/// A running spuff command (its heartbeats) shows as holding the VM, so
/// `status` can say what keeps it awake.
#[tokio::test]
async fn a_recent_heartbeat_should_show_as_holding() {
    let agent = Agent::start().await;
    let a = activity(&agent).await;
    assert!(
        !a.holding.contains(&ActivityKind::Heartbeat),
        "{:?}",
        a.holding
    );
    agent.post(paths::HEARTBEAT, serde_json::json!({})).await;
    let a = activity(&agent).await;
    assert!(
        a.holding.contains(&ActivityKind::Heartbeat),
        "{:?}",
        a.holding
    );
    let s = source(&a, ActivityKind::Heartbeat);
    assert!(
        s.active && s.detail.contains("a spuff command is running"),
        "{s:?}"
    );
}

#[tokio::test]
async fn idle_action_should_fire_after_the_deadline() {
    let agent = Agent::start_with(|o| {
        o.config = AgentConfig {
            idle_timeout_secs: Some(1),
            idle_warning_secs: 0,
            ..o.config.clone()
        };
    })
    .await;
    let calls = eventually(Duration::from_secs(15), "the idle action", || async {
        let calls = agent.runner.calls();
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    assert_eq!(calls, [IdleAction::Poweroff]);
    // Once per idle period.
    wait_idle(&agent, 2).await;
    assert_eq!(agent.runner.calls().len(), 1);
    // Activity starts a new period, which ends with the action again.
    agent.post(paths::HEARTBEAT, serde_json::json!({})).await;
    eventually(Duration::from_secs(15), "the idle action again", || async {
        (agent.runner.calls().len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_ttl_should_power_off_a_vm_in_use_and_say_so_first() {
    let expires = Timestamp(SystemTime::now() + Duration::from_secs(2));
    let agent = Agent::start_with(|o| {
        o.config = AgentConfig {
            idle_timeout_secs: Some(3600),
            idle_action: IdleAction::None,
            expires_at: Some(expires),
            ..o.config.clone()
        };
        // The fake VM's kernel log, where the decision is announced.
        std::fs::create_dir_all(o.paths.kmsg.parent().expect("dev")).expect("mkdir");
        std::fs::write(&o.paths.kmsg, "").expect("kmsg");
    })
    .await;
    // A running command heartbeats: the answer names the coming stop.
    let hb: Heartbeat = agent
        .post(paths::HEARTBEAT, serde_json::json!({}))
        .await
        .json();
    let stop = hb.next_stop.expect("a planned stop");
    assert_eq!(
        (stop.reason, stop.action),
        (StopReason::Ttl, IdleAction::Poweroff)
    );
    assert!(stop.in_seconds <= 2);
    let a = activity(&agent).await;
    assert_eq!(
        a.expires_at.map(|t| t.to_string()),
        Some(expires.to_string())
    );
    assert_eq!(a.next_stop.map(|s| s.reason), Some(StopReason::Ttl));
    // In use all along, and with idle_action none: the TTL still powers off.
    let calls = eventually(Duration::from_secs(15), "the TTL action", || async {
        agent.post(paths::HEARTBEAT, serde_json::json!({})).await;
        let calls = agent.runner.calls();
        (!calls.is_empty()).then_some(calls)
    })
    .await;
    assert_eq!(calls, [IdleAction::Poweroff]);
    let kmsg = std::fs::read_to_string(agent.path("dev/kmsg")).expect("kmsg");
    assert_eq!(
        kmsg,
        format!(
            "<4>{}poweroff: its lifetime (up --ttl) ended at {expires}\n",
            spuff_agent_api::STOP_ANNOUNCE_PREFIX
        )
    );
}

#[tokio::test]
async fn idle_action_none_should_never_call_the_runner() {
    let agent = Agent::start_with(|o| {
        o.config = AgentConfig {
            idle_timeout_secs: Some(1),
            idle_action: IdleAction::None,
            ..o.config.clone()
        };
    })
    .await;
    let a = wait_idle(&agent, 2).await;
    assert_eq!(a.action_in_seconds, Some(0));
    assert!(agent.runner.calls().is_empty());
}

#[tokio::test]
async fn no_deadline_should_never_fire() {
    let agent = Agent::start().await;
    let a = wait_idle(&agent, 2).await;
    assert_eq!((a.idle_timeout_seconds, a.action_in_seconds), (None, None));
    assert!(agent.runner.calls().is_empty());
}

/// A fake session: a utmp record for a live process (this test process) on
/// `pts/7`, whose "terminal" is a regular file under the fake /dev.
#[cfg(unix)]
fn fake_session(agent: &Agent, last_input: SystemTime) -> std::path::PathBuf {
    let entry = spuff_agent::UtmpEntry {
        pid: i32::try_from(std::process::id()).expect("pid"),
        line: "pts/7".into(),
        user: "dev".into(),
        host: "203.0.113.9".into(),
        login_time: SystemTime::now() - Duration::from_secs(3600),
    };
    std::fs::write(&agent.paths.utmp, entry.to_bytes()).expect("utmp");
    let tty = agent.paths.dev_dir.join("pts/7");
    std::fs::create_dir_all(tty.parent().expect("parent")).expect("mkdir");
    std::fs::write(&tty, b"").expect("tty");
    set_last_input(&tty, last_input);
    tty
}

#[cfg(unix)]
fn set_last_input(tty: &std::path::Path, at: SystemTime) {
    let f = std::fs::File::options()
        .write(true)
        .open(tty)
        .expect("open tty");
    f.set_times(std::fs::FileTimes::new().set_accessed(at))
        .expect("set atime");
}

/// Reads the fake terminal without touching its access time, which the
/// agent takes for the session's last input.
#[cfg(target_os = "linux")]
fn read_terminal(tty: &std::path::Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let mut f = std::fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOATIME)
        .open(tty)
        .expect("open tty");
    let mut text = String::new();
    f.read_to_string(&mut text).expect("read tty");
    text
}

#[cfg(target_os = "linux")] // utmp, terminals, O_NOATIME.
#[tokio::test]
async fn warning_should_reach_logged_in_terminals_before_the_action() {
    // The monitor starts once the session is in place, so its first read of
    // utmp already has it.
    let agent = Agent::start_full(false, |o| {
        o.config = AgentConfig {
            idle_timeout_secs: Some(2),
            idle_warning_secs: 1,
            ..o.config.clone()
        };
    })
    .await;
    let tty = fake_session(&agent, SystemTime::now() - Duration::from_secs(3600));
    let _monitor = agent.state.start_monitor();

    let a = eventually(Duration::from_secs(10), "the session to show", || async {
        let a = activity(&agent).await;
        source(&a, ActivityKind::SshSession).active.then_some(a)
    })
    .await;
    assert_eq!(
        source(&a, ActivityKind::SshSession).detail,
        "1 session (dev on pts/7)"
    );
    assert!(
        a.holding.is_empty(),
        "an open session counts by its input, it does not hold"
    );

    let warning = eventually(
        Duration::from_secs(15),
        "the warning on the terminal",
        || async {
            let text = read_terminal(&tty);
            (!text.is_empty()).then_some(text)
        },
    )
    .await;
    assert!(
        warning.contains("spuff: this VM has been idle and will power off"),
        "{warning}"
    );
    eventually(Duration::from_secs(15), "the idle action", || async {
        (agent.runner.calls() == [IdleAction::Poweroff]).then_some(())
    })
    .await;
    assert_eq!(read_terminal(&tty), warning, "one warning per idle period");
}

#[cfg(unix)] // utmp and terminals.
#[tokio::test]
async fn terminal_input_should_reset_the_idle_time() {
    let agent = Agent::start().await;
    let tty = fake_session(&agent, SystemTime::now() - Duration::from_secs(3600));
    let a = eventually(Duration::from_secs(10), "the login", || async {
        let a = activity(&agent).await;
        a.recent
            .iter()
            .any(|e| e.detail == "login dev on pts/7")
            .then_some(a)
    })
    .await;
    assert_eq!(a.recent[0].kind, ActivityKind::SshSession);
    wait_idle(&agent, 1).await;

    set_last_input(&tty, SystemTime::now());
    eventually(Duration::from_secs(10), "the input to count", || async {
        let a = activity(&agent).await;
        (a.idle_seconds == 0 && a.recent[0].detail == "input dev on pts/7").then_some(())
    })
    .await;

    // Logging out is activity too, and the session is gone.
    std::fs::write(&agent.paths.utmp, b"").expect("utmp");
    let a = eventually(Duration::from_secs(10), "the logout", || async {
        let a = activity(&agent).await;
        (a.recent[0].detail == "logout dev on pts/7").then_some(a)
    })
    .await;
    assert!(!source(&a, ActivityKind::SshSession).active);
}

#[cfg(unix)] // utmp.
#[tokio::test]
async fn sessions_of_dead_processes_should_be_ignored() {
    let agent = Agent::start().await;
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");
    let entry = spuff_agent::UtmpEntry {
        pid: i32::try_from(dead_pid).expect("pid"),
        line: "pts/9".into(),
        user: "ghost".into(),
        host: String::new(),
        login_time: SystemTime::now(),
    };
    std::fs::write(&agent.paths.utmp, entry.to_bytes()).expect("utmp");
    // Several monitor rounds (50 ms each) pass while the VM idles.
    wait_idle(&agent, 1).await;
    let a = activity(&agent).await;
    assert!(!source(&a, ActivityKind::SshSession).active);
    assert!(a.recent.iter().all(|e| !e.detail.contains("ghost")));
}
