# shellcheck shell=sh
# spuff: only root may reach the provider's metadata service.
#
# The user-data spuff sends holds the VM's SSH host private key and the
# agent token, and clouds serve user-data to any process that asks
# 169.254.169.254 (fd00:ec2::254 on AWS over IPv6) for the VM's whole life:
# a web app's SSRF or any unprivileged user could read both. Root can read
# them from disk anyway (/etc/ssh, /etc/spuff), so this takes nothing root
# needs. cloud-init's bootcmd runs it on every boot (rules do not survive a
# reboot), after cloud-init has read its datasource. nft first, iptables
# else; with neither, it says so on the console and the journal.
#
# Static: it takes no input. templates/metadata-guard.sh in the spuff sources.
if command -v nft >/dev/null 2>&1; then
  nft delete table inet spuff_metadata 2>/dev/null
  nft -f - <<'EOF' && exit 0
table inet spuff_metadata {
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr 169.254.169.254 meta skuid != 0 reject
    ip6 daddr fd00:ec2::254 meta skuid != 0 reject
  }
}
EOF
fi
if command -v iptables >/dev/null 2>&1; then
  iptables -D OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT 2>/dev/null
  if iptables -I OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT; then
    if command -v ip6tables >/dev/null 2>&1; then
      ip6tables -D OUTPUT -d fd00:ec2::254 -m owner ! --uid-owner 0 -j REJECT 2>/dev/null
      ip6tables -I OUTPUT -d fd00:ec2::254 -m owner ! --uid-owner 0 -j REJECT
    fi
    exit 0
  fi
fi
msg="spuff: the metadata service stays open to every user (no nft or iptables)"
echo "$msg" >&2
logger -t spuff "$msg" 2>/dev/null
exit 0
