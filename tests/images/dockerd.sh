#!/usr/bin/env bash
# Makes sure a Docker daemon answers on /var/run/docker.sock (or $DOCKER_HOST): installs Debian's
# docker.io when dockerd is missing, and starts dockerd in the background when none runs (no
# systemd here). Logs go to ${BERTH_DOCKERD_LOG:-/var/log/berth-dockerd.log}. Idempotent.
set -euo pipefail

say() { printf '[dockerd] %s\n' "$*"; }
die() { printf '[dockerd] FAILED: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  say "installing Debian's docker.io"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
    || die "apt-get install docker.io failed"
fi
log="${BERTH_DOCKERD_LOG:-/var/log/berth-dockerd.log}"
say "starting dockerd (log: $log)"
as_root sh -c "nohup dockerd >'$log' 2>&1 &"
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    say "dockerd is up"
    exit 0
  fi
  sleep 0.5
done
tail -n 20 "$log" >&2 || true
die "dockerd did not answer within 30 s (log: $log)"
