#!/usr/bin/env bash
# Spike for issue 11 (not run by CI): boots the image from ci/build-image.sh
# under QEMU the way the local provider will, and measures
#   QEMU start -> TCP accept on the forwarded port
#              -> SSH banner from the guest's sshd
#              -> SSH login with the pinned host key
#              -> `cloud-init status --wait` done
#   QMP system_powerdown -> QEMU process exit
#
# Usage: bash ci/boot-image-spike.sh IMAGE_DIR VM_DIR [USER_DATA_FILE]
#   SEED=iso (genisoimage -V cidata, default) or SEED=vfat (mtools, -v CIDATA)
#   ACCEL=tcg (default; see docs/design/local-provider.md about kvm_pvm)
#   PORT=... (default: a free one picked by the kernel)
#   KEEP=1 leaves the VM running (no powerdown)
# Without USER_DATA_FILE a minimal #cloud-config is written. With one, it is
# used as is; it must authorize VM_DIR/id_ed25519.pub and carry the host key
# in VM_DIR/host_ed25519 (both generated here when missing), and SSH_USER
# names the login user (default: debian).
set -euo pipefail

IMAGE_DIR=$(realpath "${1:?usage: boot-image-spike.sh IMAGE_DIR VM_DIR [USER_DATA]}")
VM_DIR=${2:?usage: boot-image-spike.sh IMAGE_DIR VM_DIR [USER_DATA]}
USER_DATA=${3:-}
SEED=${SEED:-iso}
ACCEL=${ACCEL:-tcg}
SSH_USER=${SSH_USER:-debian}
mkdir -p "$VM_DIR"
VM_DIR=$(realpath "$VM_DIR")

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[boot %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

# --- keys ----------------------------------------------------------------------
[[ -f "$VM_DIR/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C spuff-client -f "$VM_DIR/id_ed25519"
[[ -f "$VM_DIR/host_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C spuff-host -f "$VM_DIR/host_ed25519"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$VM_DIR/host_ed25519.pub")" >"$VM_DIR/known_hosts"

# --- seed ------------------------------------------------------------------------
rm -rf "$VM_DIR/seed" && mkdir "$VM_DIR/seed"
INSTANCE_ID="spuff-$(date +%s)-$RANDOM"
printf 'instance-id: %s\nlocal-hostname: spuff-local\n' "$INSTANCE_ID" >"$VM_DIR/seed/meta-data"
if [[ -n "$USER_DATA" ]]; then
  cp "$USER_DATA" "$VM_DIR/seed/user-data"
else
  {
    echo '#cloud-config'
    echo 'ssh_authorized_keys:'
    echo "  - $(cat "$VM_DIR/id_ed25519.pub")"
    echo 'ssh_deletekeys: true'
    echo 'ssh_genkeytypes: [ed25519]'
    echo 'ssh_keys:'
    echo '  ed25519_private: |'
    sed 's/^/    /' "$VM_DIR/host_ed25519"
    echo "  ed25519_public: $(cat "$VM_DIR/host_ed25519.pub")"
  } >"$VM_DIR/seed/user-data"
fi
case $SEED in
  iso)
    genisoimage -quiet -output "$VM_DIR/seed.img" -volid cidata -joliet -rock \
      "$VM_DIR/seed/user-data" "$VM_DIR/seed/meta-data"
    ;;
  vfat)
    rm -f "$VM_DIR/seed.img"
    truncate -s 2M "$VM_DIR/seed.img"
    mformat -i "$VM_DIR/seed.img" -v CIDATA ::
    mcopy -i "$VM_DIR/seed.img" "$VM_DIR/seed/user-data" "$VM_DIR/seed/meta-data" ::
    ;;
  *) log "SEED must be iso or vfat"; exit 2 ;;
esac

# --- disk --------------------------------------------------------------------------
rm -f "$VM_DIR/disk.qcow2"
qemu-img create -q -f qcow2 -b "$IMAGE_DIR/base.qcow2" -F qcow2 "$VM_DIR/disk.qcow2" 20G

# --- QEMU --------------------------------------------------------------------------
case $ACCEL in
  tcg) ACCEL_ARGS=(-accel "tcg,thread=multi" -cpu max -machine "q35,vmport=off") ;;
  kvm) ACCEL_ARGS=(-accel kvm -cpu host -machine "q35,vmport=off") ;;
  *) log "ACCEL must be tcg or kvm"; exit 2 ;;
esac
rm -f "$VM_DIR/qmp.sock" "$VM_DIR/qemu.pid" "$VM_DIR/console.log"
log "port $PORT, seed $SEED, accel $ACCEL, instance-id $INSTANCE_ID"
T0=$(now)
qemu-system-x86_64 \
  -name "spuff-local,process=spuff-local" \
  "${ACCEL_ARGS[@]}" -m 2048 -smp 2 \
  -nodefaults -no-user-config -display none -vga none \
  -kernel "$IMAGE_DIR/vmlinuz" -initrd "$IMAGE_DIR/initrd.img" \
  -append "$(cat "$IMAGE_DIR/cmdline")" \
  -drive "if=virtio,file=$VM_DIR/disk.qcow2,format=qcow2,discard=unmap" \
  -drive "if=virtio,file=$VM_DIR/seed.img,format=raw,readonly=on" \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
  -device virtio-net-pci,netdev=n0 \
  -device virtio-rng-pci \
  -serial "file:$VM_DIR/console.log" \
  -qmp "unix:$VM_DIR/qmp.sock,server=on,wait=off" \
  -pidfile "$VM_DIR/qemu.pid" \
  -daemonize
PID=$(cat "$VM_DIR/qemu.pid")
log "QEMU pid $PID daemonized after $(since "$T0") s"

fail() {
  log "FAILED: $*"
  tail -25 "$VM_DIR/console.log" >&2 || true
  kill "$PID" 2>/dev/null || true
  exit 1
}

SSH=(ssh -q -i "$VM_DIR/id_ed25519" -p "$PORT" -o BatchMode=yes -o ConnectTimeout=5
  -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VM_DIR/known_hosts"
  -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "$SSH_USER@127.0.0.1")

until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
  kill -0 "$PID" 2>/dev/null || fail "QEMU exited"
  sleep 0.2
done
T_TCP=$(since "$T0")
log "TCP accept after $T_TCP s"

until timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -c 4 <&3" 2>/dev/null | grep -q SSH-; do
  kill -0 "$PID" 2>/dev/null || fail "QEMU exited"
  awk -v a="$T0" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }' && fail "no SSH banner in 600 s"
  sleep 0.5
done
T_BANNER=$(since "$T0")
log "SSH banner after $T_BANNER s"

until "${SSH[@]}" true 2>"$VM_DIR/ssh.err"; do
  kill -0 "$PID" 2>/dev/null || fail "QEMU exited"
  awk -v a="$T0" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }' && fail "no SSH login in 600 s: $(cat "$VM_DIR/ssh.err")"
  sleep 0.5
done
T_LOGIN=$(since "$T0")
log "SSH login (pinned host key) after $T_LOGIN s"

CI_STATUS=$("${SSH[@]}" cloud-init status --wait --long 2>&1 || true)
T_CI=$(since "$T0")
log "cloud-init status --wait returned after $T_CI s:"
printf '%s\n' "$CI_STATUS" | sed 's/^/    /' >&2
"${SSH[@]}" 'systemd-analyze 2>/dev/null; uptime; ip -4 -br addr; ls /etc/systemd/network /run/systemd/network 2>/dev/null; sudo cat /opt/spuff/bootstrap.status 2>/dev/null' \
  >"$VM_DIR/guest-facts.txt" 2>&1 || true
sed 's/^/    /' "$VM_DIR/guest-facts.txt" >&2

if [[ -n "${KEEP:-}" ]]; then
  log "KEEP set: VM left running (pid $PID, port $PORT, qmp $VM_DIR/qmp.sock)"
  echo "RESULT tcp=$T_TCP banner=$T_BANNER login=$T_LOGIN cloudinit=$T_CI"
  exit 0
fi

# --- shutdown via QMP ----------------------------------------------------------------
T1=$(now)
printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"system_powerdown"}' |
  socat -t 2 - "UNIX-CONNECT:$VM_DIR/qmp.sock" >"$VM_DIR/qmp.out"
while kill -0 "$PID" 2>/dev/null; do
  awk -v a="$T1" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && { log "no exit 120 s after system_powerdown; SIGTERM"; kill "$PID"; }
  sleep 0.2
done
T_DOWN=$(since "$T1")
log "QEMU exited $T_DOWN s after system_powerdown"
echo "RESULT tcp=$T_TCP banner=$T_BANNER login=$T_LOGIN cloudinit=$T_CI powerdown=$T_DOWN"
