//! cloud-init user-data, checked by the tools that will consume it: every
//! variant must pass `cloud-init schema`, every script `shellcheck`, PyYAML
//! (cloud-init's parser) must read back exactly the values we put in, the
//! phase 2 script must hand hostile values to git as single arguments, and
//! `install-agent.sh` must refuse a binary whose checksum does not match.
//!
//! The round trip through a YAML parser runs everywhere; the tests that run
//! cloud-init, shellcheck, bash or python3 need those Linux tools and are
//! `#[cfg(not(windows))]` (under Wine there is no bash to run them with).

use std::io::Read as _;

use spuff::cloudinit::{
    self, AgentSource, BOOTSTRAP_ASYNC_PATH, Config, Dotfiles, Limit, UserData,
};
use spuff::ssh::HostKeyPair;
use spuff_agent_api::{AgentConfig, CONFIG_PATH};

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgHLYZ0D1TAE1sVz0HkKvLfp7ivUGBbzLoZkRkRMdXz a@laptop";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8QN0KZ5N6d3CU9wIYPR+sj5GqF+dYI2Wz1j3HKm4xQ b@desk";

/// Values that break naive YAML or shell templating.
const HOSTILE: &[&str] = &[
    "plain",
    "",
    " leading and trailing ",
    "\"double\" 'single' `back`",
    "key: value",
    "- item",
    "? complex",
    "&anchor *alias",
    "# comment",
    "--- \n...\n---",
    "!!python/object:os.system",
    "{flow: [a, b]}",
    "| block\n> folded",
    "line1\nline2\n",
    "\n\nleading newlines",
    "trailing newlines\n\n\n",
    "cr\r\nlf",
    "tab\there",
    "\t leading tab",
    "back\\slash \\n not a newline",
    "nul\0byte",
    "del\u{7f}",
    "c1 \u{80}\u{85}\u{9f}",
    "nbsp\u{a0}",
    "line sep\u{2028}para sep\u{2029}",
    "bom\u{feff}",
    "non-ascii: é ß 日本語 🚀",
    "$(touch /tmp/pwned) `id` ${HOME} $HOME",
    "'; rm -rf / #",
    "%s %n {{yaml}} {{{raw}}}",
    "yes",
    "no",
    "~",
    "null",
    "0755",
    "1e3",
    "0x1F",
    ".inf",
    "2001-01-01",
    "@at",
    "%percent",
    "=",
    "<<",
];

fn base_config(source: AgentSource) -> Config {
    Config {
        authorized_keys: vec![KEY_A.into()],
        ..Config::new(
            HostKeyPair::generate().expect("host key"),
            AgentConfig::new("token-0123456789"),
            source,
        )
    }
}

fn download() -> AgentSource {
    AgentSource::Download {
        url: "https://github.com/spuff-dev/spuff/releases/download/v0.1.0/spuff-agent-x86_64"
            .into(),
        sha256: "0123456789abcdef".repeat(4),
    }
}

fn parse(u: &UserData) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(u.as_str()).unwrap_or_else(|e| panic!("not YAML: {e}\n{}", u.as_str()))
}

/// A write_files entry's content, decoded if it was compressed.
fn file_content(doc: &serde_yaml_ng::Value, path: &str) -> String {
    let entry = doc["write_files"]
        .as_sequence()
        .expect("write_files")
        .iter()
        .find(|f| f["path"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("no {path}"));
    let content = entry["content"].as_str().expect("content");
    match entry.get("encoding").and_then(|e| e.as_str()) {
        None => content.to_string(),
        Some("gz+b64") => {
            let gz = data_encoding::BASE64
                .decode(content.as_bytes())
                .expect("base64");
            let mut out = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut out)
                .expect("gzip");
            out
        }
        Some(other) => panic!("unexpected encoding {other}"),
    }
}

/// The document's shape: keys (recursively) and sequence lengths, without
/// the scalar values, so hostile values can be checked to change no shape.
fn shape(v: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Mapping(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", k.as_str().unwrap_or("?"), shape(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Y::Sequence(s) => format!("[{}]", s.iter().map(shape).collect::<Vec<_>>().join(",")),
        Y::String(_) => "s".into(),
        Y::Bool(_) => "b".into(),
        Y::Number(_) => "n".into(),
        Y::Null => "~".into(),
        Y::Tagged(_) => "tagged".into(),
    }
}

/// A config carrying `value` everywhere a free-form value can go: the agent
/// token, an authorized key's comment, and (where the value passes their
/// validation) the dotfiles branch and URL.
fn hostile_config(value: &str) -> (Config, Vec<String>) {
    let mut c = base_config(AgentSource::Upload);
    c.agent.token = format!("t{value}");
    let mut expected_keys = vec![KEY_A.to_string()];
    // A key's comment may hold anything but line breaks and control characters.
    if !value.trim().is_empty()
        && !value
            .chars()
            .any(|ch| ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}'))
    {
        let line = format!(
            "{} {}",
            &KEY_B[..KEY_B.rfind(' ').expect("comment")],
            value.trim()
        );
        c.authorized_keys.push(line.clone());
        expected_keys.push(line);
    }
    c.dotfiles = Some(Dotfiles {
        url: "https://example.com/me/dots.git".into(),
        branch: None,
    });
    if cloudinit::render(&Config {
        dotfiles: Some(Dotfiles {
            url: "https://example.com/d.git".into(),
            branch: Some(format!("b{value}")),
        }),
        ..c.clone()
    })
    .is_ok()
    {
        c.dotfiles = Some(Dotfiles {
            url: "https://example.com/d.git".into(),
            branch: Some(format!("b{value}")),
        });
    }
    (c, expected_keys)
}

fn check_round_trip(value: &str, baseline_shape: &str) {
    let (c, expected_keys) = hostile_config(value);
    let u = cloudinit::render(&c).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    assert!(u.as_str().is_ascii(), "{value:?}: output is not ASCII");
    let doc = parse(&u);
    assert_eq!(
        shape(&doc).replace("[s,s]", "[s]"),
        baseline_shape,
        "{value:?}: shape changed"
    );
    let keys: Vec<_> = doc["users"][0]["ssh_authorized_keys"]
        .as_sequence()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    assert_eq!(keys, expected_keys, "{value:?}");
    let agent: AgentConfig =
        serde_json::from_str(&file_content(&doc, CONFIG_PATH)).expect("agent.json");
    assert_eq!(agent.token, c.agent.token, "{value:?}: token changed");
    if let Some(Dotfiles {
        branch: Some(b), ..
    }) = &c.dotfiles
    {
        let script = file_content(&doc, BOOTSTRAP_ASYNC_PATH);
        let quoted = format!("'{}'", b.replace('\'', r"'\''"));
        assert!(
            script.contains(&quoted),
            "{value:?}: branch not quoted as one word"
        );
    }
}

#[test]
fn user_data_should_round_trip_hostile_values_exactly() {
    let baseline = cloudinit::render(&hostile_config("plain").0).expect("render");
    let baseline_shape = shape(&parse(&baseline)).replace("[s,s]", "[s]");
    for value in HOSTILE {
        check_round_trip(value, &baseline_shape);
    }
    // Random strings: random bytes read as (lossy) UTF-8, and random code
    // points from the ranges that matter (ASCII, C0/C1, line separators,
    // BMP, astral).
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    for _ in 0..300 {
        let len = (rng.next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_round_trip(&String::from_utf8_lossy(&bytes), &baseline_shape);
        let s: String = (0..len)
            .filter_map(|_| {
                let pick = rng.next();
                char::from_u32(match pick % 6 {
                    0 => (pick >> 8) as u32 % 0x80,
                    1 => 0x80 + (pick >> 8) as u32 % 0x20,
                    2 => 0x2028 + (pick >> 8) as u32 % 2,
                    3 => (pick >> 8) as u32 % 0x1_0000,
                    4 => 0x1_0000 + (pick >> 8) as u32 % 0x10_0000,
                    _ => b" \n\t:#&*'\"\\-{}[]|>"[(pick >> 8) as usize % 17] as u32,
                })
            })
            .collect();
        check_round_trip(&s, &baseline_shape);
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every variant the CLI can produce.
fn variants() -> Vec<(&'static str, UserData)> {
    let render = |c: &Config| cloudinit::render(c).expect("render");
    let mut out = vec![
        ("upload", render(&base_config(AgentSource::Upload))),
        ("download", render(&base_config(download()))),
    ];
    let full = Config {
        authorized_keys: vec![KEY_A.into(), KEY_B.into()],
        extra_packages: vec!["ripgrep".into(), "fd-find".into(), "g++".into()],
        base_packages: vec!["git".into(), "curl".into(), "libssl3".into()],
        dotfiles: Some(Dotfiles {
            url: "git@github.com:me/dotfiles.git".into(),
            branch: Some("main".into()),
        }),
        hostname: Some("spuff-a1b2c3".into()),
        timezone: Some("Europe/Berlin".into()),
        username: "alice_2".into(),
        ..base_config(download())
    };
    out.push(("download+dotfiles+extras+keys", render(&full)));
    out.push((
        "upload+dotfiles-no-branch+no-packages",
        render(&Config {
            dotfiles: Some(Dotfiles {
                url: "https://example.com/me/dots.git".into(),
                branch: None,
            }),
            base_packages: vec![],
            ..base_config(AgentSource::Upload)
        }),
    ));
    let plain = render(&full);
    let packed = cloudinit::render_with_limit(&full, Limit::bytes(plain.len() - 1)).expect("fits");
    assert!(packed.is_compressed());
    out.push(("compressed", packed));
    for (i, v) in [
        "\"quoted\" 'single' $(x) `y`",
        "--- &a *b #c",
        "é\u{2028}\u{7f}\u{85}",
    ]
    .iter()
    .enumerate()
    {
        let name: &'static str = ["hostile-1", "hostile-2", "hostile-3"][i];
        out.push((name, render(&hostile_config(v).0)));
    }
    out
}

#[test]
fn every_variant_should_be_ascii_yaml_within_hetzners_limit() {
    for (name, u) in variants() {
        assert!(u.as_str().is_ascii(), "{name}");
        assert!(
            u.len()
                <= spuff::provider::ProviderType::Hetzner
                    .info()
                    .user_data_limit,
            "{name}: {} bytes",
            u.len()
        );
        let doc = parse(&u);
        assert!(
            doc["write_files"]
                .as_sequence()
                .is_some_and(|f| f.len() == 7),
            "{name}"
        );
    }
}

/// The files a first-login script writes: (path, owner, mode, content).
fn script_files(script: &str) -> Vec<(String, String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("put ") else {
            continue;
        };
        let words: Vec<String> = rest
            .trim_end_matches(" <<'SPUFF_FILE'")
            .split(' ')
            .map(|w| w.trim_matches('\'').to_string())
            .collect();
        let body: String = lines.by_ref().take_while(|l| *l != "SPUFF_FILE").collect();
        let content = data_encoding::BASE64
            .decode(body.as_bytes())
            .expect("base64");
        out.push((
            words[0].clone(),
            words[1].clone(),
            words[2].clone(),
            content,
        ));
    }
    out
}

/// Proxmox without node SSH (docs/proxmox.md): the script applied at the
/// first login writes exactly the user-data's files, with their owners and
/// modes, plus spuff's host key, and runs the same bootcmd and runcmd.
#[test]
fn first_login_script_should_do_what_the_user_data_does() {
    let mut config = base_config(download());
    config.hostname = Some("box-1".into());
    config.timezone = Some("Europe/Berlin".into());
    let doc = parse(&cloudinit::render(&config).expect("render"));
    let script = cloudinit::first_login_script(&config).expect("script");
    let script = script.as_str();
    let files = script_files(script);
    let entries = doc["write_files"].as_sequence().expect("write_files");
    assert_eq!(files.len(), entries.len() + 2, "{script}");
    for entry in entries {
        let path = entry["path"].as_str().expect("path");
        let (_, owner, mode, content) = files
            .iter()
            .find(|f| f.0 == path)
            .unwrap_or_else(|| panic!("{path} is not written"));
        assert_eq!(Some(owner.as_str()), entry["owner"].as_str(), "{path}");
        assert_eq!(Some(mode.as_str()), entry["permissions"].as_str(), "{path}");
        assert_eq!(
            String::from_utf8_lossy(content),
            file_content(&doc, path),
            "{path}"
        );
    }
    let key = files
        .iter()
        .find(|f| f.0 == "/etc/ssh/ssh_host_ed25519_key")
        .expect("host key");
    assert_eq!(key.2, "0600");
    assert_eq!(
        String::from_utf8_lossy(&key.3),
        doc["ssh_keys"]["ed25519_private"].as_str().expect("key")
    );
    // The host key is in place before sshd is reloaded, and the bootstrap
    // is queued last.
    let reload = script.find("systemctl reload ssh").expect("reload");
    assert!(script.find("ssh_host_ed25519_key").expect("key") < reload);
    for cmd in doc["bootcmd"]
        .as_sequence()
        .into_iter()
        .chain(doc["runcmd"].as_sequence())
        .flatten()
    {
        let last = cmd.as_sequence().expect("argv").last().expect("arg");
        // As one single-quoted shell word.
        let word = format!("'{}'", last.as_str().expect("text").replace('\'', "'\\''"));
        let at = script
            .find(&word)
            .unwrap_or_else(|| panic!("{word} is not run:\n{script}"));
        assert!(at > reload, "{word} runs before sshd is reloaded");
    }
    assert!(
        script.contains("hostnamectl set-hostname 'box-1'"),
        "{script}"
    );
    assert!(script.contains("set-timezone 'Europe/Berlin'"), "{script}");
    // The secrets are there only as base64 (it goes on stdin, not argv).
    assert!(!script.contains("token-0123456789"));
}

#[cfg(not(windows))]
mod with_linux_tools {
    use std::path::Path;
    use std::process::{Command, Output};

    use serde_json::Value as Json;
    use spuff::cloudinit::{BOOTSTRAP_SYNC_PATH, INSTALL_AGENT_PATH, PROFILE_PATH};

    use super::*;

    fn run(cmd: &mut Command) -> Output {
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (.ci/run installs it)"))
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    #[test]
    fn every_variant_should_pass_cloud_init_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let children: Vec<_> = variants()
            .into_iter()
            .map(|(name, u)| {
                let path = dir.path().join(format!("{name}.yaml"));
                std::fs::write(&path, u.as_str()).expect("write");
                let child = Command::new("cloud-init")
                    .args(["schema", "--config-file"])
                    .arg(&path)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("cloud-init (.ci/run installs it)");
                (name, u, child)
            })
            .collect();
        for (name, u, child) in children {
            let out = child.wait_with_output().expect("cloud-init schema");
            let t = text(&out);
            assert!(
                out.status.success() && t.contains("Valid cloud-config"),
                "{name}: {t}\n{}",
                u.as_str()
            );
            // cloud-init prints deprecated keys but still exits 0.
            assert!(!t.to_ascii_lowercase().contains("deprecat"), "{name}: {t}");
        }
    }

    #[test]
    fn every_rendered_script_should_pass_shellcheck() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, u) in variants() {
            let doc = parse(&u);
            for path in [
                INSTALL_AGENT_PATH,
                BOOTSTRAP_SYNC_PATH,
                BOOTSTRAP_ASYNC_PATH,
                PROFILE_PATH,
            ] {
                let script = file_content(&doc, path);
                let file = dir.path().join("script");
                std::fs::write(&file, &script).expect("write");
                // The profile snippet is sourced by every login shell, dash
                // included: it is checked as POSIX sh (its `shellcheck
                // shell=sh` directive), the scripts as bash.
                let shells: &[&str] = if path == PROFILE_PATH {
                    &["sh", "bash"]
                } else {
                    &["bash"]
                };
                for shell in shells {
                    let out = run(Command::new("shellcheck").args(["-s", shell]).arg(&file));
                    assert!(
                        out.status.success(),
                        "{name} {path} ({shell}):\n{}\n{script}",
                        text(&out)
                    );
                }
                let out = run(Command::new("bash").arg("-n").arg(&file));
                assert!(out.status.success(), "{name} {path}: {}", text(&out));
            }
            // bootcmd's metadata guard runs under `sh -c` (dash on Debian
            // and Ubuntu): POSIX sh.
            let guard = doc["bootcmd"][0][2].as_str().expect("the guard script");
            let file = dir.path().join("guard");
            std::fs::write(&file, guard).expect("write");
            let out = run(Command::new("shellcheck").args(["-s", "sh"]).arg(&file));
            assert!(out.status.success(), "{name} guard:\n{}", text(&out));
        }
    }

    /// The script applied at a Proxmox VM's first login, with hostile
    /// values where they can go: POSIX sh, as `sh -s` runs it (dash).
    #[test]
    fn first_login_script_should_pass_shellcheck() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut configs = vec![base_config(download()), base_config(AgentSource::Upload)];
        for v in HOSTILE {
            configs.push(hostile_config(v).0);
        }
        configs[0].hostname = Some("box-1".into());
        configs[0].timezone = Some("America/Argentina/Buenos_Aires".into());
        for (i, config) in configs.iter().enumerate() {
            let script = cloudinit::first_login_script(config).expect("script");
            let file = dir.path().join(format!("first-login-{i}.sh"));
            std::fs::write(&file, script.as_str()).expect("write");
            let out = run(Command::new("shellcheck").args(["-s", "sh"]).arg(&file));
            assert!(
                out.status.success(),
                "{i}:\n{}\n{}",
                text(&out),
                script.as_str()
            );
            let out = run(Command::new("dash").arg("-n").arg(&file));
            assert!(out.status.success(), "{i}: {}", text(&out));
        }
    }

    /// PyYAML is what cloud-init parses user-data with: it must read exactly
    /// what the Rust parser reads (and what we put in).
    #[test]
    fn pyyaml_should_read_the_same_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut all = variants();
        for v in HOSTILE {
            all.push((
                "hostile",
                cloudinit::render(&hostile_config(v).0).expect("render"),
            ));
        }
        for (i, (name, u)) in all.iter().enumerate() {
            let path = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&path, u.as_str()).expect("write");
            let out = run(Command::new("python3")
                .arg("-c")
                .arg(
                    "import json, sys, yaml\n\
                 print(json.dumps(yaml.safe_load(open(sys.argv[1], 'rb'))))",
                )
                .arg(&path));
            assert!(out.status.success(), "{name}: {}", text(&out));
            let py: Json = serde_json::from_slice(&out.stdout).expect("json");
            let rust: Json = serde_yaml_ng::from_str(u.as_str()).expect("yaml");
            assert_eq!(py, rust, "{name}: PyYAML and libyaml disagree");
        }
    }

    /// Runs the rendered phase 2 script with stub `runuser`, `getent`,
    /// `git` and `apt-get` that record their arguments, and checks each
    /// hostile value arrives as exactly one argument, unchanged.
    #[test]
    fn phase_2_should_pass_hostile_values_to_git_as_single_arguments() {
        let branch = "feat/$(touch${IFS}pwned)`id`;x'\"&|<>é";
        let url = "https://example.com/a'b&c#d*e$(touch$IFS'pwned');f?g=h";
        let c = Config {
            dotfiles: Some(Dotfiles {
                url: url.into(),
                branch: Some(branch.into()),
            }),
            extra_packages: vec!["ripgrep".into(), "g++".into()],
            ..base_config(AgentSource::Upload)
        };
        let doc = parse(&cloudinit::render(&c).expect("render"));
        let script = file_content(&doc, BOOTSTRAP_ASYNC_PATH);

        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let status = d.join("status");
        let log = d.join("log");
        let home = d.join("home");
        std::fs::create_dir(&home).expect("home");
        std::fs::write(&status, "installing\n").expect("status");
        // Point the fixed paths at the temporary directory.
        let script = script
            .replace(
                "readonly STATUS_FILE='/opt/spuff/bootstrap.status'",
                &format!("readonly STATUS_FILE='{}'", status.display()),
            )
            .replace(
                "readonly LOG_FILE='/var/log/spuff-bootstrap.log'",
                &format!("readonly LOG_FILE='{}'", log.display()),
            );
        assert!(!script.contains("/opt/spuff/bootstrap.status'"));
        let script_path = d.join("bootstrap-async.sh");
        std::fs::write(&script_path, script).expect("script");

        let bin = d.join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).expect("stub");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        let record = |name: &str| format!("printf '%s\\0' \"$@\" >> '{}/{name}.args'", d.display());
        stub(
            "getent",
            &format!("echo 'dev:x:1000:1000::{}:/bin/bash'", home.display()),
        );
        stub(
            "runuser",
            "while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"",
        );
        stub("git", &record("git"));
        stub("apt-get", &record("apt-get"));

        let out = run(Command::new("bash")
            .arg(&script_path)
            .current_dir(d)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display())));
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(out.status.success(), "{}\n{log_text}", text(&out));
        assert_eq!(
            std::fs::read_to_string(&status).expect("status"),
            "ready\n",
            "{log_text}"
        );
        assert!(!d.join("pwned").exists() && !Path::new("pwned").exists());

        let args = |name: &str| -> Vec<String> {
            std::fs::read_to_string(d.join(format!("{name}.args")))
                .expect("args")
                .split_terminator('\0')
                .map(String::from)
                .collect()
        };
        let dest = format!("{}/dotfiles", home.display());
        assert_eq!(
            args("git"),
            [
                "clone",
                "--depth",
                "1",
                "--branch",
                branch,
                "--",
                url,
                dest.as_str()
            ]
        );
        let apt = args("apt-get");
        assert!(
            apt.ends_with(&["ripgrep".to_string(), "g++".to_string()]),
            "{apt:?}"
        );
    }

    /// Phase 2 leaves a failed phase 1 alone, and a failing step marks the
    /// bootstrap failed.
    #[test]
    fn phase_2_should_keep_failed_and_report_its_own_failure() {
        let c = Config {
            extra_packages: vec!["ripgrep".into()],
            ..base_config(AgentSource::Upload)
        };
        let doc = parse(&cloudinit::render(&c).expect("render"));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let status = d.join("status");
        let script = file_content(&doc, BOOTSTRAP_ASYNC_PATH)
            .replace(
                "'/opt/spuff/bootstrap.status'",
                &format!("'{}'", status.display()),
            )
            .replace(
                "'/var/log/spuff-bootstrap.log'",
                &format!("'{}'", d.join("log").display()),
            );
        std::fs::write(d.join("s.sh"), script).expect("script");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).expect("bin");
        std::fs::write(bin.join("apt-get"), "#!/bin/sh\nexit 100\n").expect("stub");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("apt-get"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let path = format!("{}:/usr/bin:/bin", bin.display());

        std::fs::write(&status, "failed\n").expect("status");
        let out = run(Command::new("bash").arg(d.join("s.sh")).env("PATH", &path));
        assert!(out.status.success());
        assert_eq!(
            std::fs::read_to_string(&status).expect("status"),
            "failed\n"
        );

        // Phase 1 still running (or an older phase 1 that never hands
        // over): phase 2 waits its turn and changes nothing.
        std::fs::write(&status, "running\n").expect("status");
        let out = run(Command::new("bash").arg(d.join("s.sh")).env("PATH", &path));
        assert!(out.status.success());
        assert_eq!(
            std::fs::read_to_string(&status).expect("status"),
            "running\n"
        );

        std::fs::write(&status, "installing\n").expect("status");
        let out = run(Command::new("bash").arg(d.join("s.sh")).env("PATH", &path));
        assert_eq!(out.status.code(), Some(100));
        assert_eq!(
            std::fs::read_to_string(&status).expect("status"),
            "failed\n"
        );
        // No temporary status files are left behind.
        let left: Vec<_> = std::fs::read_dir(d)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("status."))
            .collect();
        assert!(left.is_empty());
    }

    /// `base_packages: []`, no extra packages, no dotfiles: phase 2 runs no
    /// apt at all (an `apt-get` that would fail is never called) and goes
    /// from `installing` to `ready`.
    #[test]
    fn phase_2_without_packages_should_not_run_apt() {
        let c = Config {
            base_packages: vec![],
            ..base_config(AgentSource::Upload)
        };
        let doc = parse(&cloudinit::render(&c).expect("render"));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let status = d.join("status");
        let script = file_content(&doc, BOOTSTRAP_ASYNC_PATH)
            .replace(
                "'/opt/spuff/bootstrap.status'",
                &format!("'{}'", status.display()),
            )
            .replace(
                "'/var/log/spuff-bootstrap.log'",
                &format!("'{}'", d.join("log").display()),
            );
        std::fs::write(d.join("s.sh"), script).expect("script");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let called = d.join("apt-called");
        std::fs::write(
            bin.join("apt-get"),
            format!("#!/bin/sh\ntouch '{}'\nexit 100\n", called.display()),
        )
        .expect("stub");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("apt-get"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::write(&status, "installing\n").expect("status");
        let out = run(Command::new("bash")
            .arg(d.join("s.sh"))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display())));
        let log = std::fs::read_to_string(d.join("log")).unwrap_or_default();
        assert!(out.status.success(), "{}\n{log}", text(&out));
        assert!(!called.exists(), "apt-get ran:\n{log}");
        assert_eq!(std::fs::read_to_string(&status).expect("status"), "ready\n");
    }

    mod install_agent {
        use std::os::unix::fs::PermissionsExt;
        use std::path::PathBuf;

        use sha2::Digest;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        use super::*;

        const BINARY: &[u8] = b"\x7fELF pretend this is spuff-agent\n";

        /// A tiny HTTP/1.1 server on 127.0.0.1: `/agent` is [`BINARY`],
        /// anything else 404. Returns its base URL.
        async fn serve() -> String {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(async move {
                        let mut req = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let line = String::from_utf8_lossy(&req);
                        let (status, body): (&str, &[u8]) = if line.starts_with("GET /agent ") {
                            ("200 OK", BINARY)
                        } else {
                            ("404 Not Found", b"not found\n")
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(body).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            format!("http://{addr}")
        }

        struct Setup {
            _dir: tempfile::TempDir,
            script: PathBuf,
            dest: PathBuf,
        }

        fn setup() -> Setup {
            let dir = tempfile::tempdir().expect("tempdir");
            let script = dir.path().join("install-agent.sh");
            std::fs::write(&script, cloudinit::INSTALL_AGENT_SCRIPT).expect("script");
            let dest = dir.path().join("opt").join("spuff-agent");
            Setup {
                script,
                dest,
                _dir: dir,
            }
        }

        async fn install(s: &Setup, url: &str, sha: &str, allow_http: bool) -> Output {
            let mut cmd = tokio::process::Command::new("bash");
            cmd.arg(&s.script).arg(url).arg(sha).arg(&s.dest);
            if allow_http {
                cmd.env("SPUFF_INSTALL_ALLOW_LOOPBACK_HTTP", "1");
            }
            cmd.output().await.expect("bash")
        }

        fn leftovers(s: &Setup) -> Vec<String> {
            std::fs::read_dir(s.dest.parent().expect("parent"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n != "spuff-agent")
                        .collect()
                })
                .unwrap_or_default()
        }

        fn sha256_hex(data: &[u8]) -> String {
            hex::encode(sha2::Sha256::digest(data))
        }

        #[tokio::test]
        async fn a_matching_checksum_should_install_the_binary_0755() {
            let base = serve().await;
            let s = setup();
            // Upper case is accepted too (it is normalised).
            let out = install(
                &s,
                &format!("{base}/agent"),
                &sha256_hex(BINARY).to_uppercase(),
                true,
            )
            .await;
            assert!(out.status.success(), "{}", text(&out));
            assert_eq!(std::fs::read(&s.dest).expect("installed"), BINARY);
            let mode = std::fs::metadata(&s.dest)
                .expect("stat")
                .permissions()
                .mode()
                & 0o7777;
            assert_eq!(mode, 0o755);
            assert!(leftovers(&s).is_empty(), "{:?}", leftovers(&s));
        }

        #[tokio::test]
        async fn a_wrong_checksum_should_fail_and_leave_no_binary() {
            let base = serve().await;
            let s = setup();
            let out = install(
                &s,
                &format!("{base}/agent"),
                &sha256_hex(b"something else"),
                true,
            )
            .await;
            assert!(!out.status.success());
            assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
            assert!(!s.dest.exists());
            assert!(leftovers(&s).is_empty(), "{:?}", leftovers(&s));

            // An existing binary is kept as it was.
            std::fs::write(&s.dest, b"old").expect("old");
            let out = install(&s, &format!("{base}/agent"), &"0".repeat(64), true).await;
            assert!(!out.status.success());
            assert_eq!(std::fs::read(&s.dest).expect("old"), b"old");
        }

        #[tokio::test]
        async fn a_404_should_fail_without_a_binary() {
            let base = serve().await;
            let s = setup();
            let out = install(&s, &format!("{base}/missing"), &sha256_hex(BINARY), true).await;
            assert!(!out.status.success());
            assert!(text(&out).contains("404"), "{}", text(&out));
            assert!(!s.dest.exists());
            assert!(leftovers(&s).is_empty(), "{:?}", leftovers(&s));
        }

        #[tokio::test]
        async fn plain_http_and_bad_arguments_should_be_refused() {
            let base = serve().await;
            let s = setup();
            let sha = sha256_hex(BINARY);
            for (url, sha, allow) in [
                (format!("{base}/agent"), sha.as_str(), false),
                ("http://example.com/agent".to_string(), sha.as_str(), true),
                ("ftp://127.0.0.1/agent".to_string(), sha.as_str(), true),
                (format!("{base}/agent"), "abc", true),
                (format!("{base}/agent"), &"g".repeat(64), true),
            ] {
                let out = install(&s, &url, sha, allow).await;
                assert!(!out.status.success(), "{url} {sha} accepted");
                assert!(!s.dest.exists());
            }
        }
    }
}

/// `install_uploaded_agent` against a real sshd: the binary lands at the
/// destination with mode 0755 and the start command runs.
mod upload {
    use spuff::Hint as _;
    use spuff::cloudinit::Error;
    use spuff::vm::{AgentInstall, install_uploaded_agent};

    use crate::util::Sshd;

    const FAKE_AGENT: &str = "#!/bin/sh\necho \"spuff-agent 0.1.0 $*\"\n";

    #[tokio::test]
    async fn install_uploaded_agent_should_install_and_start_it() {
        let sshd = Sshd::start();
        let session = sshd.connect().await;
        let sftp = session.sftp().await.expect("sftp");
        let local_dir = tempfile::tempdir().expect("tempdir");
        let local = local_dir.path().join("spuff-agent");
        std::fs::write(&local, FAKE_AGENT).expect("write");

        let dest = sshd.remote("opt/spuff/spuff-agent");
        let marker = sshd.remote("started");
        let opts = AgentInstall {
            dest: dest.clone(),
            // No systemd under the test sshd: "start" runs the binary.
            start_command: Some(format!("'{dest}' --version > '{marker}'")),
            ..AgentInstall::default()
        };
        install_uploaded_agent(&session, &local, &opts)
            .await
            .expect("install");

        let started = std::fs::read_to_string(sshd.dir.path().join("started")).expect("marker");
        assert_eq!(started, "spuff-agent 0.1.0 --version\n");
        let meta = sftp.metadata(&dest).await.expect("stat");
        assert_eq!(meta.permissions() & 0o7777, 0o755);
        // The upload's temporary file is gone.
        let dir = sftp.read_dir(&sshd.remote("opt/spuff")).await.expect("dir");
        let names: Vec<&String> = dir.iter().map(|e| &e.name).collect();
        assert_eq!(names, ["spuff-agent"], "{names:?}");
    }

    /// The binary goes compressed; what lands must be the same bytes, and a
    /// second upload replaces the first.
    #[tokio::test]
    async fn an_uploaded_binary_should_arrive_byte_for_byte() {
        let sshd = Sshd::start();
        let session = sshd.connect().await;
        let local_dir = tempfile::tempdir().expect("tempdir");
        let local = local_dir.path().join("spuff-agent");
        let dest = sshd.remote("opt/spuff/spuff-agent");
        let opts = AgentInstall {
            dest: dest.clone(),
            start_command: None,
            ..AgentInstall::default()
        };
        for seed in [1u64, 2] {
            // Part noise, part repetition: both kinds of gzip block.
            let mut data = Vec::with_capacity(3 << 20);
            let mut x = seed;
            while data.len() < 3 << 20 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.extend_from_slice(&x.to_le_bytes());
                if x % 5 == 0 {
                    data.extend_from_slice(&[b'a'; 300]);
                }
            }
            std::fs::write(&local, &data).expect("write");
            install_uploaded_agent(&session, &local, &opts)
                .await
                .expect("install");
            let landed =
                std::fs::read(sshd.dir.path().join("opt/spuff/spuff-agent")).expect("landed");
            assert!(
                landed == data,
                "seed {seed}: {} vs {} bytes",
                landed.len(),
                data.len()
            );
        }
    }

    #[tokio::test]
    async fn a_failing_start_command_should_be_reported_with_its_status() {
        let sshd = Sshd::start();
        let session = sshd.connect().await;
        let local_dir = tempfile::tempdir().expect("tempdir");
        let local = local_dir.path().join("spuff-agent");
        std::fs::write(&local, FAKE_AGENT).expect("write");
        let opts = AgentInstall {
            dest: sshd.remote("spuff-agent"),
            start_command: Some("echo no systemd here >&2; exit 3".into()),
            ..AgentInstall::default()
        };
        match install_uploaded_agent(&session, &local, &opts).await {
            Err(e @ Error::RemoteCommand { .. }) => {
                let Error::RemoteCommand { status, stderr, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(status, "exit code 3");
                assert_eq!(stderr, "no systemd here");
                assert!(e.hint().is_some());
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A NoCloud seed as cloud-init finds it: `blkid` (what cloud-init itself
/// runs to find the volume) sees a vfat volume labelled CIDATA, and mtools
/// read the files back byte for byte.
#[cfg(unix)]
#[test]
fn nocloud_seed_should_be_found_by_blkid_and_read_by_mtools() {
    use spuff::cloudinit::nocloud::{Seed, meta_data};
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("seed.img");
    let user_data = cloudinit::render(&base_config(AgentSource::Upload)).expect("render");
    let seed = Seed {
        user_data: user_data.as_str().as_bytes(),
        meta_data: meta_data("iid-nocloud-test", "spuff-seed"),
        network_config: Some(
            "version: 2\nethernets:\n  id0:\n    match: {name: \"e*\"}\n    dhcp4: true\n",
        ),
    };
    seed.write(&img).expect("write seed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&img).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the seed holds secrets");
    }
    let blkid = std::process::Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&img)
        .output()
        .expect("blkid (util-linux) runs");
    let out = String::from_utf8_lossy(&blkid.stdout);
    assert!(
        out.contains("LABEL=CIDATA") && out.contains("TYPE=vfat"),
        "{out}"
    );
    for (name, want) in [
        ("user-data", user_data.as_str().to_string()),
        (
            "meta-data",
            "instance-id: \"iid-nocloud-test\"\nlocal-hostname: \"spuff-seed\"\n".to_string(),
        ),
    ] {
        let got = std::process::Command::new("mtype")
            .args(["-b", "-i"])
            .arg(&img)
            .arg(format!("::{name}"))
            .output()
            .expect("mtype (mtools) runs");
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&got.stdout), want, "{name}");
    }
}
