//! `spuff up`: create a VM, record it, wait for it, bootstrap it, and open a
//! shell. The flow itself is `spuff::vm::up`; this draws it, handles Ctrl-C,
//! and decides what to do with a VM whose `up` failed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use spuff::agent::api::AgentConfig;
use spuff::cloudinit::{self, AgentSource, Dotfiles, Limit};
use spuff::config::ProviderChoice;
use spuff::provider::{ImageSpec, ProviderType};
use spuff::ssh::HostKeyPair;
use spuff::ssh::{AgentLocation, ShellOptions};
use spuff::vm::AgentInstall;
use spuff::vm::up::{AgentBinary, Plan};

use super::context::Context;
use crate::cli::args::UpArgs;
use crate::cli::draw::Drawer;

/// The agent release to download, when set (`SPUFF_AGENT_URL` plus its
/// `SPUFF_AGENT_SHA256`); otherwise a local agent binary is uploaded.
const AGENT_URL_VAR: &str = "SPUFF_AGENT_URL";
const AGENT_SHA_VAR: &str = "SPUFF_AGENT_SHA256";

/// Before making a new VM on a terminal, offers to destroy finished ones
/// (issue 12): a forgotten powered-off VM may still bill. Asking the
/// providers is bounded; when it fails `up` goes on, `spuff gc` can retry.
async fn offer_cleanup(ctx: &Context) -> anyhow::Result<()> {
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::list::survey(ctx, false),
    )
    .await;
    let Ok(Ok(survey)) = asked else {
        return Ok(());
    };
    let finished =
        spuff::vm::gc::finished(&survey.local, &survey.rows, std::time::SystemTime::now());
    super::gc::offer(&finished, ctx).await
}

/// The token a new VM deletes itself with, when `self_destroy: on` and its
/// provider bills stopped VMs: the dedicated one, or the main one only
/// after the user agreed on a terminal to a warning (issue 12).
fn self_destroy_token(
    info: &spuff::provider::ProviderInfo,
    ctx: &Context,
) -> anyhow::Result<Option<(spuff::Secret, bool)>> {
    let s = &ctx.settings;
    if !s.self_destroy {
        return Ok(None);
    }
    if !info.stopped_vm_bills {
        ctx.ui.info(format!(
            "self_destroy: a stopped {} VM costs nothing, so it powers off instead",
            info.name
        ));
        return Ok(None);
    }
    if let Some(token) = &s.self_destroy_token {
        return Ok(Some((token.clone(), false)));
    }
    let why = format!(
        "self_destroy is on but {} is not set: the VM would need your main API token, and anyone \
         with root on it could then use that token on your whole {} account",
        spuff::config::SELF_DESTROY_TOKEN_VAR,
        info.name
    );
    let main = s.token_for(info.kind, |v| std::env::var(v).ok());
    match main {
        Some(token) if ctx.ui.interactive() => {
            ctx.ui.warn(&why);
            if ctx.ui.confirm(
                "Give this VM your main API token to delete itself with?",
                false,
            )? {
                Ok(Some((token, true)))
            } else {
                anyhow::bail!(
                    "nothing was created; make a token for self-destroy alone (docs/idle.md) or \
                     `spuff config set self_destroy off`"
                )
            }
        }
        _ => anyhow::bail!(
            "{why}; nothing was created. Make a token for self-destroy alone (docs/idle.md) and \
             export {}, or `spuff config set self_destroy off`",
            spuff::config::SELF_DESTROY_TOKEN_VAR
        ),
    }
}

/// Gives the new VM what it needs to delete itself. A failure is a warning:
/// the agent then powers the VM off instead, and `spuff gc` removes it.
pub(crate) async fn arm_self_destroy(
    provider: &dyn spuff::provider::Provider,
    instance: &spuff::state::Instance,
    session: &spuff::ssh::Session,
    (token, main): (spuff::Secret, bool),
    ctx: &Context,
) {
    let Some(url) = provider.self_destroy_url(&instance.provider_id) else {
        ctx.ui.warn(format!(
            "{} cannot delete itself on {}; it powers off instead (`spuff gc` removes it)",
            instance.name, instance.provider
        ));
        return;
    };
    let ca_pem = std::env::var_os(super::context::CA_FILE_VAR)
        .filter(|v| !v.is_empty())
        .and_then(|path| std::fs::read_to_string(path).ok());
    let request = spuff::agent::api::SelfDestroy {
        provider: instance.provider.clone(),
        url,
        token: token.expose().to_string(),
        ca_pem,
    };
    match spuff::vm::arm_self_destroy(session, &request).await {
        Ok(()) => ctx.ui.info(format!(
            "When its idle or lifetime stop comes, {} deletes itself at {} (with {})",
            instance.name,
            instance.provider,
            if main {
                "your main token, as you agreed"
            } else {
                "the self-destroy token"
            }
        )),
        Err(e) => ctx.ui.warn(format!(
            "self-destroy is not set up on {} ({e}); it powers off instead and `spuff gc` removes it",
            instance.name
        )),
    }
}

pub(crate) async fn run(args: UpArgs, ctx: &Context) -> anyhow::Result<u8> {
    let kind: ProviderType = match &args.provider {
        Some(p) => p.parse()?,
        None => ctx.settings.provider,
    };
    if args.provider.is_none() && ctx.settings.provider_choice == ProviderChoice::NoCloud {
        ctx.ui.info(
            "No cloud configured: using the local provider (QEMU on this machine). \
             For a cloud, export HETZNER_TOKEN or DIGITALOCEAN_TOKEN, or `spuff config set provider hetzner`.",
        );
    }
    let provider = ctx.provider(kind.name())?;
    let info = kind.info();
    let file = &ctx.settings.file;
    if ctx.ui.interactive() && !args.json.json {
        offer_cleanup(ctx).await?;
    }
    // A setting missing from both the flags and the config takes this
    // provider's default; a provider without defaults says what to give.
    let defaults = || info.require_defaults();
    // A region from the account's own settings (an AWS profile) comes
    // before spuff's built-in default.
    let mut region =
        match (args.region.clone().or(file.region.clone())).or_else(|| provider.default_region()) {
            Some(r) => r,
            None => defaults()?.region.to_string(),
        };
    let size = match args.size.clone().or(file.size.clone()) {
        Some(s) => s,
        None => defaults()?.size.to_string(),
    };
    if args.cheapest_region {
        region = cheapest_region(&*provider, &size, ctx).await?;
    }
    let image = match (&args.snapshot, args.image.clone().or(file.image.clone())) {
        (Some(id), _) => ImageSpec::Snapshot(id.clone()),
        (None, Some(image)) => ImageSpec::Custom(image),
        (None, None) => defaults()?.image.spec(),
    };
    let public_keys = authorized_keys(ctx)?;
    let ttl = match args.ttl {
        Some(arg) => arg.0,
        None => ctx.settings.ttl,
    };
    // Decided before anything exists: a refusal must not leave a VM behind.
    let self_destroy = self_destroy_token(info, ctx)?;
    let (agent_source, upload) = agent_delivery(&args, &*provider, &size, ctx)?;
    let cheapest_zone = args.cheapest_zone || args.cheapest_region;
    let spot = args.spot.then(|| spuff::provider::SpotRequest {
        max_price: args.max_price.clone(),
        cheapest_zone,
    });
    if spot.is_some() {
        show_spot_prices(&*provider, &region, &size, cheapest_zone, ctx).await;
    }
    let shared = Shared {
        region: region.clone(),
        size: size.clone(),
        image,
        public_keys,
        ttl,
        destroy_when_idle: self_destroy.is_some(),
        agent_source,
        upload,
        spot,
        disk_gb: args.disk,
        limit: Limit::of(info),
    };
    if let Some(count) = args.count {
        return super::fleet::up_fleet(&args, count, &shared, provider, self_destroy, ctx).await;
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => format!("spuff-{:06x}", random_u64() & 0xff_ffff),
    };
    let mut plan = shared.plan(&name, ctx)?;
    if kind == ProviderType::Local {
        prepare_local(&mut plan, ctx).await?;
    }
    let ttl = shared.ttl;

    ctx.ui.info(format!(
        "Creating {name} on {} ({region}, {size})",
        provider.name()
    ));
    if let (Some(ttl), Some(at)) = (ttl, plan.user_data.agent.expires_at) {
        ctx.ui.info(format!(
            "Its lifetime is {}: it powers itself off at {at}, in use or not",
            humantime::format_duration(ttl)
        ));
    }
    let drawer = Drawer::new(&ctx.ui);
    let flow = spuff::vm::up(provider.clone(), &ctx.store, plan, &drawer);
    let result = tokio::select! {
        result = flow => result,
        _ = tokio::signal::ctrl_c() => {
            drawer.interrupt();
            return interrupted(&name, ctx).await;
        }
    };
    drawer.abandon();
    let up = match result {
        Ok(up) => up,
        Err(e) => return failed(e, &args, ctx).await,
    };
    let instance = up.instance;
    if let Some(token) = self_destroy {
        arm_self_destroy(&*provider, &instance, &up.session, token, ctx).await;
    }
    ctx.ui.success(format!(
        "{} is ready at {} (host key {})",
        instance.name,
        instance
            .address()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        spuff::ssh::fingerprint(&spuff::ssh::PublicKey::from_openssh(&instance.host_key)?)
    ));
    if args.json.json {
        ctx.ui.json(&serde_json::json!({
            "name": instance.name,
            "provider": instance.provider,
            "provider_id": instance.provider_id,
            "ip": instance.address(),
            "ssh_port": instance.ssh_port,
            "ssh_user": instance.ssh_user,
            "status": instance.status,
            // `installing` while phase 2 (packages, dotfiles) still runs.
            "bootstrap": up.bootstrap,
            "expires_at": instance.expires_at,
        }))?;
    }
    if args.no_connect || !ctx.ui.interactive() {
        let _ = up.session.close().await;
        return Ok(0);
    }
    let forward = super::context::forward_agent(args.no_agent, args.forward_agent, ctx);
    let opts = ShellOptions {
        forward_agent: forward.then_some(AgentLocation::Default),
        ..ShellOptions::default()
    };
    let _awake = super::context::keep_awake(&instance, &up.session, &ctx.ui);
    super::ssh::interactive(&up.session, opts, &instance, ctx).await
}

/// What every VM of one `up` shares; [`Shared::plan`] adds what each VM
/// has of its own (name, host key, agent token).
pub(crate) struct Shared {
    pub(crate) region: String,
    pub(crate) size: String,
    pub(crate) image: ImageSpec,
    public_keys: Vec<String>,
    pub(crate) ttl: Option<std::time::Duration>,
    destroy_when_idle: bool,
    agent_source: AgentSource,
    upload: Option<(AgentBinary, AgentInstall)>,
    spot: Option<spuff::provider::SpotRequest>,
    disk_gb: Option<u64>,
    limit: Limit,
}

impl Shared {
    /// The plan for one VM called `name`, with a host key and an agent
    /// token of its own.
    pub(crate) fn plan(&self, name: &str, ctx: &Context) -> anyhow::Result<Plan> {
        if !spuff::location::is_instance_name(name) {
            anyhow::bail!("invalid name {name:?}: use 1-63 lowercase letters, digits and '-'");
        }
        let file = &ctx.settings.file;
        let host_key = HostKeyPair::generate().context("cannot generate the VM's host key")?;
        let token = match file.agent_token.clone() {
            Some(token) => token,
            None => random_token()?,
        };
        let mut agent = AgentConfig::new(token);
        agent.idle_timeout_secs = ctx.settings.idle_timeout.map(|d| d.as_secs());
        agent.expires_at = self
            .ttl
            .map(|d| spuff::agent::api::Timestamp(std::time::SystemTime::now() + d));
        if self.destroy_when_idle {
            agent.idle_action = spuff::agent::api::IdleAction::Destroy;
        }
        let mut user_data = cloudinit::Config::new(host_key, agent, self.agent_source.clone());
        user_data.username = ctx.settings.ssh_user.clone();
        user_data.authorized_keys = self.public_keys.clone();
        user_data.base_packages = file.base_packages();
        user_data.extra_packages = file.packages.clone();
        user_data.dotfiles = file
            .dotfiles
            .clone()
            .map(|url| Dotfiles { url, branch: None });
        user_data.hostname = Some(name.to_string());
        let mut ssh = spuff::ssh::Config::new("", &ctx.settings.ssh_user);
        ssh.auth = ctx.auth_methods();
        let mut plan = Plan::new(
            name,
            &self.region,
            &self.size,
            self.image.clone(),
            user_data,
            self.limit,
            ssh,
        );
        plan.upload_agent = self.upload.clone();
        plan.spot = self.spot.clone();
        plan.disk_gb = self.disk_gb;
        Ok(plan)
    }
}

/// The region where a spot VM of `size` is cheapest now, among
/// `aws_regions` (else every region the account has enabled), asked
/// concurrently; said in one line.
async fn cheapest_region(
    provider: &dyn spuff::provider::Provider,
    size: &str,
    ctx: &Context,
) -> anyhow::Result<String> {
    use futures::StreamExt as _;
    let candidates: Vec<String> = if ctx.settings.file.aws_regions.is_empty() {
        provider
            .list_regions()
            .await?
            .into_iter()
            .filter(|r| r.available)
            .map(|r| r.slug)
            .collect()
    } else {
        ctx.settings.file.aws_regions.clone()
    };
    let asked = ctx.ui.spinner(format!(
        "Comparing spot prices of {size} in {} regions",
        candidates.len()
    ));
    let prices: Vec<_> = futures::stream::iter(&candidates)
        .map(|r| provider.spot_prices(r, size))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut best: Option<spuff::provider::SpotPrice> = None;
    let mut failed = Vec::new();
    for p in prices {
        match p {
            Ok(list) => {
                if let Some(first) = list.into_iter().next()
                    && best
                        .as_ref()
                        .is_none_or(|b| first.usd_per_hour < b.usd_per_hour)
                {
                    best = Some(first);
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    let Some(best) = best else {
        asked.fail();
        anyhow::bail!(
            "no region offers {size} as spot{}",
            failed
                .first()
                .map(|e| format!(" (and some could not be asked: {e})"))
                .unwrap_or_default()
        );
    };
    asked.finish(format!(
        "Cheapest spot price for {size}: ${:.4}/h in {} ({} regions compared{})",
        best.usd_per_hour,
        best.zone,
        candidates.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(", {} could not be asked", failed.len())
        }
    ));
    Ok(best.region)
}

/// Shows what a spot VM of `size` costs now in `region`'s zones. Only
/// information: when the prices cannot be read, the create still says
/// whether spot is possible.
async fn show_spot_prices(
    provider: &dyn spuff::provider::Provider,
    region: &str,
    size: &str,
    cheapest_zone: bool,
    ctx: &Context,
) {
    match provider.spot_prices(region, size).await {
        Ok(prices) if !prices.is_empty() => {
            let cheapest = &prices[0];
            let dearest = &prices[prices.len() - 1];
            ctx.ui.info(format!(
                "Spot price of {size} in {region} now: ${:.4}/h ({}){}{}",
                cheapest.usd_per_hour,
                cheapest.zone,
                if prices.len() > 1 {
                    format!(" to ${:.4}/h ({})", dearest.usd_per_hour, dearest.zone)
                } else {
                    String::new()
                },
                if cheapest_zone {
                    format!("; placing it in {}", cheapest.zone)
                } else {
                    String::new()
                }
            ));
        }
        Ok(_) => ctx.ui.warn(format!(
            "AWS lists no spot price for {size} in {region}: it may not be offered as spot there"
        )),
        Err(e) => ctx.ui.warn(format!("cannot read spot prices: {e}")),
    }
}

/// `up` failed. When a VM exists (or may: the create's answer was lost),
/// the error is reported first, then the VM's fate is decided: kept with
/// `--keep-on-failure`, else asked on a terminal, else destroyed (nobody is
/// there to remember it).
async fn failed(e: spuff::vm::up::Error, args: &UpArgs, ctx: &Context) -> anyhow::Result<u8> {
    let Some(name) = e.created().map(str::to_string) else {
        return Err(e.into());
    };
    let unconfirmed = matches!(
        e,
        spuff::vm::up::Error::Create {
            maybe_created: true,
            ..
        }
    );
    ctx.ui.report_error(&anyhow::Error::new(e));
    let bills = ctx
        .store
        .get(&name)
        .ok()
        .flatten()
        .and_then(|r| spuff::provider::ProviderInfo::by_canonical(&r.provider))
        .is_none_or(|i| i.needs_token());
    let what = match (unconfirmed, bills) {
        (true, _) => format!("{name} may exist (the create's answer was lost) and bill"),
        (false, true) => format!("{name} exists and bills"),
        (false, false) => format!("{name} exists and takes disk space"),
    };
    let destroy = if args.keep_on_failure {
        false
    } else if ctx.ui.interactive() {
        ctx.ui.confirm(&format!("{what}. Destroy it?"), true)?
    } else {
        ctx.ui.info(format!(
            "{what}; destroying it (no terminal to ask; --keep-on-failure keeps it)"
        ));
        true
    };
    if destroy {
        if let Err(e) = clean_up(&name, ctx).await {
            ctx.ui.report_error(&e);
        }
    } else {
        ctx.ui.warn(format!(
            "kept {name}: {what}; inspect it with `spuff status {name}` / `spuff logs {name}`, \
             remove it with `spuff down {name}`"
        ));
    }
    Ok(crate::cli::EXIT_FAILURE)
}

/// Ctrl-C: the VM may exist. Ask whether to destroy it; without a terminal,
/// destroy it (nobody is there to remember it).
async fn interrupted(name: &str, ctx: &Context) -> anyhow::Result<u8> {
    ctx.ui.warn("interrupted");
    if ctx.store.get(name)?.is_none() {
        return Ok(crate::cli::EXIT_INTERRUPTED);
    }
    let destroy = !ctx.ui.interactive()
        || ctx
            .ui
            .confirm(&format!("Destroy {name}, which was being created?"), true)?;
    if destroy {
        clean_up(name, ctx).await?;
    } else {
        ctx.ui.info(format!(
            "Kept {name}; remove it later with `spuff down {name}`."
        ));
    }
    Ok(crate::cli::EXIT_INTERRUPTED)
}

/// Destroys what the record `name` stands for (found by its spuff id, so a
/// create whose answer was lost is found too), confirmed with the provider.
pub(crate) async fn clean_up(name: &str, ctx: &Context) -> anyhow::Result<()> {
    let Some(record) = ctx.store.get(name)? else {
        return Ok(());
    };
    super::down::destroy_record(&record, None, ctx).await?;
    Ok(())
}

/// The local provider's own steps before `up`: say how the VM's CPU will
/// run (TCG is minutes, not seconds), download the base image with a
/// progress bar, and retry the first login often (it is a local port).
pub(crate) async fn prepare_local(plan: &mut Plan, ctx: &Context) -> anyhow::Result<()> {
    let mut http = spuff::provider::HttpConfig::default();
    // The same trust as the provider APIs (a TLS-inspecting proxy's CA).
    if let Some(ca) = std::env::var_os(super::context::CA_FILE_VAR).filter(|v| !v.is_empty()) {
        http.extra_ca_file = Some(ca.into());
    }
    let local = spuff::provider::local::LocalProvider::new(ctx.settings.local.clone(), http)?;
    ctx.ui
        .info(format!("Acceleration: {}", local.acceleration().describe()));
    let bar = ctx.ui.transfer_bar();
    bar.set_message(format!("downloading {}", plan.image));
    let progress = |p: spuff::provider::local::image::DownloadProgress| {
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.done);
    };
    let prepared = local.prepare_image(&plan.image, &progress).await;
    bar.finish_and_clear();
    prepared?;
    // The VM is on this machine: a refused try costs a loopback connect, and
    // every 250 ms keeps the first login close to when sshd starts.
    plan.login.max_delay = plan.login.min_delay;
    if matches!(
        local.acceleration(),
        spuff::provider::local::accel::Accel::Tcg { .. }
    ) {
        // An emulated first boot takes about a minute, more on a busy machine.
        plan.login.timeout = plan.login.timeout.max(std::time::Duration::from_secs(600));
    }
    Ok(())
}

pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Only for names: a failure makes a name predictable, nothing worse.
    // Tokens come from `random_token`, which fails instead.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A new agent token: 128 bits from the OS generator, or an error (a token
/// that is not random would be a guessable root password; issue 13).
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        anyhow::anyhow!("the system's random generator failed ({e}); no VM was created")
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The public keys to install: the configured key's `.pub`, else the first
/// default identity with one, else a key spuff generates for itself (asked
/// first on a terminal).
fn authorized_keys(ctx: &Context) -> anyhow::Result<Vec<String>> {
    let candidates: Vec<PathBuf> = match &ctx.settings.file.ssh_key_path {
        Some(p) => vec![p.clone()],
        None => {
            let mut c = spuff::paths::default_identity_files().unwrap_or_default();
            c.push(own_key_path()?);
            c
        }
    };
    for private in &candidates {
        let public = pub_path(private);
        if let Ok(text) = std::fs::read_to_string(&public) {
            let line = text.trim().to_string();
            if !line.is_empty() {
                return Ok(vec![line]);
            }
        }
    }
    if ctx.settings.file.ssh_key_path.is_some() {
        anyhow::bail!(
            "no public key next to {} (expected {})",
            candidates[0].display(),
            pub_path(&candidates[0]).display()
        );
    }
    let path = own_key_path()?;
    if ctx.ui.interactive()
        && !ctx.ui.confirm(
            &format!(
                "No SSH key found. Create an ed25519 key for spuff at {}?",
                path.display()
            ),
            true,
        )?
    {
        anyhow::bail!(
            "spuff needs an SSH key: create one with `ssh-keygen -t ed25519` or let spuff make one"
        );
    }
    let pair = HostKeyPair::generate().context("cannot generate an SSH key")?;
    write_private(&path, pair.private_key_openssh())?;
    let public = format!("{} spuff", pair.public_key_openssh().trim());
    std::fs::write(pub_path(&path), format!("{public}\n"))?;
    ctx.ui.success(format!("created {}", path.display()));
    Ok(vec![public])
}

fn own_key_path() -> anyhow::Result<PathBuf> {
    Ok(spuff::paths::config_dir()?.join("id_ed25519"))
}

fn pub_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes())?;
    Ok(())
}

/// How the agent reaches the VM, first that applies: `--agent-binary
/// PATH`, the agent spuff carries for the VM's architecture, a release the
/// VM downloads and checks (SPUFF_AGENT_URL and SPUFF_AGENT_SHA256). Never
/// a file found in the working directory or beside spuff: that is how a
/// planted binary would become root on the VM (issue 18). What can be
/// checked before the VM exists is: a file that is no Linux program, or
/// for another architecture than the size's, and an architecture this
/// spuff carries no agent for.
fn agent_delivery(
    args: &UpArgs,
    provider: &dyn spuff::provider::Provider,
    size: &str,
    ctx: &Context,
) -> anyhow::Result<(AgentSource, Option<(AgentBinary, AgentInstall)>)> {
    use spuff::agent_bin::{self, Arch};
    let hint = provider.arch_of_size(size);
    if let Some(path) = &args.agent_binary {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the agent binary {}", path.display()))?;
        let what = path.display().to_string();
        let checked = match hint {
            Some(arch) => agent_bin::check_elf(&bytes, &what, arch),
            // Some Linux architecture now; the VM's own when it answers.
            None => Arch::ALL
                .into_iter()
                .map(|a| agent_bin::check_elf(&bytes, &what, a))
                .find(Result::is_ok)
                .unwrap_or_else(|| agent_bin::check_elf(&bytes, &what, Arch::X86_64)),
        };
        checked?;
        // Which binary becomes root on the VM is worth a line, always.
        ctx.ui.info(format!(
            "Uploading the agent {} (--agent-binary, SHA-256 {})",
            path.display(),
            short_sha(&spuff::agent_bin::sha256_hex(&bytes))
        ));
        return Ok((
            AgentSource::Upload,
            Some((AgentBinary::File(path.clone()), AgentInstall::default())),
        ));
    }
    let carried = match hint {
        Some(arch) => agent_bin::embedded(arch).map(|a| vec![a]),
        None => Some(agent_bin::all().iter().collect()).filter(|v: &Vec<_>| !v.is_empty()),
    };
    if let Some(agents) = carried {
        let which: Vec<String> = agents
            .iter()
            .map(|a| format!("{} build, SHA-256 {}", a.arch, short_sha(a.sha256)))
            .collect();
        ctx.ui.info(format!(
            "Uploading the agent spuff carries ({}{})",
            which.join("; "),
            if hint.is_none() {
                "; the VM's `uname -m` picks"
            } else {
                ""
            }
        ));
        return Ok((
            AgentSource::Upload,
            Some((AgentBinary::Embedded, AgentInstall::default())),
        ));
    }
    let release = (
        std::env::var(AGENT_URL_VAR).ok().filter(|v| !v.is_empty()),
        std::env::var(AGENT_SHA_VAR).ok().filter(|v| !v.is_empty()),
    );
    if !args.dev
        && let (Some(url), Some(sha256)) = release
    {
        ctx.ui.info(format!(
            "The VM downloads the agent from {} and checks its SHA-256",
            spuff::terminal_safe(&url)
        ));
        return Ok((AgentSource::Download { url, sha256 }, None));
    }
    let arch = hint.unwrap_or(Arch::X86_64);
    Err(agent_bin::AgentError::NoneEmbedded { arch }.into())
}

/// The first 16 hex digits of a SHA-256, enough to compare by eye.
fn short_sha(hex: &str) -> String {
    format!("{}…", hex.get(..16).unwrap_or(hex))
}
