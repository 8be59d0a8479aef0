//! `GET /logs`: the tail, and every way out of the log directory refused.

use std::fmt::Write;

use spuff_agent_api::Logs;

use crate::util::Agent;

/// Percent-encodes a path for the query string (Windows paths have `\\`
/// and `:`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url(file: &std::path::Path, lines: Option<usize>) -> String {
    let mut u = format!("/logs?file={}", encode(&file.to_string_lossy()));
    if let Some(n) = lines {
        let _ = write!(u, "&lines={n}");
    }
    u
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

#[tokio::test]
async fn logs_should_return_the_last_lines() {
    let agent = Agent::start().await;
    let file = agent.paths.log_dir.join("syslog");
    std::fs::write(&file, numbered(500)).expect("write");

    let l: Logs = agent.get(&url(&file, Some(3))).await.json();
    assert_eq!(l.lines, ["line 498", "line 499", "line 500"]);
    assert_eq!(
        std::path::Path::new(&l.file),
        file.canonicalize().expect("canon")
    );

    let l: Logs = agent.get(&url(&file, None)).await.json();
    assert_eq!(l.lines.len(), 100);
    assert_eq!(l.lines[0], "line 401");

    let l: Logs = agent.get(&url(&file, Some(0))).await.json();
    assert!(l.lines.is_empty());
}

#[tokio::test]
async fn logs_should_cap_lines_at_ten_thousand() {
    let agent = Agent::start().await;
    let file = agent.paths.log_dir.join("big.log");
    std::fs::write(&file, numbered(12_000)).expect("write");
    let l: Logs = agent.get(&url(&file, Some(1_000_000))).await.json();
    assert_eq!(l.lines.len(), 10_000);
    assert_eq!(l.lines[0], "line 2001");
    assert_eq!(l.lines[9_999], "line 12000");
}

#[tokio::test]
async fn logs_should_refuse_relative_and_dotdot_paths() {
    let agent = Agent::start().await;
    let inside = agent.paths.log_dir.join("syslog");
    std::fs::write(&inside, "x\n").expect("write");
    let dotdot = format!("{}/../var/log/syslog", agent.paths.log_dir.display());
    for bad in ["syslog", "var/log/syslog", "./syslog", dotdot.as_str()] {
        let r = agent.get(&format!("/logs?file={}", encode(bad))).await;
        assert_eq!(r.status, 400, "{bad}");
        let _ = r.error();
    }
}

#[tokio::test]
async fn logs_should_refuse_files_outside_the_log_directory() {
    let agent = Agent::start().await;
    let outside = agent.path("etc-shadow");
    std::fs::write(&outside, "secret\n").expect("write");
    let r = agent.get(&url(&outside, None)).await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
}

#[tokio::test]
async fn logs_should_refuse_directories_and_answer_404_for_missing_files() {
    let agent = Agent::start().await;
    let sub = agent.paths.log_dir.join("journal");
    std::fs::create_dir(&sub).expect("mkdir");
    assert_eq!(agent.get(&url(&sub, None)).await.status, 400);
    assert_eq!(
        agent.get(&url(&agent.paths.log_dir, None)).await.status,
        400
    );
    let r = agent
        .get(&url(&agent.paths.log_dir.join("nope.log"), None))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error().error, "no such log file");
}

#[cfg(unix)] // Symlinks need privileges on Windows.
#[tokio::test]
async fn logs_should_refuse_symlinks_that_leave_the_log_directory() {
    let agent = Agent::start().await;
    let outside = agent.path("etc-shadow");
    std::fs::write(&outside, "secret\n").expect("write");
    let link = agent.paths.log_dir.join("innocent.log");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let r = agent.get(&url(&link, None)).await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains("secret"));

    // A directory symlink out of the log dir, then a file below it.
    std::os::unix::fs::symlink(agent.dir.path(), agent.paths.log_dir.join("root"))
        .expect("symlink");
    let r = agent
        .get(&url(&agent.paths.log_dir.join("root/etc-shadow"), None))
        .await;
    assert_eq!(r.status, 400);

    // A symlink that stays inside is fine, and the answer names the target.
    let real = agent.paths.log_dir.join("real.log");
    std::fs::write(&real, "a\nb\n").expect("write");
    let alias = agent.paths.log_dir.join("alias.log");
    std::os::unix::fs::symlink(&real, &alias).expect("symlink");
    let l: Logs = agent.get(&url(&alias, None)).await.json();
    assert_eq!(l.lines, ["a", "b"]);
    assert_eq!(
        std::path::Path::new(&l.file),
        real.canonicalize().expect("canon")
    );
}
