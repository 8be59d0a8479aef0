//! The command line, as clap parses it. Validation beyond types happens in
//! the commands, which turn these into library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Ephemeral cloud dev VMs in one command.
///
/// `spuff up` creates a VM, bootstraps it and drops you into a shell with
/// your ssh-agent forwarded; `spuff down` takes it away again. No `ssh`
/// binary needed.
#[derive(Debug, Parser)]
#[command(
    name = "spuff",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success (a \"no\" to a confirmation included: nothing is done), \
                        1 error, 2 usage error, 130 interrupted (Ctrl-C, live views too); \
                        `spuff exec` and `spuff ssh` exit with the remote command's code (255 after `~.`).\n\
                        Environment: SPUFF_API_TOKEN, SPUFF_CONFIG_DIR, SPUFF_API_TIMEOUT, RUST_LOG, NO_COLOR."
)]
pub(crate) struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a VM, bootstrap it and open a shell on it.
    Up(UpArgs),
    /// Destroy a VM (after confirming) and every VM with its spuff id,
    /// optionally snapshotting it first; forget it once the provider confirms.
    Down(DownArgs),
    /// Open an interactive shell on a VM, with your ssh-agent forwarded.
    Ssh(SshArgs),
    /// Run a command on a VM and exit with its exit code.
    Exec(ExecArgs),
    /// Copy files and directories to or from a VM (NAME:path on either side).
    Cp(CpArgs),
    /// Forward the VM's agent port and other ports to this machine.
    Tunnel(TunnelArgs),
    /// Show a VM's state, health, metrics and what keeps it alive.
    Status(StatusArgs),
    /// List VMs: the provider's spuff VMs reconciled with local state.
    List(ListArgs),
    /// A live full-screen view of every VM across providers, with load,
    /// idle time, next stop and cost; keys open a shell, follow logs,
    /// snapshot and destroy. Without a terminal: the same table, once.
    Dash(DashArgs),
    /// Power a stopped VM back on (one its idle stop powered off) and wait
    /// until it answers.
    Start(StartArgs),
    /// Destroy (after confirming) every recorded VM that is finished:
    /// powered off by its idle or lifetime stop, past its lifetime, or gone.
    Gc(GcArgs),
    /// Find everything spuff ever made at a provider (VMs, snapshots, and
    /// on AWS its security groups and key pairs) by its tag, list it, and
    /// after confirming delete it all.
    Nuke(NukeArgs),
    /// Create, list and delete snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Show logs from a VM: bootstrap, cloud-init or the agent.
    Logs(LogsArgs),
    /// Write `Host` entries for your VMs so plain `ssh NAME` works.
    SshConfig(SshConfigArgs),
    /// Read and change spuff's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print spuff's version and the VM agents it carries (SHA-256).
    Version(JsonFlag),
}

/// `--json`.
#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `spuff up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// A name for the VM (default: spuff-<random>).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Provider to use (digitalocean, hetzner, aws, local); default from config.
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Size or server type slug; default from config.
    #[arg(long)]
    pub(crate) size: Option<String>,
    /// Region or location slug; default from config.
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Image slug; default from config.
    #[arg(long, conflicts_with = "snapshot")]
    pub(crate) image: Option<String>,
    /// Create the VM from this snapshot id instead of an image.
    #[arg(long)]
    pub(crate) snapshot: Option<String>,
    /// Upload the agent (the one spuff carries, or --agent-binary), never
    /// a release download; uploading is the default when spuff carries
    /// agents.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Upload this agent instead of the one spuff carries: a static Linux
    /// build for the VM's architecture (checked before it is sent).
    #[arg(long, value_name = "PATH")]
    pub(crate) agent_binary: Option<PathBuf>,
    /// Do not open a shell when the VM is ready.
    #[arg(long)]
    pub(crate) no_connect: bool,
    /// A hard lifetime: the VM powers itself off this long after creation,
    /// in use or not, after warning (8h, 1d, 90m; default from the config's
    /// `ttl`, else none). Enforced on the VM, so it holds with this machine
    /// offline.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg)]
    pub(crate) ttl: Option<TtlArg>,
    /// Keep the VM when `up` fails after creating it (host key refused,
    /// bootstrap failed, timeout), to inspect it. Otherwise spuff asks on a
    /// terminal and, without one, destroys it.
    #[arg(long)]
    pub(crate) keep_on_failure: bool,
    /// Do not forward your ssh-agent to the shell `up` opens (the config's
    /// `forward_agent`, on by default, decides otherwise).
    #[arg(long, conflicts_with = "forward_agent")]
    pub(crate) no_agent: bool,
    /// Forward your ssh-agent even with `forward_agent: off`.
    #[arg(long)]
    pub(crate) forward_agent: bool,
    /// The boot disk's size in GB (Proxmox: the template's disk is grown
    /// to it; the clouds' disks come with the size, pick a bigger size).
    #[arg(long, value_name = "GB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub(crate) disk: Option<u64>,
    /// A spot VM (AWS): spare capacity at a discount, which AWS may take
    /// back at two minutes' notice (`list` then shows it as interrupted).
    /// The current price is shown first.
    #[arg(long)]
    pub(crate) spot: bool,
    /// With --spot: the most to pay per hour, in US dollars (0.05);
    /// default: the current spot price, never above on-demand.
    #[arg(long, requires = "spot", value_name = "USD", value_parser = parse_price)]
    pub(crate) max_price: Option<String>,
    /// With --spot: the region's availability zone with the lowest spot
    /// price right now.
    #[arg(long, requires = "spot")]
    pub(crate) cheapest_zone: bool,
    /// With --spot: compare the spot price in every region of
    /// `aws_regions` (default: every enabled region) and use the cheapest
    /// zone of them all; an --image AMI must exist there.
    #[arg(long, requires = "spot", conflicts_with = "region")]
    pub(crate) cheapest_region: bool,
    /// Create a fleet of N VMs at once, named by --name (default: a random
    /// name) as NAME-1 … NAME-N, each recorded before its create; a live
    /// table shows them. No shell is opened; `exec --fleet NAME` and
    /// `cp --fleet NAME` work on them all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=500))]
    pub(crate) count: Option<u16>,
    /// With --count: how many VMs are created at the same time.
    #[arg(long, value_name = "K", default_value_t = 10, requires = "count",
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub(crate) parallel: u16,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `--max-price`: a positive decimal number of dollars, as EC2 takes it.
fn parse_price(text: &str) -> Result<String, String> {
    let t = text.trim().trim_start_matches('$');
    let ok = !t.is_empty()
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && t.parse::<f64>().is_ok_and(|v| v > 0.0 && v.is_finite());
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "`{text}` is not a price in dollars per hour, such as 0.05"
        ))
    }
}

/// `up --ttl`: a lifetime, or `off` to override the config's default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlArg(pub(crate) Option<std::time::Duration>);

fn parse_ttl_arg(text: &str) -> Result<TtlArg, String> {
    spuff::config::parse_ttl(text)
        .map(TtlArg)
        .map_err(|e| e.to_string())
}

/// `spuff start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
}

/// `spuff gc`.
#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Destroy without asking.
    #[arg(long, short)]
    pub(crate) yes: bool,
    /// Only list what would be destroyed.
    #[arg(long, conflicts_with = "yes")]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `spuff nuke`.
#[derive(Debug, Args)]
#[command(
    after_help = "Found by spuff's tag at the provider, not from local state, so what a \
lost state file forgot is found too. DigitalOcean snapshots carry no tag and are never \
touched. Exit code 0 when everything listed was deleted, 1 otherwise (each failure is \
named)."
)]
pub(crate) struct NukeArgs {
    /// The provider (default: the configured one).
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Only this region (default: every region; on AWS every enabled one).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Delete without asking.
    #[arg(long, short)]
    pub(crate) yes: bool,
    /// Only list what would be deleted.
    #[arg(long, conflicts_with = "yes")]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `spuff down`.
#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
    /// Destroy every VM spuff knows.
    #[arg(long, conflicts_with = "name")]
    pub(crate) all: bool,
    /// Destroy every VM of this fleet (`up --count`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["name", "all"])]
    pub(crate) fleet: Option<String>,
    /// Snapshot each VM before destroying it.
    #[arg(long)]
    pub(crate) snapshot: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `spuff ssh`.
#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
    /// Do not forward your ssh-agent (the config's `forward_agent`, on by
    /// default, decides otherwise).
    #[arg(long, conflicts_with = "forward_agent")]
    pub(crate) no_agent: bool,
    /// Forward your ssh-agent even with `forward_agent: off`.
    #[arg(long)]
    pub(crate) forward_agent: bool,
    #[command(flatten)]
    pub(crate) escape: EscapeArg,
}

/// `-e`, as `ssh` has it.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct EscapeArg {
    /// The escape character, at the start of a line: `~.` leaves a session
    /// whose VM stopped answering, `~?` lists the escapes, `~~` sends a
    /// `~`. One character, `^X` for a control character, or `none`.
    #[arg(short = 'e', long = "escape-char", value_name = "CHAR", default_value = "~", value_parser = parse_escape)]
    pub(crate) escape_char: Escape,
}

/// An escape character, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Escape(pub(crate) Option<u8>);

fn parse_escape(value: &str) -> Result<Escape, String> {
    spuff::ssh::parse_escape_char(value).map(Escape)
}

/// `spuff exec`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("many").args(["all", "fleet"]).multiple(false))]
#[command(
    after_help = "With --all or --fleet: one line per VM as it finishes, then a table \
(VM, result, time, last line of output) on stdout; exit code 0 when the command \
exited 0 on every VM, 1 otherwise."
)]
pub(crate) struct ExecArgs {
    /// The VM (default: the active one). Put the command after `--`.
    pub(crate) name: Option<String>,
    /// Allocate a terminal (for interactive programs).
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    #[command(flatten)]
    pub(crate) escape: EscapeArg,
    /// Run the command on every recorded VM at once, one connection each.
    #[arg(long, conflicts_with_all = ["name", "tty"])]
    pub(crate) all: bool,
    /// Run the command on every VM of this fleet (`up --count`) at once.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["name", "tty"])]
    pub(crate) fleet: Option<String>,
    /// With --all or --fleet: how many VMs to work on at once.
    #[arg(long, default_value_t = 16, value_name = "K", requires = "many",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) parallel: u16,
    /// With --all or --fleet: keep each VM's whole output in DIR/NAME.stdout
    /// and DIR/NAME.stderr.
    #[arg(long, value_name = "DIR", requires = "many")]
    pub(crate) output_dir: Option<std::path::PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
}

/// `spuff cp`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --all: `spuff cp --all LOCAL :PATH` uploads to the same path \
on every recorded VM (`:DIR/` puts it inside DIR); one line per VM as it ends, then a \
table on stdout; exit code 0 when every VM has it, 1 otherwise."
)]
pub(crate) struct CpArgs {
    /// Source: a local path or NAME:path (`:path` for the active VM).
    pub(crate) source: String,
    /// Destination: a local path or NAME:path (`:path` for the active VM).
    pub(crate) destination: String,
    /// No progress bar.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Upload a local file or tree to every recorded VM at once.
    #[arg(long)]
    pub(crate) all: bool,
    /// Upload a local file or tree to every VM of this fleet at once.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub(crate) fleet: Option<String>,
}

/// `spuff tunnel`.
#[derive(Debug, Args)]
pub(crate) struct TunnelArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
    /// Extra forwards, as ssh -L: [bind:]port:host:hostport (repeatable).
    #[arg(short = 'L', long = "local", value_name = "SPEC")]
    pub(crate) local: Vec<String>,
    /// Local port for the VM's agent (0 picks a free one).
    #[arg(long, default_value_t = spuff::agent::api::DEFAULT_PORT)]
    pub(crate) agent_port: u16,
    /// Do not forward the agent port.
    #[arg(long)]
    pub(crate) no_agent: bool,
}

/// `spuff status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
    /// Redraw every few seconds until Ctrl-C.
    #[arg(long, short, conflicts_with = "fleet")]
    pub(crate) watch: bool,
    /// Every VM of this fleet (`up --count`): a table of their states as
    /// spuff recorded them and as the provider reports them now.
    #[arg(long, value_name = "NAME", conflicts_with = "name")]
    pub(crate) fleet: Option<String>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `spuff list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only local state; do not ask the provider.
    #[arg(long)]
    pub(crate) local: bool,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

/// `spuff dash`.
#[derive(Debug, Args)]
#[command(
    after_help = "Keys: up/down (or j/k) select, enter (or s) opens a shell, l follows the \
bootstrap log (Ctrl-C comes back), p snapshots, x destroys (both ask first), r refreshes now, \
q or Esc quits (exit 0), Ctrl-C quits (exit 130).\n\
Watching never counts as use: a VM left on the dashboard still reaches its idle stop."
)]
pub(crate) struct DashArgs {
    /// Seconds between two questions to each VM's agent (providers are
    /// asked every six, at least every 15 s).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub(crate) interval: u64,
    /// Print the table once and exit, even on a terminal (what happens
    /// anyway when stdout or stdin is not one).
    #[arg(long)]
    pub(crate) once: bool,
}

/// `spuff snapshot`.
#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Snapshot a VM.
    Create {
        /// The VM (default: the active one).
        name: Option<String>,
        /// The snapshot's name (default: <vm>-<date>).
        #[arg(long)]
        snapshot_name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List spuff's snapshots.
    List(JsonFlag),
    /// Roll a VM back to one of its snapshots, in place, and start it
    /// again (Proxmox, where a snapshot belongs to its VM; on the clouds
    /// `up --snapshot` makes a new VM from one). Everything written on the
    /// VM since the snapshot is lost.
    Rollback {
        /// The snapshot id (`VMID/NAME`, as `snapshot list` shows it).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        force: bool,
    },
    /// Delete a snapshot by id.
    Delete {
        /// The snapshot id.
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        force: bool,
    },
}

/// Which log `spuff logs` shows.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct LogChoice {
    /// cloud-init's output (/var/log/cloud-init-output.log).
    #[arg(long)]
    pub(crate) cloud_init: bool,
    /// The bootstrap's log (the default).
    #[arg(long)]
    pub(crate) bootstrap: bool,
    /// The agent's journal.
    #[arg(long)]
    pub(crate) agent: bool,
}

/// `spuff logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The VM (default: the active one).
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) which: LogChoice,
    /// Keep printing new lines until Ctrl-C.
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// How many lines from the end.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub(crate) lines: usize,
}

/// `spuff ssh-config`.
#[derive(Debug, Args)]
pub(crate) struct SshConfigArgs {
    /// Write `ForwardAgent yes` for the VMs (default: no; a root user on a
    /// compromised VM could use a forwarded agent).
    #[arg(long)]
    pub(crate) forward_agent: bool,
    /// Add the `Include` line to ~/.ssh/config without asking.
    #[arg(long, conflicts_with = "no_include")]
    pub(crate) include: bool,
    /// Only write spuff's file; never touch ~/.ssh/config.
    #[arg(long)]
    pub(crate) no_include: bool,
}

/// `spuff config`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Create the config file, asking for each value.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show the effective settings (secrets masked) and where they come from.
    Show(JsonFlag),
    /// Set KEY to VALUE (an empty VALUE removes the key).
    #[command(after_help = config_keys_help())]
    Set {
        /// The key.
        key: String,
        /// The value. Leave it out for a token (`api_token`, `agent_token`,
        /// `self_destroy_token`): it is then asked for without echo on a
        /// terminal, or read from stdin, and stays out of shell history.
        value: Option<String>,
    },
    /// Open the config file in $VISUAL / $EDITOR, then check it.
    Edit,
    /// Print the config file's path.
    Path,
}

fn config_keys_help() -> String {
    let mut out = String::from("Keys:\n");
    for (key, help) in spuff::config::KEYS {
        out.push_str(&format!("  {key:<14} {help}\n"));
    }
    out
}

/// Shells `spuff completions` knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
    /// PowerShell
    Powershell,
    /// elvish
    Elvish,
}

/// `spuff completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_should_be_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_should_take_the_command_after_the_separator() {
        let cli = Cli::try_parse_from(["spuff", "exec", "box", "--", "ls", "-la"]).unwrap();
        match cli.command {
            Command::Exec(args) => {
                assert_eq!(args.name.as_deref(), Some("box"));
                assert_eq!(args.command, ["ls", "-la"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
