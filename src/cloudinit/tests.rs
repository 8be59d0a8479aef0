//! Rendering tests that need no external tool, so they also run under Wine.
//! The checks with the real cloud-init, shellcheck, bash and PyYAML are in
//! tests/cloudinit.rs.

use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgHLYZ0D1TAE1sVz0HkKvLfp7ivUGBbzLoZkRkRMdXz me@laptop";

fn config() -> Config {
    Config {
        authorized_keys: vec![KEY.into()],
        ..Config::new(
            HostKeyPair::generate().expect("host key"),
            AgentConfig::new("tok3n"),
            AgentSource::Upload,
        )
    }
}

fn parse(u: &UserData) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(u.as_str()).unwrap_or_else(|e| panic!("{e}\n{}", u.as_str()))
}

fn file<'a>(doc: &'a serde_yaml_ng::Value, path: &str) -> &'a serde_yaml_ng::Value {
    doc["write_files"]
        .as_sequence()
        .expect("a sequence")
        .iter()
        .find(|f| f["path"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("no write_files entry for {path}"))
}

#[test]
fn render_should_produce_the_documented_structure() {
    let c = config();
    let u = render(&c).expect("render");
    assert!(u.as_str().starts_with("#cloud-config\n"));
    assert!(u.as_str().is_ascii());
    assert!(!u.is_compressed());
    let doc = parse(&u);
    let user = &doc["users"][0];
    assert_eq!(user["name"].as_str(), Some("dev"));
    assert_eq!(user["sudo"].as_str(), Some("ALL=(ALL) NOPASSWD:ALL"));
    assert_eq!(user["lock_passwd"].as_bool(), Some(true));
    assert_eq!(user["ssh_authorized_keys"][0].as_str(), Some(KEY));
    assert_eq!(doc["disable_root"].as_bool(), Some(true));
    assert_eq!(doc["ssh_pwauth"].as_bool(), Some(false));
    assert_eq!(
        doc["ssh_keys"]["ed25519_private"].as_str(),
        Some(c.host_key.private_key_openssh().as_str())
    );
    assert_eq!(
        doc["ssh_keys"]["ed25519_public"].as_str(),
        Some(c.host_key.public_key_openssh().as_str())
    );
    // cloud-init installs nothing: phase 2 does (issue 11).
    assert_eq!(doc["package_update"].as_bool(), Some(false));
    assert!(doc.get("packages").is_none());
    let agent = file(&doc, CONFIG_PATH);
    assert_eq!(agent["permissions"].as_str(), Some("0600"));
    assert_eq!(agent["owner"].as_str(), Some("root:root"));
    let parsed: AgentConfig =
        serde_json::from_str(agent["content"].as_str().expect("a string")).expect("a string");
    assert_eq!(parsed, c.agent);
    assert_eq!(
        file(&doc, INSTALL_AGENT_PATH)["content"].as_str(),
        Some(INSTALL_AGENT_SCRIPT)
    );
    assert_eq!(
        file(&doc, BOOTSTRAP_SYNC_PATH)["permissions"].as_str(),
        Some("0755")
    );
    // Upload: the unit is enabled, not started, until the CLI has uploaded.
    let sync = file(&doc, BOOTSTRAP_SYNC_PATH)["content"]
        .as_str()
        .expect("a string");
    assert!(
        sync.contains(&format!("systemctl --no-reload enable '{AGENT_UNIT}'")),
        "{sync}"
    );
    assert!(!sync.contains("systemctl start"), "{sync}");
}

#[test]
fn the_token_should_be_only_in_the_config_file() {
    let mut c = config();
    c.agent.token = "very-secret-token-value".into();
    let u = render(&c).expect("render");
    assert_eq!(u.as_str().matches("very-secret-token-value").count(), 1);
    let doc = parse(&u);
    assert!(
        file(&doc, CONFIG_PATH)["content"]
            .as_str()
            .expect("a string")
            .contains("very-secret-token-value")
    );
    assert!(!format!("{u:?}").contains("very-secret"));
}

#[test]
fn the_unit_should_start_the_agent_with_its_config_file() {
    assert!(AGENT_UNIT_FILE.contains(&format!("ExecStart={BINARY_PATH} --config {CONFIG_PATH}\n")));
    assert!(AGENT_UNIT_FILE.contains("Restart=always"));
    assert!(AGENT_UNIT_FILE.contains(&format!("ConditionPathExists={BINARY_PATH}\n")));
    assert!(!AGENT_UNIT_FILE.contains("Environment"));
}

#[test]
fn download_should_install_then_start_the_agent() {
    let c = Config {
        agent_source: AgentSource::Download {
            url: "https://example.com/spuff-agent".into(),
            sha256: "AB".repeat(32),
        },
        ..config()
    };
    let doc = parse(&render(&c).expect("render"));
    let sync = file(&doc, BOOTSTRAP_SYNC_PATH)["content"]
        .as_str()
        .expect("a string");
    assert!(
        sync.contains(&format!(
            "{INSTALL_AGENT_PATH}' 'https://example.com/spuff-agent' '{}' '{BINARY_PATH}'",
            "ab".repeat(32)
        )),
        "{sync}"
    );
    // Started before phase 1 says `installing`: `up` returns on that word.
    let start = sync
        .find(&format!("systemctl start '{AGENT_UNIT}'"))
        .expect("started");
    let done = sync.find("set_status installing").expect("hand-over");
    assert!(start < done, "{sync}");
}

#[test]
fn the_bootstrap_should_be_queued_early_as_its_own_unit() {
    let doc = parse(&render(&config()).expect("render"));
    let boot = doc["bootcmd"].as_sequence().expect("a sequence");
    // The metadata guard first, on every boot (no cloud-init-per); then the
    // status reset, then the launch, each once per instance.
    assert_eq!(boot[0][0].as_str(), Some("sh"));
    assert_eq!(boot[0][2].as_str(), Some(METADATA_GUARD_SCRIPT));
    assert_eq!(boot[1][4].as_str(), Some("-f"));
    assert_eq!(boot[1][5].as_str(), Some(BOOTSTRAP_STATUS_PATH));
    let launch: Vec<&str> = boot[2]
        .as_sequence()
        .expect("a sequence")
        .iter()
        .map(|a| a.as_str().expect("a string"))
        .collect();
    assert_eq!(
        launch[..5],
        [
            "cloud-init-per",
            "instance",
            "spuff-bootstrap-launch",
            "sh",
            "-c"
        ]
    );
    let script = launch[5];
    for part in [
        "systemd-run",
        "--no-block",
        &format!("--unit={BOOTSTRAP_UNIT}"),
        "--property=After=cloud-init.service",
        &format!("{BOOTSTRAP_SYNC_PATH}; exec {BOOTSTRAP_ASYNC_PATH}"),
        BOOTSTRAP_LAUNCHED_PATH,
    ] {
        assert!(script.contains(part), "{part} in {script}");
    }
    // runcmd only starts it when bootcmd could not, and waits for nothing.
    let run = doc["runcmd"].as_sequence().expect("a sequence");
    assert_eq!(run.len(), 1);
    let script = run[0][2].as_str().expect("a string");
    assert!(script.starts_with(&format!("[ -e {BOOTSTRAP_LAUNCHED_PATH} ] || systemd-run")));
    assert!(!script.contains("--no-block"), "{script}");
}

#[test]
fn optional_parts_should_appear_only_when_set() {
    let plain = render(&config()).expect("render");
    assert!(!plain.as_str().contains("hostname:") && !plain.as_str().contains("timezone:"));
    let c = Config {
        hostname: Some("spuff-a1b2".into()),
        timezone: Some("Europe/Berlin".into()),
        extra_packages: vec!["ripgrep".into(), "fd-find".into()],
        dotfiles: Some(Dotfiles {
            url: "https://github.com/me/dotfiles.git".into(),
            branch: Some("main".into()),
        }),
        base_packages: vec![],
        ..config()
    };
    let doc = parse(&render(&c).expect("render"));
    assert_eq!(doc["hostname"].as_str(), Some("spuff-a1b2"));
    assert_eq!(doc["timezone"].as_str(), Some("Europe/Berlin"));
    assert!(doc.get("packages").is_none());
    let script = file(&doc, BOOTSTRAP_ASYNC_PATH)["content"]
        .as_str()
        .expect("a string");
    assert!(script.contains(" 'ripgrep' 'fd-find'\n"), "{script}");
    assert!(
        script.contains("--branch 'main' -- 'https://github.com/me/dotfiles.git'"),
        "{script}"
    );
}

fn async_script(c: &Config) -> String {
    let doc = parse(&render(c).expect("render"));
    file(&doc, BOOTSTRAP_ASYNC_PATH)["content"]
        .as_str()
        .expect("a string")
        .to_string()
}

/// Issue 11: the packages left cloud-init for phase 2, so the first login
/// waits for no `apt-get`; phase 2 installs the base and the extra ones
/// with one update and one install.
#[test]
fn phase_2_should_install_every_package_and_cloud_init_none() {
    let c = Config {
        extra_packages: vec!["ripgrep".into(), "git".into()],
        ..config()
    };
    let u = render(&c).expect("render");
    let doc = parse(&u);
    assert_eq!(doc["package_update"].as_bool(), Some(false));
    assert_eq!(doc["package_upgrade"].as_bool(), Some(false));
    assert!(doc.get("packages").is_none(), "{}", u.as_str());
    assert!(!u.as_str().contains("package_update: true"));
    let sync = file(&doc, BOOTSTRAP_SYNC_PATH)["content"]
        .as_str()
        .expect("a string");
    assert!(!sync.contains("apt-get"), "{sync}");

    let script = async_script(&c);
    assert_eq!(script.matches("apt-get ").count(), 2, "{script}");
    assert!(script.contains("DEBIAN_FRONTEND=noninteractive"));
    assert!(script.contains("apt-get -o DPkg::Lock::Timeout=600 update -q\n"));
    // Base first, then extra; `git` once.
    assert!(
        script.contains(
            "install -y -q --no-install-recommends 'git' 'curl' 'vim' 'htop' 'unzip' \
             'build-essential' 'ripgrep'\n"
        ),
        "{script}"
    );
}

/// `base_packages: []` and nothing else for phase 2: no apt at all (an
/// image that has them, or no network).
#[test]
fn no_packages_should_render_no_apt_calls() {
    let c = Config {
        base_packages: vec![],
        ..config()
    };
    let script = async_script(&c);
    assert!(!script.contains("apt-get"), "{script}");
    assert!(!script.contains("DEBIAN_FRONTEND"), "{script}");
    assert!(script.contains("set_status ready\n"), "{script}");
    // Only the extra ones when the base set is empty.
    let script = async_script(&Config {
        extra_packages: vec!["jq".into()],
        ..c
    });
    assert!(
        script.contains("--no-install-recommends 'jq'\n"),
        "{script}"
    );
}

/// Phase 1 hands over with `installing`; phase 2 starts only from it.
#[test]
fn phase_1_should_end_with_installing_and_phase_2_start_from_it() {
    let doc = parse(&render(&config()).expect("render"));
    let sync = file(&doc, BOOTSTRAP_SYNC_PATH)["content"]
        .as_str()
        .expect("a string");
    let installing = sync.find("set_status installing").expect("installing");
    assert!(sync.find("set_status running").expect("running") < installing);
    assert!(!sync.contains("set_status ready"));
    let script = async_script(&config());
    assert!(script.contains("!= installing ]"), "{script}");
}

#[test]
fn invalid_input_should_be_refused_naming_the_field() {
    type Change = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(&str, Change)> = vec![
        ("username", Box::new(|c| c.username = "Dev".into())),
        ("username", Box::new(|c| c.username = "root".into())),
        ("username", Box::new(|c| c.username = "a b".into())),
        ("username", Box::new(|c| c.username = "x".repeat(33))),
        ("authorized_keys", Box::new(|c| c.authorized_keys.clear())),
        (
            "authorized_keys[1]",
            Box::new(|c| c.authorized_keys.push("ssh-ed25519 garbage".into())),
        ),
        (
            "authorized_keys[0]",
            Box::new(|c| c.authorized_keys[0] = format!("{KEY}\nssh-ed25519 AAAA other")),
        ),
        (
            "base_packages[0]",
            Box::new(|c| c.base_packages = vec!["git; rm -rf /".into()]),
        ),
        (
            "extra_packages[0]",
            Box::new(|c| c.extra_packages = vec!["-oAPT::x".into()]),
        ),
        (
            "dotfiles.url",
            Box::new(|c| {
                c.dotfiles = Some(Dotfiles {
                    url: "http://example.com/d.git".into(),
                    branch: None,
                })
            }),
        ),
        (
            "dotfiles.url",
            Box::new(|c| {
                c.dotfiles = Some(Dotfiles {
                    url: "git@host:-oProxyCommand=x".into(),
                    branch: None,
                })
            }),
        ),
        (
            "dotfiles.branch",
            Box::new(|c| {
                c.dotfiles = Some(Dotfiles {
                    url: "https://example.com/d.git".into(),
                    branch: Some("--upload-pack=x".into()),
                })
            }),
        ),
        ("hostname", Box::new(|c| c.hostname = Some("-bad".into()))),
        (
            "timezone",
            Box::new(|c| c.timezone = Some("../../etc/passwd".into())),
        ),
        ("agent.token", Box::new(|c| c.agent.token.clear())),
        (
            "agent_source.url",
            Box::new(|c| {
                c.agent_source = AgentSource::Download {
                    url: "http://example.com/a".into(),
                    sha256: "0".repeat(64),
                }
            }),
        ),
        (
            "agent_source.sha256",
            Box::new(|c| {
                c.agent_source = AgentSource::Download {
                    url: "https://example.com/a".into(),
                    sha256: "xyz".into(),
                }
            }),
        ),
    ];
    for (field, change) in cases {
        let mut c = config();
        change(&mut c);
        match render(&c) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn over_the_limit_should_compress_then_refuse() {
    let c = config();
    let plain = render(&c).expect("render");
    let fits = render_with_limit(&c, Limit::bytes(plain.len())).expect("render");
    assert!(!fits.is_compressed());

    let packed = render_with_limit(&c, Limit::bytes(plain.len() - 1)).expect("render");
    assert!(packed.is_compressed() && packed.len() < plain.len());
    let doc = parse(&packed);
    let sync = file(&doc, BOOTSTRAP_SYNC_PATH);
    assert_eq!(sync["encoding"].as_str(), Some("gz+b64"));
    let gz = data_encoding::BASE64
        .decode(sync["content"].as_str().expect("a string").as_bytes())
        .expect("base64");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
        .expect("gzip");
    assert!(text.starts_with("#!/bin/bash\n"));

    match render_with_limit(
        &c,
        Limit {
            bytes: 1000,
            ..Limit::of(crate::provider::ProviderType::Hetzner.info())
        },
    ) {
        Err(Error::TooLarge {
            size,
            limit: 1000,
            provider: Some("hetzner"),
            compressed: true,
        }) => assert_eq!(size, packed.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_typical_render_should_fit_hetzner_uncompressed() {
    let u = render_with_limit(
        &config(),
        Limit::of(crate::provider::ProviderType::Hetzner.info()),
    )
    .expect("render");
    assert!(!u.is_compressed());
    assert!(u.len() < 16 * 1024, "{} bytes", u.len());
}
