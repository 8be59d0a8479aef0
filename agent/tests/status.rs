//! `GET /status` and `GET /cloud-init`: the bootstrap status file and
//! cloud-init's own files, in every state they can be in.

use std::time::{Duration, SystemTime};

use spuff_agent_api::{BootstrapStatus, CloudInit, Status, paths};

use crate::util::Agent;

#[tokio::test]
async fn status_should_read_every_bootstrap_status() {
    let agent = Agent::start().await;
    let s: Status = agent.get(paths::STATUS).await.json();
    assert_eq!(s.bootstrap_status, BootstrapStatus::Unknown, "no file yet");
    assert!(!s.bootstrap_ready);

    let cases = [
        ("running\n", BootstrapStatus::Running),
        ("installing\n", BootstrapStatus::Installing),
        ("ready\n", BootstrapStatus::Ready),
        ("ready", BootstrapStatus::Ready),
        ("failed\n", BootstrapStatus::Failed),
        ("", BootstrapStatus::Unknown),
        ("exploded\n", BootstrapStatus::Unknown),
    ];
    for (content, want) in cases {
        std::fs::write(&agent.paths.bootstrap_status, content).expect("write");
        let s: Status = agent.get(paths::STATUS).await.json();
        assert_eq!(s.bootstrap_status, want, "{content:?}");
        assert_eq!(s.bootstrap_ready, want == BootstrapStatus::Ready);
    }
}

#[tokio::test]
async fn status_should_report_idle_hostname_and_cloud_init() {
    let agent = Agent::start().await;
    std::fs::write(
        agent.paths.cloud_init_run_dir.join("result.json"),
        r#"{"v1":{"errors":[]}}"#,
    )
    .expect("write");
    let s: Status = agent.get(paths::STATUS).await.json();
    assert!(s.cloud_init_done);
    assert_eq!(s.cloud_init_status.as_deref(), Some("done"));
    assert!(s.cloud_init_errors.is_empty());
    assert!(!s.hostname.is_empty());
    let raw: serde_json::Value = agent.get(paths::STATUS).await.json();
    for field in [
        "uptime_seconds",
        "idle_seconds",
        "hostname",
        "cloud_init_done",
        "bootstrap_status",
        "bootstrap_ready",
        "agent_version",
    ] {
        assert!(raw.get(field).is_some(), "{field} missing in {raw}");
    }
}

/// `cloud_init_done` is true after a failed boot too; `cloud_init_status`
/// and `cloud_init_errors` tell the two apart (the offline boot whose
/// `packages` module failed while the bootstrap said `ready`).
#[tokio::test]
async fn status_should_carry_cloud_inits_verdict_and_errors() {
    let agent = Agent::start().await;
    let s: Status = agent.get(paths::STATUS).await.json();
    assert_eq!(s.cloud_init_status.as_deref(), Some("unknown"));
    assert!(!s.cloud_init_done);

    std::fs::write(
        agent.paths.cloud_init_run_dir.join("result.json"),
        r#"{"v1":{"errors":["('package_update_upgrade_install', RuntimeError('Failed to install packages'))"]}}"#,
    )
    .expect("write");
    std::fs::write(&agent.paths.bootstrap_status, "ready\n").expect("write");
    let s: Status = agent.get(paths::STATUS).await.json();
    assert!(s.cloud_init_done && s.bootstrap_ready);
    assert_eq!(s.cloud_init_status.as_deref(), Some("error"));
    assert_eq!(s.cloud_init_errors.len(), 1);
    assert!(s.cloud_init_errors[0].contains("package_update_upgrade_install"));
    let raw: serde_json::Value = agent.get(paths::STATUS).await.json();
    assert_eq!(raw["cloud_init_status"], "error");
}

async fn cloud(agent: &Agent) -> CloudInit {
    agent.get(paths::CLOUD_INIT).await.json()
}

#[tokio::test]
async fn cloud_init_should_follow_its_files() {
    let agent = Agent::start().await;
    let run = &agent.paths.cloud_init_run_dir;

    let c = cloud(&agent).await;
    assert_eq!(
        (c.status.as_str(), c.done, c.boot_finished),
        ("unknown", false, None)
    );

    // Started, a stage still running, with a recoverable error recorded.
    std::fs::write(
        run.join("status.json"),
        r#"{"v1":{"datasource":null,"init-local":{"errors":[],"start":1700000000.1,"finished":1700000001.2},
            "init":{"errors":["init failed to frob"],"start":1700000002.0,"finished":null},
            "modules-config":{"errors":[],"start":null,"finished":null},"stage":"init"}}"#,
    )
    .expect("write");
    let c = cloud(&agent).await;
    assert_eq!((c.status.as_str(), c.done), ("running", false));
    assert_eq!(c.errors, ["init failed to frob"]);

    // Not started yet.
    std::fs::write(
        run.join("status.json"),
        r#"{"v1":{"init":{"errors":[],"start":null,"finished":null},"stage":null}}"#,
    )
    .expect("write");
    assert_eq!(cloud(&agent).await.status, "not started");

    // Finished cleanly, with the boot-finished marker.
    std::fs::write(
        run.join("result.json"),
        r#"{"v1":{"datasource":"DataSourceHetzner","errors":[]}}"#,
    )
    .expect("write");
    let marker = agent.paths.cloud_lib_dir.join("instance");
    std::fs::create_dir_all(&marker).expect("mkdir");
    std::fs::write(
        marker.join("boot-finished"),
        "12.3 - Mon, 01 Jan 2024 - v. 23.1\n",
    )
    .expect("write");
    let c = cloud(&agent).await;
    assert_eq!((c.status.as_str(), c.done), ("done", true));
    assert!(c.errors.is_empty());
    let at = c.boot_finished.expect("boot_finished");
    assert!(at.0 <= SystemTime::now() + Duration::from_secs(5));

    // Finished with errors.
    std::fs::write(
        run.join("result.json"),
        r#"{"v1":{"errors":["('scripts_user', RuntimeError())"]}}"#,
    )
    .expect("write");
    let c = cloud(&agent).await;
    assert_eq!((c.status.as_str(), c.done), ("error", true));
    assert_eq!(c.errors.len(), 1);

    // Only the marker (a reboot cleared /run).
    std::fs::remove_file(run.join("result.json")).expect("rm");
    std::fs::remove_file(run.join("status.json")).expect("rm");
    let c = cloud(&agent).await;
    assert_eq!((c.status.as_str(), c.done), ("done", true));
    assert!(c.boot_finished.is_some());

    // Disabled.
    std::fs::write(run.join("disabled"), "").expect("write");
    assert_eq!(cloud(&agent).await.status, "disabled");
}

#[tokio::test]
async fn cloud_init_should_tolerate_a_half_written_file() {
    let agent = Agent::start().await;
    std::fs::write(
        agent.paths.cloud_init_run_dir.join("result.json"),
        r#"{"v1":{"err"#,
    )
    .expect("write");
    let c = cloud(&agent).await;
    assert_eq!(c.status, "unknown");
}

#[cfg(unix)] // The fake `cloud-init` is a shell script.
#[tokio::test]
async fn cloud_init_should_fall_back_to_the_cli_when_files_are_missing() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let cli = dir.path().join("cloud-init");
    std::fs::write(
        &cli,
        "#!/bin/sh\n[ \"$1 $2\" = \"status --format=json\" ] || exit 64\necho run >> \"$0.runs\"\n\
         echo '{\"status\": \"error\", \"errors\": [\"boom\"], \"last_update\": \"2024-01-01T00:05:00Z\"}'\nexit 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    crate::util::wait_executable(&cli).await;
    let agent = Agent::start_with(|o| o.paths.cloud_init_cli = Some(cli.clone())).await;
    let c = cloud(&agent).await;
    assert_eq!((c.status.as_str(), c.done), ("error", true));
    assert_eq!(c.errors, ["boom"]);
    assert_eq!(
        c.boot_finished.map(|t| t.to_string()).as_deref(),
        Some("2024-01-01T00:05:00Z")
    );

    // A missing program is "unknown", not an error.
    let agent =
        Agent::start_with(|o| o.paths.cloud_init_cli = Some(dir.path().join("absent"))).await;
    assert_eq!(cloud(&agent).await.status, "unknown");
}
