//! `POST /exec`: exit codes, signals, output caps, and timeouts that kill the
//! whole process group. Unix only: the commands are `/bin/sh` scripts and
//! process groups are a Unix notion.
#![cfg(unix)]

use std::time::Duration;

use spuff_agent_api::{Activity, ActivityKind, ExecResponse, paths};

use crate::util::{Agent, eventually};

async fn exec(agent: &Agent, command: &str, timeout_secs: Option<u64>) -> ExecResponse {
    let r = agent
        .post(
            paths::EXEC,
            serde_json::json!({ "command": command, "timeout_secs": timeout_secs }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn exec_should_return_output_and_exit_code() {
    let agent = Agent::start().await;
    let r = exec(&agent, "echo out; echo err >&2; exit 3", None).await;
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert_eq!(r.signal, None);
    assert!(!r.timed_out && !r.output_truncated);

    let ok = exec(&agent, "true", None).await;
    assert_eq!(ok.exit_code, 0);
}

#[tokio::test]
async fn exec_should_report_the_signal_that_ended_the_command() {
    let agent = Agent::start().await;
    let r = exec(&agent, "kill -KILL $$", None).await;
    assert_eq!(r.exit_code, -1);
    assert_eq!(r.signal, Some(9));
    assert!(!r.timed_out);
}

#[tokio::test]
async fn exec_should_cap_output_and_still_drain_the_pipes() {
    let agent = Agent::start_with(|o| o.exec_output_cap = 1000).await;
    // 4 MiB on each stream: far more than a pipe buffer, so a reader that
    // stopped at the cap would leave the command blocked until the timeout.
    let r = exec(&agent, "head -c 4194304 /dev/zero | tr '\\0' a; head -c 4194304 /dev/zero | tr '\\0' b >&2; echo done >&2", Some(60)).await;
    assert_eq!(r.exit_code, 0);
    assert!(!r.timed_out);
    assert!(r.output_truncated);
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.stdout.bytes().all(|b| b == b'a'));
    assert_eq!(r.stderr.len(), 1000);
}

#[tokio::test]
async fn exec_timeout_should_kill_a_child_ignoring_sigterm_and_its_grandchildren() {
    let agent = Agent::start().await;
    let pidfile = agent.path("grandchild.pid");
    let command = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}; sh -c 'trap \"\" TERM; sleep 1000' & wait",
        pidfile.display()
    );
    let r = exec(&agent, &command, Some(1)).await;
    assert!(r.timed_out);
    assert_eq!(r.signal, Some(9));
    assert_eq!(r.exit_code, -1);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    eventually(Duration::from_secs(10), "the grandchild to die", || async {
        (!crate::util::process_running(pid)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn exec_should_refuse_an_empty_command() {
    let agent = Agent::start().await;
    let r = agent
        .post(paths::EXEC, serde_json::json!({ "command": "  " }))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error().error, "command is empty");
}

#[tokio::test]
async fn exec_should_hold_the_vm_while_it_runs() {
    let agent = Agent::start().await;
    let flag = agent.path("go");
    let command = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo released",
        flag.display()
    );
    let running = {
        let addr = agent.addr;
        tokio::spawn(async move {
            let body =
                serde_json::to_vec(&serde_json::json!({ "command": command })).expect("json");
            crate::util::request(
                addr,
                "POST",
                paths::EXEC,
                Some(crate::util::TOKEN),
                Some(("application/json", body)),
            )
            .await
        })
    };
    let a: Activity = eventually(
        Duration::from_secs(10),
        "the exec to hold the VM",
        || async {
            let a: Activity = agent.get(paths::ACTIVITY).await.json();
            a.holding.contains(&ActivityKind::Exec).then_some(a)
        },
    )
    .await;
    assert_eq!(a.idle_seconds, 0);
    let exec_source = a
        .sources
        .iter()
        .find(|s| s.kind == ActivityKind::Exec)
        .expect("exec source");
    assert!(exec_source.active);
    assert_eq!(exec_source.detail, "1 running");

    std::fs::write(&flag, b"").expect("flag");
    let r: ExecResponse = running.await.expect("join").json();
    assert_eq!(r.stdout, "released\n");
    let a: Activity = agent.get(paths::ACTIVITY).await.json();
    assert!(a.holding.is_empty(), "{:?}", a.holding);
}
