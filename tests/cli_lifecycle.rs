//! The `spuff` binary's clean-up and reporting, as a user runs it (no
//! terminal, private config dir and `HOME`), against the fake DigitalOcean
//! API (tests/fakecloud): `down` destroys every VM of a record and of an
//! orphan name and confirms it with the provider; `list` never says "No
//! VMs" when it could not ask, names what it skipped, shows failed VMs and
//! neutralises escape sequences in names; a failed `up` destroys its VM
//! unless `--keep-on-failure`; `-v` shows the provider's retries.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use http::Method;
use spuff::state::{Lifecycle, Store};

use crate::fakecloud::{FakeCloud, Fault, FaultKind, TOKEN};
use crate::util::{Sshd, free_port, keys};
use crate::vm_down::{endpoint_fault, record};

/// A user's machine (config dir, HOME) beside a fake cloud.
struct Machine {
    fake: FakeCloud,
    dir: tempfile::TempDir,
    /// Replaces the fake's URL (an unreachable API).
    api_url: Option<String>,
}

impl Machine {
    async fn start() -> Machine {
        let fake = FakeCloud::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["config", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).expect("ca");
        Machine {
            fake,
            dir,
            api_url: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `spuff ARGS` without a terminal.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spuff"));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.path("home"))
            .env("SPUFF_CONFIG_DIR", self.path("config"))
            .env("DIGITALOCEAN_TOKEN", TOKEN)
            .env(
                "SPUFF_API_URL",
                self.api_url.as_deref().unwrap_or(&self.fake.base_url),
            )
            .env("SPUFF_CA_FILE", self.path("ca.pem"))
            .env("SPUFF_API_TIMEOUT", "2s")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `spuff ARGS` off the async runtime's workers.
    async fn spuff(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run spuff"))
            .await
            .expect("spuff thread")
    }

    fn store(&self) -> Store {
        Store::open(self.path("config").join(spuff::state::FILE_NAME)).expect("store")
    }

    fn droplet_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .fake
            .state()
            .droplets
            .values()
            .map(|d| d.name.clone())
            .collect();
        names.sort();
        names
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let (stdout, stderr) = text(out);
        panic!("not JSON ({e}):\n{stdout}\n{stderr}")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn down_should_destroy_both_vms_sharing_a_spuff_id_and_confirm() {
    let m = Machine::start().await;
    let first = m
        .fake
        .seed_droplet("web", &["spuff", "spuff-id:0123456789abcdef"]);
    m.fake
        .seed_droplet("web", &["spuff", "spuff-id:0123456789abcdef"]);
    m.fake
        .seed_droplet("keep", &["spuff", "spuff-id:fedcba9876543210"]);
    m.store()
        .insert(&record(
            "web",
            &first.to_string(),
            "0123456789abcdef",
            Lifecycle::Ready,
        ))
        .expect("insert");

    let out = m.spuff(&["down", "web", "--force", "--json"]).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(m.droplet_names(), vec!["keep"], "{stderr}");
    assert!(m.store().get("web").expect("get").is_none());
    let v = json(&out);
    assert_eq!(v["results"][0]["outcome"], "destroyed", "{v}");
    assert_eq!(v["results"][0]["ids"].as_array().map(Vec::len), Some(2));
    assert!(stderr.contains("no longer reports it"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn down_should_destroy_every_orphan_of_the_name() {
    let m = Machine::start().await;
    m.fake
        .seed_droplet("twin", &["spuff", "spuff-id:1111111111111111"]);
    m.fake
        .seed_droplet("twin", &["spuff", "spuff-id:2222222222222222"]);
    m.fake.seed_droplet("twin", &["not-spuff"]);

    let out = m.spuff(&["down", "twin", "--force"]).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        m.droplet_names(),
        vec!["twin"],
        "only the non-spuff VM is left"
    );
    assert!(
        m.fake
            .state()
            .droplets
            .values()
            .all(|d| d.tags == ["not-spuff"]),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_should_not_claim_no_vms_when_the_provider_cannot_be_asked() {
    let mut m = Machine::start().await;
    m.api_url = Some(format!("https://127.0.0.1:{}/v2/", free_port()));
    m.store()
        .insert(&record("box", "42", "0000000000000042", Lifecycle::Ready))
        .expect("insert");

    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("No VMs"), "{stdout}");
    assert!(
        stdout.contains("box") && stdout.contains("unchecked"),
        "{stdout}"
    );
    assert!(stderr.contains("could not ask digitalocean"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "the cause: {stderr}");

    let out = m.spuff(&["list", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["provider_errors"][0]["provider"], "digitalocean", "{v}");
    assert!(
        v["provider_errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused")),
        "{v}"
    );
    assert_eq!(v["instances"][0]["name"], "box");
    assert_eq!(v["instances"][0]["tracking"], "unchecked");
    assert!(v["instances"][0]["provider_error"].is_string(), "{v}");

    // With nothing recorded either: still no "No VMs".
    m.store().remove("box").expect("remove");
    let out = m.spuff(&["list"]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stdout.contains("No VMs"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_should_show_each_provider_retry() {
    let mut m = Machine::start().await;
    m.api_url = Some(format!("https://127.0.0.1:{}/v2/", free_port()));
    let out = m.spuff(&["-v", "list"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("retrying provider request"), "{stderr}");
    assert!(stderr.contains("attempt=1"), "{stderr}");
    // Without -v, no log lines.
    let out = m.spuff(&["list"]).await;
    let (_, stderr) = text(&out);
    assert!(!stderr.contains("retrying provider request"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_should_show_the_rest_and_name_a_malformed_droplet() {
    let m = Machine::start().await;
    let body = serde_json::json!({
        "droplets": [
            {"id": 501, "name": "good", "status": "active", "tags": ["spuff", "spuff-id:5050505050505050"],
             "networks": {"v4": [{"ip_address": "203.0.113.5", "type": "public"}], "v6": []},
             "region": {"slug": "fra1"}, "size_slug": "s-1vcpu-1gb"},
            {"id": 502, "name": null, "status": "active", "tags": ["spuff"]}
        ],
        "links": {},
        "meta": {"total": 2}
    });
    let respond = || FaultKind::Respond {
        status: 200,
        headers: vec![],
        body: body.to_string(),
    };
    m.fake
        .push_fault(Fault::new(Method::GET, "/v2/droplets", respond()));
    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("good"), "{stdout}");
    assert!(stderr.contains("droplet 502"), "named: {stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");

    m.fake
        .push_fault(Fault::new(Method::GET, "/v2/droplets", respond()));
    let v = json(&m.spuff(&["list", "--json"]).await);
    assert_eq!(v["instances"][0]["name"], "good", "{v}");
    assert_eq!(v["skipped"][0]["id"], "502", "{v}");
    assert_eq!(v["skipped"][0]["resource"], "droplet", "{v}");
}

/// "off" reads like "free"; on DigitalOcean it is not (issue 12).
#[tokio::test(flavor = "multi_thread")]
async fn list_should_say_an_off_vm_still_bills() {
    let m = Machine::start().await;
    let body = serde_json::json!({
        "droplets": [
            {"id": 601, "name": "sleepy", "status": "off", "tags": ["spuff", "spuff-id:6060606060606060"],
             "networks": {"v4": [{"ip_address": "203.0.113.6", "type": "public"}], "v6": []},
             "region": {"slug": "fra1"}, "size_slug": "s-1vcpu-1gb"},
            {"id": 602, "name": "busy", "status": "active", "tags": ["spuff", "spuff-id:6161616161616161"],
             "networks": {"v4": [{"ip_address": "203.0.113.7", "type": "public"}], "v6": []},
             "region": {"slug": "fra1"}, "size_slug": "s-1vcpu-1gb"}
        ],
        "links": {},
        "meta": {"total": 2}
    });
    let respond = || FaultKind::Respond {
        status: 200,
        headers: vec![],
        body: body.to_string(),
    };
    m.fake
        .push_fault(Fault::new(Method::GET, "/v2/droplets", respond()));
    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("sleepy").contains("off, still billing"), "{stdout}");
    assert!(!line("busy").contains("billing"), "{stdout}");

    m.fake
        .push_fault(Fault::new(Method::GET, "/v2/droplets", respond()));
    let v = json(&m.spuff(&["list", "--json"]).await);
    let rows = v["instances"].as_array().cloned().unwrap_or_default();
    let billing = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .map(|r| r["still_billing"].clone())
    };
    assert_eq!(
        billing("sleepy"),
        Some(serde_json::Value::Bool(true)),
        "{v}"
    );
    assert_eq!(billing("busy"), Some(serde_json::Value::Bool(false)), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_should_show_failed_and_unconfirmed_vms_as_such() {
    let m = Machine::start().await;
    let id = m
        .fake
        .seed_droplet("broken", &["spuff", "spuff-id:abababababababab"]);
    let store = m.store();
    store
        .insert(&record(
            "broken",
            &id.to_string(),
            "abababababababab",
            Lifecycle::Failed,
        ))
        .expect("insert");
    store
        .insert(&record(
            "maybe",
            "",
            "cdcdcdcdcdcdcdcd",
            Lifecycle::Unconfirmed,
        ))
        .expect("insert");
    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"))
            .to_string()
    };
    assert!(row("broken").contains("failed"), "{stdout}");
    assert!(row("maybe").contains("may exist"), "{stdout}");
    assert!(
        stderr.contains("broken failed during `spuff up`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_should_neutralise_escape_sequences_in_vm_names() {
    let m = Machine::start().await;
    m.fake.seed_droplet(
        "evil\u{1b}[2J\u{1b}]0;owned\u{7}",
        &["spuff", "spuff-id:0e0e0e0e0e0e0e0e"],
    );
    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for (what, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !s.contains('\u{1b}') && !s.contains('\u{7}'),
            "raw control characters on {what}: {s:?}"
        );
    }
    assert!(stdout.contains("evil\\x1b[2J"), "{stdout}");
    assert!(
        stderr.contains("evil\\x1b[2J"),
        "the orphan warning: {stderr}"
    );
}

/// `up` against a "VM" whose sshd presents a key spuff did not pin.
async fn up_with_refused_host_key(m: &Machine, extra: &[&str]) -> (Output, Sshd) {
    let key = keys().ed25519.display().to_string();
    let out = m.spuff(&["config", "set", "ssh_key_path", &key]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let impostor = Sshd::start();
    endpoint_fault(&m.fake, "failing", impostor.port);
    let mut args = vec!["up", "--name", "failing", "--no-connect"];
    args.extend_from_slice(extra);
    let mut cmd = m.command(&args);
    cmd.env("SPUFF_AGENT_URL", "https://example.invalid/spuff-agent")
        .env("SPUFF_AGENT_SHA256", "0".repeat(64));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("up"))
        .await
        .expect("up thread");
    (out, impostor)
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_up_without_a_terminal_should_destroy_the_vm() {
    let m = Machine::start().await;
    let (out, _sshd) = up_with_refused_host_key(&m, &[]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // The error, with the hint for a key spuff pinned itself.
    assert!(stderr.contains("HOST KEY CHANGED"), "{stderr}");
    assert!(stderr.contains("spuff's state"), "{stderr}");
    assert!(!stderr.contains("remove the old entry"), "{stderr}");
    // Then the clean-up, confirmed by the provider.
    assert!(stderr.contains("--keep-on-failure"), "{stderr}");
    assert!(stderr.contains("no longer reports it"), "{stderr}");
    assert!(m.droplet_names().is_empty(), "{stderr}");
    assert!(m.store().list().expect("list").is_empty(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_up_with_keep_on_failure_should_keep_the_vm() {
    let m = Machine::start().await;
    let (out, _sshd) = up_with_refused_host_key(&m, &["--keep-on-failure"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("kept failing"), "{stderr}");
    assert_eq!(m.droplet_names(), vec!["failing"]);
    let kept = m.store().get("failing").expect("get").expect("kept");
    assert_eq!(kept.status, Lifecycle::Failed);

    // list shows it as failed; down removes it.
    let out = m.spuff(&["list"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("failing") && l.contains("failed")),
        "{stdout}"
    );
    let out = m.spuff(&["down", "failing", "--force"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(m.droplet_names().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_help_should_describe_keep_on_failure() {
    let m = Machine::start().await;
    let out = m.spuff(&["up", "--help"]).await;
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("--keep-on-failure"), "{stdout}");
}

/// Issue 12: `spuff gc` destroys exactly the recorded VMs that are finished
/// (powered off, past their lifetime, gone), only after confirming, and
/// leaves running VMs and other machines' VMs alone.
#[tokio::test(flavor = "multi_thread")]
async fn gc_should_destroy_only_finished_vms_after_confirming() {
    use spuff::agent::api::Timestamp;
    use std::time::{Duration, SystemTime};

    let m = Machine::start().await;
    let store = m.store();
    let seed = |name: &str, spuff_id: &str, status: &str, expires: Option<i64>| {
        let id = m
            .fake
            .seed_droplet(name, &["spuff", &format!("spuff-id:{spuff_id}")]);
        if let Some(d) = m.fake.state().droplets.get_mut(&id) {
            d.status = status.to_string();
        }
        let mut r = record(name, &id.to_string(), spuff_id, Lifecycle::Ready);
        r.expires_at = expires.map(|s| {
            let d = Duration::from_secs(s.unsigned_abs());
            let now = SystemTime::now();
            Timestamp(if s >= 0 { now + d } else { now - d })
        });
        store.insert(&r).expect("insert");
    };
    seed("sleepy", "1111111111111111", "off", None);
    seed("expired", "2222222222222222", "active", Some(-60));
    seed("busy", "3333333333333333", "active", None);
    seed("young", "4444444444444444", "active", Some(3600));
    store
        .insert(&record(
            "gone",
            "987654",
            "5555555555555555",
            Lifecycle::Ready,
        ))
        .expect("insert");
    // Another machine's VM on the same account: powered off, but not ours.
    let stranger = m
        .fake
        .seed_droplet("stranger", &["spuff", "spuff-id:6666666666666666"]);
    if let Some(d) = m.fake.state().droplets.get_mut(&stranger) {
        d.status = "off".into();
    }
    drop(store);

    // No terminal and no --yes: nothing is destroyed.
    let out = m.spuff(&["gc"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("add --yes"), "{stderr}");
    assert!(
        stderr.contains("sleepy") && stderr.contains("still billing"),
        "{stderr}"
    );
    assert_eq!(m.droplet_names().len(), 5);

    let v = json(&m.spuff(&["gc", "--dry-run", "--json"]).await);
    let mut names: Vec<String> = v["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap_or(""),
                c["finished"]["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["expired=lifetime_over", "gone=gone", "sleepy=powered_off"],
        "{v}"
    );
    assert_eq!(m.droplet_names().len(), 5, "a dry run destroys nothing");

    // `list` without a terminal names them and points to gc.
    let out = m.spuff(&["list"]).await;
    let (_, stderr) = text(&out);
    assert!(stderr.contains("`spuff gc` destroys them"), "{stderr}");

    let out = m.spuff(&["gc", "--yes"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(m.droplet_names(), ["busy", "stranger", "young"]);
    let mut left: Vec<String> = m
        .store()
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    left.sort();
    assert_eq!(left, ["busy", "young"]);

    let out = m.spuff(&["gc"]).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Nothing to clean up"), "{stderr}");
}

/// Issue 12: self-destroy never takes the main token silently. Without a
/// token made for it and without a terminal to ask on, `up` refuses before
/// anything is created.
#[tokio::test(flavor = "multi_thread")]
async fn self_destroy_without_its_own_token_should_refuse_before_creating() {
    let m = Machine::start().await;
    let out = m.spuff(&["config", "set", "self_destroy", "on"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let key = keys().ed25519.display().to_string();
    let out = m.spuff(&["config", "set", "ssh_key_path", &key]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let out = m.spuff(&["up", "--no-connect"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("SPUFF_SELF_DESTROY_TOKEN") && stderr.contains("nothing was created"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(TOKEN),
        "the main token is never printed: {stderr}"
    );
    assert_eq!(m.fake.stats().count("POST /v2/droplets"), 0);
    assert!(m.droplet_names().is_empty());
    // `config show` says what is missing, and masks a token when there is one.
    let out = m.spuff(&["config", "show"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("self_destroy: on (no token: set SPUFF_SELF_DESTROY_TOKEN)"),
        "{stdout}"
    );
}

/// Issue 13: `ssh-config --include` never rewrites a user's file it could
/// not read exactly: bytes that are not UTF-8 are kept, and a config that
/// cannot be read is left alone with the line to add by hand.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_config_include_should_keep_the_users_bytes() {
    let m = Machine::start().await;
    let ssh = m.path("home/.ssh");
    std::fs::create_dir_all(&ssh).expect("mkdir");
    let original: &[u8] = b"Host work\n  User j\xf6rg\n";
    std::fs::write(ssh.join("config"), original).expect("write");
    let out = m.spuff(&["ssh-config", "--include"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let written = std::fs::read(ssh.join("config")).expect("read");
    assert!(
        written.starts_with(b"# Added by spuff\nInclude \""),
        "{written:?}"
    );
    assert!(written.ends_with(original), "{written:?}");
    assert_eq!(
        std::fs::read(ssh.join("config.spuff-backup")).expect("backup"),
        original
    );

    // A config that cannot be read (here: a directory) is not replaced.
    std::fs::remove_file(ssh.join("config")).expect("rm");
    std::fs::create_dir(ssh.join("config")).expect("mkdir");
    let out = m.spuff(&["ssh-config", "--include"]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("left as it is") && stderr.contains("Include \""),
        "{stderr}"
    );
    assert!(ssh.join("config").is_dir());
}

/// Issue 13: one record spuff cannot read does not lock the user out: the
/// rest are listed and destroyed as usual, the damaged one is named, and
/// `down NAME` forgets it.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_state_record_should_be_reported_and_skipped() {
    let m = Machine::start().await;
    let id = m
        .fake
        .seed_droplet("good", &["spuff", "spuff-id:7070707070707070"]);
    let store = m.store();
    store
        .insert(&record(
            "good",
            &id.to_string(),
            "7070707070707070",
            Lifecycle::Ready,
        ))
        .expect("insert");
    drop(store);
    {
        // A record as a crash or a disk error might leave it.
        let db = redb::Database::create(m.path("config").join(spuff::state::FILE_NAME))
            .expect("open state");
        let txn = db.begin_write().expect("txn");
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("instances");
            let mut table = txn.open_table(def).expect("table");
            table
                .insert("broken", b"{\"name\": \"broken\", tru".as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }

    let out = m.spuff(&["list"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("good"), "{stdout}");
    assert!(
        stderr.contains("the state record broken cannot be read"),
        "{stderr}"
    );
    let v = json(&m.spuff(&["list", "--json"]).await);
    assert_eq!(v["damaged"][0]["name"], "broken", "{v}");
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(1), "{v}");

    // The healthy VM can still be destroyed, with --all too.
    let out = m.spuff(&["down", "--all", "--force"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(m.droplet_names().is_empty());

    let out = m.spuff(&["down", "broken", "--force"]).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("forgot broken"), "{stderr}");
    let v = json(&m.spuff(&["list", "--json"]).await);
    assert_eq!(v["damaged"], serde_json::json!([]), "{v}");
}

/// Run a binary this process has just copied. Linux refuses to run a file
/// that any process holds open for writing, and the copy's descriptor can
/// be inherited by a child another test thread forks while the copy is
/// open (until that child's own exec; rust-lang/rust#114554): "Text file
/// busy" then only means "not yet", so it is waited out, briefly.
fn output_of_a_fresh_copy(cmd: &mut Command) -> Output {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            out => return out.expect("run the copied spuff"),
        }
    }
}

/// Issue 13 (and 18): `up` never installs an agent binary found relative
/// to the current directory (a repository the user `cd`s into could plant
/// one): it takes the agent spuff carries, or, in a build that carries
/// none, refuses before creating anything. (The cloud refuses the create
/// here, so the run ends right after the choice.)
#[tokio::test(flavor = "multi_thread")]
async fn up_should_never_upload_an_agent_from_the_current_directory() {
    let m = Machine::start().await;
    let key = keys().ed25519.display().to_string();
    let out = m.spuff(&["config", "set", "ssh_key_path", &key]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    // spuff installed alone, without an agent beside it.
    let bin = m.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let spuff = bin.join("spuff");
    std::fs::copy(env!("CARGO_BIN_EXE_spuff"), &spuff).expect("copy spuff");
    let repo = m.path("home/some-repo");
    std::fs::create_dir_all(repo.join("target/release")).expect("mkdir");
    std::fs::write(
        repo.join("target/release/spuff-agent"),
        "#!/bin/sh\necho pwned\n",
    )
    .expect("plant");
    // The same environment as every other run, with the copied binary.
    let template = m.command(&[]);
    let mut cmd = Command::new(&spuff);
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.args(["up", "--name", "x", "--no-connect"])
        .current_dir(&repo)
        .stdin(Stdio::null());
    m.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::Refuse {
            status: 422,
            code: "unprocessable_entity",
        },
    ));
    let out = tokio::task::spawn_blocking(move || output_of_a_fresh_copy(&mut cmd))
        .await
        .expect("up thread");
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("target/release"), "{stderr}");
    if spuff::agent_bin::all().is_empty() {
        assert!(stderr.contains("carries no agent"), "{stderr}");
        assert_eq!(
            m.fake.stats().count("POST /v2/droplets"),
            0,
            "nothing created"
        );
    } else {
        assert!(
            stderr.contains("Uploading the agent spuff carries (x86_64 build, SHA-256"),
            "{stderr}"
        );
    }
    assert!(m.fake.state().droplets.is_empty(), "nothing created");
}

/// Issue 13: a token can be set without putting it on the command line
/// (it is read from stdin, or asked for without echo on a terminal); given
/// on the command line, it is set with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn config_set_should_read_a_token_from_stdin() {
    let m = Machine::start().await;
    let mut cmd = m.command(&["config", "set", "api_token"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn");
        std::io::Write::write_all(
            child.stdin.as_mut().expect("stdin"),
            b"tok-from-stdin-123\n",
        )
        .expect("write");
        drop(child.stdin.take());
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("thread");
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("tok-from-stdin-123"),
        "never echoed: {stderr}"
    );
    let file = std::fs::read_to_string(m.path("config/config.yaml")).expect("config");
    assert!(file.contains("api_token: tok-from-stdin-123"), "{file}");

    let out = m
        .spuff(&["config", "set", "api_token", "tok-on-argv-456"])
        .await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("shell history"), "{stderr}");
    let out = m.spuff(&["config", "set", "region"]).await;
    assert!(!out.status.success());
}

/// Issue 13: the generated ssh config forwards the agent only when asked.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_config_should_not_forward_the_agent_unless_asked() {
    let m = Machine::start().await;
    let id = m
        .fake
        .seed_droplet("box", &["spuff", "spuff-id:8080808080808080"]);
    let mut r = record("box", &id.to_string(), "8080808080808080", Lifecycle::Ready);
    r.ipv4 = Some("203.0.113.9".parse().expect("ip"));
    m.store().insert(&r).expect("insert");
    let hosts = || std::fs::read_to_string(m.path("config/ssh_config")).expect("ssh_config");
    let out = m.spuff(&["ssh-config", "--no-include"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        hosts().contains("Host box") && hosts().contains("ForwardAgent no"),
        "{}",
        hosts()
    );
    let out = m
        .spuff(&["ssh-config", "--no-include", "--forward-agent"])
        .await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(hosts().contains("ForwardAgent yes"), "{}", hosts());
}
