//! `spuff config`: init, show, set, edit, path.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use spuff::config::{self, ConfigFile, KEYS, Settings};

use crate::cli::Ui;
use crate::cli::args::ConfigCommand;

fn config_path() -> anyhow::Result<PathBuf> {
    Ok(spuff::paths::config_dir()?.join(config::FILE_NAME))
}

fn load(path: &std::path::Path) -> anyhow::Result<Settings> {
    Settings::load(path, |var| std::env::var(var).ok())
        .with_context(|| format!("cannot load {}", path.display()))
}

pub(crate) async fn run(command: ConfigCommand, ui: &Ui) -> anyhow::Result<u8> {
    let path = config_path()?;
    match command {
        ConfigCommand::Path => {
            writeln!(std::io::stdout().lock(), "{}", path.display())?;
        }
        ConfigCommand::Show(flag) => {
            let settings = load(&path)?;
            for warning in &settings.warnings {
                ui.warn(warning);
            }
            show(&settings, flag.json, ui)?;
        }
        ConfigCommand::Set { key, value } => {
            let settings = load(&path)?;
            let mut file = settings.file;
            let secret = key.ends_with("_token");
            let value = match value {
                Some(v) => {
                    if secret && !v.trim().is_empty() {
                        ui.warn(format!(
                            "the token is now in your shell history and was visible to other \
                             processes; next time run `spuff config set {key}` without it to be asked"
                        ));
                    }
                    v
                }
                None if secret && ui.interactive() => ui.prompt_secret(&key)?,
                None if secret => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_string()
                }
                None => anyhow::bail!("give a value: `spuff config set {key} VALUE`"),
            };
            file.set(&key, &value)
                .with_context(|| format!("cannot set {key}"))?;
            file.save(&path)?;
            let shown = if key.ends_with("_token") {
                config::mask(&value)
            } else {
                value
            };
            ui.success(format!("{key} = {shown} ({})", path.display()));
        }
        ConfigCommand::Edit => edit(&path, ui)?,
        ConfigCommand::Init { force } => init(&path, force, ui)?,
    }
    Ok(0)
}

fn show(settings: &Settings, json: bool, ui: &Ui) -> anyhow::Result<()> {
    let file = &settings.file;
    let token = settings.token.as_ref().map(|t| config::mask(t.expose()));
    let token_source = settings.token_source.as_ref().map(|s| s.to_string());
    let idle = match settings.idle_timeout {
        Some(d) => humantime::format_duration(d).to_string(),
        None => "off".to_string(),
    };
    let ttl = match settings.ttl {
        Some(d) => humantime::format_duration(d).to_string(),
        None => "off".to_string(),
    };
    let aws = aws_facts(settings);
    if json {
        return ui.json(&serde_json::json!({
            "aws": aws.as_ref().map(|a| serde_json::json!({
                "credentials": a.credentials,
                "region": a.region,
                "regions": a.regions,
                "ssh_cidr": a.ssh_cidr,
            })),
            "path": settings.path,
            "exists": settings.exists,
            "provider": settings.provider.name(),
            "api_token": token,
            "api_token_source": token_source,
            "region": file.region,
            "size": file.size,
            "image": file.image,
            "idle_timeout": idle,
            "ttl": ttl,
            "self_destroy": settings.self_destroy,
            "self_destroy_token": settings.self_destroy_token.as_ref().map(|t| config::mask(t.expose())),
            "ssh_key_path": file.ssh_key_path,
            "ssh_user": settings.ssh_user,
            "dotfiles": file.dotfiles,
            "agent_token": file.agent_token.as_deref().map(config::mask),
            "packages": file.packages,
            "base_packages": file.base_packages(),
            "warnings": settings.warnings,
        }));
    }
    let mut out = std::io::stdout().lock();
    let or_default = |v: &Option<String>| v.clone().unwrap_or_else(|| "(provider default)".into());
    writeln!(
        out,
        "# {}{}",
        settings.path.display(),
        if settings.exists {
            ""
        } else {
            " (not created yet)"
        }
    )?;
    writeln!(out, "provider:     {}", settings.provider)?;
    match (&token, &token_source) {
        (Some(t), Some(s)) => writeln!(out, "api_token:    {t} (from {s})"),
        _ => writeln!(out, "api_token:    (not set)"),
    }?;
    writeln!(out, "region:       {}", or_default(&file.region))?;
    writeln!(out, "size:         {}", or_default(&file.size))?;
    writeln!(out, "image:        {}", or_default(&file.image))?;
    writeln!(out, "idle_timeout: {idle}")?;
    writeln!(out, "ttl:          {ttl}")?;
    writeln!(
        out,
        "self_destroy: {}{}",
        if settings.self_destroy { "on" } else { "off" },
        match &settings.self_destroy_token {
            Some(t) => format!(" (token {})", config::mask(t.expose())),
            None if settings.self_destroy =>
                " (no token: set SPUFF_SELF_DESTROY_TOKEN)".to_string(),
            None => String::new(),
        }
    )?;
    writeln!(
        out,
        "ssh_key_path: {}",
        file.ssh_key_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa)".into())
    )?;
    writeln!(out, "ssh_user:     {}", settings.ssh_user)?;
    writeln!(
        out,
        "dotfiles:     {}",
        file.dotfiles.as_deref().unwrap_or("(none)")
    )?;
    writeln!(
        out,
        "agent_token:  {}",
        file.agent_token
            .as_deref()
            .map(config::mask)
            .unwrap_or_else(|| "(random per VM)".into())
    )?;
    writeln!(
        out,
        "packages:     {}",
        if file.packages.is_empty() {
            "(none)".to_string()
        } else {
            file.packages.join(", ")
        }
    )?;
    let base = file.base_packages();
    writeln!(
        out,
        "base_packages: {}{}",
        if base.is_empty() {
            "(none)".to_string()
        } else {
            base.join(", ")
        },
        if file.base_packages.is_none() {
            " (default)"
        } else {
            ""
        }
    )?;
    if settings.provider == spuff::provider::ProviderType::Proxmox || file.proxmox_url.is_some() {
        let unset = || "(not set)".to_string();
        writeln!(
            out,
            "proxmox_url:  {}",
            file.proxmox_url.clone().unwrap_or_else(unset)
        )?;
        writeln!(
            out,
            "proxmox_template: {}",
            file.proxmox_template.map_or_else(unset, |t| t.to_string())
        )?;
        writeln!(
            out,
            "proxmox_node: {}",
            file.proxmox_node
                .clone()
                .unwrap_or_else(|| "(the template's)".into())
        )?;
        writeln!(
            out,
            "proxmox_node_ssh: {}",
            file.proxmox_node_ssh.clone().unwrap_or_else(unset)
        )?;
        writeln!(
            out,
            "proxmox_ipconfig: {}",
            file.proxmox_ipconfig.clone().unwrap_or_else(|| {
                format!("{} (default)", spuff::provider::proxmox::ipconfig::DEFAULT)
            })
        )?;
    }
    if let Some(a) = aws {
        writeln!(out, "aws credentials: {}", a.credentials)?;
        writeln!(out, "aws region:   {}", a.region)?;
        writeln!(out, "aws_regions:  {}", a.regions.join(", "))?;
        writeln!(out, "aws_ssh_cidr: {}", a.ssh_cidr)?;
    }
    Ok(())
}

/// What `config show` says of AWS: where the credentials and the region
/// come from, as AWS users expect to be told.
struct AwsFacts {
    credentials: String,
    region: String,
    regions: Vec<String>,
    ssh_cidr: String,
}

/// The AWS facts, when AWS is the provider or has settings.
fn aws_facts(settings: &Settings) -> Option<AwsFacts> {
    let file = &settings.file;
    let used = settings.provider == spuff::provider::ProviderType::Aws
        || file.aws_profile.is_some()
        || !file.aws_regions.is_empty()
        || file.aws_ssh_cidr.is_some();
    if !used {
        return None;
    }
    let env = spuff::provider::aws::AwsEnvironment::load(file.aws_profile.as_deref());
    let (credentials, region) = match &env {
        Ok(env) => (
            format!(
                "key {} from {}",
                config::mask(&env.credentials.access_key_id),
                env.credentials.source
            ),
            match (&file.region, &env.region) {
                (Some(r), _) => format!("{r} (from region)"),
                (None, Some((r, source))) => format!("{r} (from {source})"),
                (None, None) => format!("{} (default)", spuff::provider::aws::DEFAULT_REGION),
            },
        ),
        Err(e) => (
            format!("(none found: {e})"),
            file.region
                .clone()
                .unwrap_or_else(|| spuff::provider::aws::DEFAULT_REGION.into()),
        ),
    };
    let regions = if file.aws_regions.is_empty() {
        vec!["(the region above)".to_string()]
    } else {
        file.aws_regions.clone()
    };
    Some(AwsFacts {
        credentials,
        region,
        regions,
        ssh_cidr: file
            .aws_ssh_cidr
            .clone()
            .unwrap_or_else(|| "(this machine's public address)".into()),
    })
}

fn edit(path: &std::path::Path, ui: &Ui) -> anyhow::Result<()> {
    if !path.exists() {
        ConfigFile::default().save(path)?;
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| {
            if cfg!(windows) {
                "notepad".into()
            } else {
                "vi".into()
            }
        });
    // The editor setting may carry arguments (`code --wait`).
    let mut parts = editor.split_whitespace();
    let program = parts.next().context("VISUAL/EDITOR is empty")?;
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(path)
        .status()
        .with_context(|| format!("cannot start the editor {program:?} (set VISUAL or EDITOR)"))?;
    if !status.success() {
        anyhow::bail!("the editor exited with {status}");
    }
    let settings = load(path)?;
    for warning in &settings.warnings {
        ui.warn(warning);
    }
    ui.success(format!("{} is valid", path.display()));
    Ok(())
}

fn init(path: &std::path::Path, force: bool, ui: &Ui) -> anyhow::Result<()> {
    if path.exists() && !force {
        anyhow::bail!(
            "{} already exists; use `spuff config set` or `spuff config init --force`",
            path.display()
        );
    }
    if !ui.interactive() {
        anyhow::bail!(
            "`spuff config init` asks questions and needs a terminal; use `spuff config set KEY VALUE` instead"
        );
    }
    let mut file = ConfigFile::default();
    ui.info("Creating spuff's configuration. Press Enter to keep a default.");
    for (key, help) in KEYS {
        if *key == "agent_token" {
            continue;
        }
        // What spuff uses when the key is left unset, as `config show`
        // knows it: the region, size and image follow the provider chosen
        // above.
        let chosen = file
            .provider
            .as_deref()
            .and_then(|p| p.parse::<spuff::provider::ProviderType>().ok())
            .unwrap_or(config::DEFAULT_PROVIDER);
        let defaults = chosen.info().defaults;
        let default: Option<String> = match *key {
            "provider" => Some(config::DEFAULT_PROVIDER.name().to_string()),
            "idle_timeout" => Some("2h".to_string()),
            "ssh_user" => Some(config::DEFAULT_SSH_USER.to_string()),
            "region" => defaults.map(|d| d.region.to_string()),
            "size" => defaults.map(|d| d.size.to_string()),
            "image" => defaults.map(|d| d.image.spec().to_string()),
            "ssh_key_path" => spuff::paths::default_identity_files()
                .ok()
                .and_then(|keys| keys.into_iter().next())
                .map(|p| p.display().to_string()),
            _ => None,
        };
        loop {
            let question = format!("{key} ({help})");
            let answer = if key.ends_with("_token") {
                ui.prompt_secret(&question)?
            } else {
                ui.prompt(&question, default.as_deref())?
            };
            // The default kept: left unset, so it follows spuff's (and the
            // provider's) defaults rather than freezing today's.
            if answer.is_empty() || (Some(&answer) == default.as_ref() && *key != "provider") {
                break;
            }
            match file.set(key, &answer) {
                Ok(()) => break,
                Err(e) => match spuff::Hint::hint(&e) {
                    Some(hint) => ui.warn(format!("{e}; {hint}")),
                    None => ui.warn(e.to_string()),
                },
            }
        }
    }
    file.save(path)?;
    ui.success(format!("wrote {}", path.display()));
    Ok(())
}
