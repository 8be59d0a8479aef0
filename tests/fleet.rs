//! One command on many hosts (issue 15), against a real sshd: every host
//! gets a result, failures stay with their host, concurrency is bounded,
//! output is kept whole on disk and bounded in memory.

use spuff::fleet::{FleetError, FleetHost, FleetOptions, exec_all, upload_all};

use crate::util::{Sshd, free_port};

fn hosts(sshd: &Sshd, names: &[&str]) -> Vec<FleetHost> {
    names
        .iter()
        .map(|n| FleetHost {
            name: n.to_string(),
            ssh: sshd.config(),
        })
        .collect()
}

#[tokio::test]
async fn every_host_should_get_its_own_result_and_failures_stay_with_their_host() {
    let sshd = Sshd::start();
    let mut list = hosts(&sshd, &["web-1", "web-2", "db-1"]);
    // A host nothing listens on.
    let mut dead = sshd.config();
    dead.port = free_port();
    list.insert(
        1,
        FleetHost {
            name: "gone".into(),
            ssh: dead,
        },
    );
    let out = tempfile::tempdir().unwrap();
    let mut finished = Vec::new();
    let outcomes = exec_all(
        list,
        "echo first; echo 'to stderr' >&2; echo last; exit 3",
        &FleetOptions::default().parallel(4).output_dir(out.path()),
        |o| finished.push(o.name.clone()),
    )
    .await;
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["web-1", "gone", "web-2", "db-1"],
        "in the order given"
    );
    finished.sort();
    assert_eq!(
        finished,
        ["db-1", "gone", "web-1", "web-2"],
        "each reported once"
    );
    for o in &outcomes {
        if o.name == "gone" {
            assert!(
                matches!(o.result, Err(FleetError::Ssh(_))),
                "{:?}",
                o.result
            );
            assert!(!o.success());
            continue;
        }
        let run = o
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", o.name));
        assert_eq!(run.status.code(), Some(3), "{}", o.name);
        assert!(!o.success());
        assert_eq!(run.last_line(), Some("last"));
        assert_eq!(run.stdout_bytes, 11);
        let (stdout, stderr) = run.files.clone().expect("files");
        assert_eq!(stdout, out.path().join(format!("{}.stdout", o.name)));
        assert_eq!(std::fs::read_to_string(&stdout).unwrap(), "first\nlast\n");
        assert_eq!(std::fs::read_to_string(&stderr).unwrap(), "to stderr\n");
    }
}

#[tokio::test]
async fn no_more_hosts_than_asked_should_run_at_once() {
    let sshd = Sshd::start();
    // Each command marks itself running in a shared directory, records
    // how many are running, waits, and unmarks itself.
    let dir = sshd.remote("running");
    let log = sshd.remote("counts");
    let cmd = format!(
        "mkdir -p {dir} && touch {dir}/$$ && ls {dir} | wc -l >> {log} && sleep 0.3; rm -f {dir}/$$"
    );
    let names: Vec<String> = (0..6).map(|i| format!("vm-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let outcomes = exec_all(
        hosts(&sshd, &names),
        &cmd,
        &FleetOptions::default().parallel(2),
        |_| {},
    )
    .await;
    assert!(outcomes.iter().all(|o| o.success()), "{outcomes:?}");
    let counts = std::fs::read_to_string(sshd.dir.path().join("counts")).unwrap();
    let counts: Vec<u32> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(counts.len(), 6);
    assert!(counts.iter().all(|&n| (1..=2).contains(&n)), "{counts:?}");
}

#[tokio::test]
async fn a_loud_command_should_keep_only_its_tail_in_memory() {
    let sshd = Sshd::start();
    let mut options = FleetOptions::default();
    options.tail_bytes = 1024;
    let outcomes = exec_all(
        hosts(&sshd, &["loud"]),
        "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done",
        &options,
        |_| {},
    )
    .await;
    let run = outcomes[0].result.as_ref().unwrap();
    assert_eq!(run.stdout_bytes, 3_000_000 + 1 + 5);
    assert_eq!(run.stdout_tail.len(), 1024);
    assert_eq!(run.last_line(), Some("done"));
    assert!(run.files.is_none());
}

#[tokio::test]
async fn uploads_should_reach_every_host_and_name_the_ones_that_failed() {
    let sshd = Sshd::start();
    let mut list = hosts(&sshd, &["a", "b"]);
    let mut dead = sshd.config();
    dead.port = free_port();
    list.push(FleetHost {
        name: "gone".into(),
        ssh: dead,
    });
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("app.conf");
    std::fs::write(&file, "listen 8080\n").unwrap();
    let tree = local.path().join("site");
    std::fs::create_dir_all(tree.join("css")).unwrap();
    std::fs::write(tree.join("index.html"), "<h1>hi</h1>\n").unwrap();
    std::fs::write(tree.join("css/a.css"), "h1{}\n").unwrap();

    let remote_file = sshd.remote("app.conf");
    let outcomes = upload_all(
        list.clone(),
        &file,
        &remote_file,
        &FleetOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    let ok: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.name.as_str(), o.success()))
        .collect();
    assert_eq!(ok, [("a", true), ("b", true), ("gone", false)]);
    assert_eq!(outcomes[0].result.as_ref().unwrap().bytes, 12);
    assert_eq!(
        std::fs::read_to_string(sshd.dir.path().join("app.conf")).unwrap(),
        "listen 8080\n"
    );

    let remote_tree = sshd.remote("site");
    let outcomes = upload_all(list, &tree, &remote_tree, &FleetOptions::default(), |_| {})
        .await
        .unwrap();
    let up = outcomes[1].result.as_ref().unwrap();
    assert_eq!((up.files, up.bytes), (2, 17));
    assert_eq!(
        std::fs::read_to_string(sshd.dir.path().join("site/css/a.css")).unwrap(),
        "h1{}\n"
    );
    assert!(matches!(outcomes[2].result, Err(FleetError::Ssh(_))));

    // Nothing to upload: refused before any host is contacted.
    let e = upload_all(
        hosts(&sshd, &["a"]),
        &local.path().join("missing"),
        &remote_file,
        &FleetOptions::default(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FleetError::Local { .. }), "{e}");
}
