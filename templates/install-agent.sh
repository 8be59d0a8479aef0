#!/bin/bash
# install-agent.sh URL SHA256 DEST
#
# Installs the spuff-agent binary on a spuff VM: downloads URL with curl,
# checks its SHA-256 against the one that came in the user-data, and only
# then moves it to DEST (mode 0755) with a rename, so DEST is either the old
# file or the complete, verified new one. A failed download or a checksum
# mismatch leaves no binary behind and exits non-zero.
#
# Only https:// URLs are accepted: the checksum guards the content, TLS keeps
# the URL's host honest. SPUFF_INSTALL_ALLOW_LOOPBACK_HTTP=1 also allows
# http://127.0.0.1, for spuff's tests, which serve the file locally.
#
# Written by spuff's cloud-init (templates/install-agent.sh).
set -euo pipefail

die() {
  printf 'install-agent: %s\n' "$*" >&2
  exit 1
}

if [ "$#" -ne 3 ]; then
  printf 'usage: install-agent.sh URL SHA256 DEST\n' >&2
  exit 2
fi
url=$1
want=$2
dest=$3

protocols='=https'
case $url in
  https://*) ;;
  http://127.0.0.1:* | http://127.0.0.1/*)
    [ "${SPUFF_INSTALL_ALLOW_LOOPBACK_HTTP:-}" = 1 ] || die "refusing plain-http URL $url (https only)"
    protocols='=http'
    ;;
  *) die "refusing URL $url (https only)" ;;
esac

want=$(printf '%s' "$want" | tr 'A-F' 'a-f')
case $want in
  *[!0-9a-f]*) die "not a SHA-256 hex digest: $want" ;;
esac
[ "${#want}" -eq 64 ] || die "not a SHA-256 hex digest: $want"

case $dest in
  /*) ;;
  *) die "DEST must be an absolute path: $dest" ;;
esac
dir=$(dirname "$dest")
mkdir -p "$dir"

# The temporary file sits next to DEST so that the final mv is a rename on
# one filesystem (atomic), and it is removed on every failure path.
tmp=$(mktemp "$dir/.spuff-agent.download.XXXXXX")
trap 'rm -f "$tmp"' EXIT

printf 'install-agent: downloading %s\n' "$url"
# --fail: an HTTP error is an error, not a saved error page. --retry covers
# transient failures (timeouts, 5xx, refused connections while the network
# comes up); a 404 is not retried. --proto/--proto-redir: no downgrade to
# another scheme on a redirect.
curl --fail --silent --show-error --location \
  --proto "$protocols" --proto-redir "$protocols" \
  --retry 5 --retry-delay 2 --retry-connrefused \
  --connect-timeout 15 --max-time 600 \
  --output "$tmp" -- "$url" || die "download failed: $url"

got=$(sha256sum -- "$tmp" | cut -d ' ' -f 1)
if [ "$got" != "$want" ]; then
  die "checksum mismatch for $url: expected $want, got $got"
fi

chmod 0755 "$tmp"
mv -f -- "$tmp" "$dest"
trap - EXIT
printf 'install-agent: installed %s (sha256 %s)\n' "$dest" "$got"
