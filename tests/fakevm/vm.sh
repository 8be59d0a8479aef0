#!/bin/sh
# The login of a fake spuff VM (tests/fakevm/mod.rs): sshd's ForceCommand,
#   ForceCommand /bin/sh vm.sh ROOT SFTP_SERVER
# runs every session through it. The VM's own files live under ROOT, so the
# paths spuff uses on a VM are mapped there, and the systemd and journald
# commands spuff sends are played by hand:
#   - no command (an interactive login): the user's shell;
#   - the SFTP subsystem (sshd sets SSH_ORIGINAL_COMMAND to the Subsystem's
#     command line, here SFTP_SERVER): that sftp-server;
#   - a leading `sudo -n ` is dropped (the session already has the rights);
#   - /opt/spuff/, /etc/spuff/ and /var/log/ are ROOT/opt/spuff/, ...;
#   - `systemctl ... enable --now|start|restart|stop spuff-agent...` starts or
#     stops ROOT/opt/spuff/spuff-agent with ROOT/etc/spuff/agent.json, in the
#     background (an arm64 agent under qemu-aarch64-static), logging to
#     ROOT/var/log/spuff-agent.log (its "journal");
#     any other systemctl fails (it would act on the test machine);
#   - `journalctl -u spuff-agent [-n N] [-f]` tails that log.
# The home directory is ROOT$HOME, and the working directory of every command.
set -euf

root=$1
sftp_server=$2

home=$root$HOME
mkdir -p "$home"
cd "$home"
HOME=$home
export HOME

if [ -z "${SSH_ORIGINAL_COMMAND+set}" ]; then
    exec "${SHELL:-/bin/sh}" -l
fi
cmd=$SSH_ORIGINAL_COMMAND

if [ "$cmd" = "$sftp_server" ]; then
    exec "$sftp_server"
fi

case $cmd in
    "sudo -n "*) cmd=${cmd#sudo -n } ;;
esac

# ROOT as a sed replacement: `\`, `#` and `&` escaped.
r=$(printf '%s\n' "$root" | sed 's/[\\#&]/\\&/g')
# A VM path starts the command or follows a character that cannot be part of
# a path (a space, a quote, `=`), so a path already under ROOT stays as it is.
map=
for p in /opt/spuff/ /etc/spuff/ /var/log/; do
    map="$map -e s#^$p#$r$p# -e s#\\([^[:alnum:]_./-]\\)$p#\\1$r$p#g"
done
# $map is a list of sed arguments (none holds a space: ROOT has none; set -f
# keeps the brackets from globbing).
# shellcheck disable=SC2086
cmd=$(printf '%s\n' "$cmd" | sed $map)

agent=$root/opt/spuff/spuff-agent
pidfile=$root/run/spuff-agent.pid
journal=$root/var/log/spuff-agent.log

agent_running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# An arm64 agent (ELF e_machine 183) on another machine runs under QEMU's
# user-mode emulator, as a real arm64 VM would run it natively.
start_agent() {
    mkdir -p "$root/run" "$root/var/log"
    runner=
    machine=$(od -An -j18 -N2 -tu2 "$agent" | tr -d ' ')
    if [ "$machine" = 183 ] && [ "$(uname -m)" != aarch64 ]; then
        runner=qemu-aarch64-static
    fi
    # $runner is empty or one word.
    # shellcheck disable=SC2086
    nohup $runner "$agent" --config "$root/etc/spuff/agent.json" \
        >>"$journal" 2>&1 </dev/null &
    echo "$!" >"$pidfile"
}

stop_agent() {
    if agent_running; then
        kill "$(cat "$pidfile")"
    fi
    rm -f "$pidfile"
}

# `journalctl -u spuff-agent --no-pager -n N [-f]`, as `spuff logs --agent`.
tail_journal() {
    lines=10
    follow=
    while [ $# -gt 0 ]; do
        case $1 in
            -n | --lines) lines=$2; shift ;;
            -n*) lines=${1#-n} ;;
            --lines=*) lines=${1#--lines=} ;;
            -f | --follow) follow=-f ;;
        esac
        shift
    done
    touch "$journal"
    # shellcheck disable=SC2086
    exec tail -n "$lines" $follow -- "$journal"
}

case $cmd in
    *systemctl*spuff-agent*)
        case $cmd in
            *"systemctl restart "* | *"systemctl stop "*) stop_agent ;;
        esac
        case $cmd in
            *--now* | *"systemctl start "* | *"systemctl restart "*)
                agent_running || start_agent ;;
        esac
        exit 0
        ;;
    *systemctl*)
        echo "fake VM: no systemd here: $cmd" >&2
        exit 1
        ;;
    "journalctl -u spuff-agent "* | "journalctl -u spuff-agent")
        # shellcheck disable=SC2086
        set -- $cmd
        shift 3
        tail_journal "$@"
        ;;
    journalctl*)
        echo "fake VM: no journal here: $cmd" >&2
        exit 1
        ;;
esac

exec "${SHELL:-/bin/sh}" -c "$cmd"
