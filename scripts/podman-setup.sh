#!/usr/bin/env bash
# Configures podman (and buildah) for root in this kind of sandbox:
#   - runtime runc (crun fails on this cgroup setup),
#   - cgroup_manager cgroupfs (no systemd),
#   - storage driver vfs (no overlay mounts),
#   - default ulimits for nofile and nproc below the hard limits (the sandbox refuses raising
#     them, and even setting them equal to the hard limit fails inside runc).
# Idempotent; run as root. .ci/run calls it before the tests.
set -euo pipefail

cap() { # cap VALUE HARD: VALUE, or HARD-1 when the hard limit is lower
  if [ "$2" = "unlimited" ] || [ "$2" -gt "$1" ]; then echo "$1"; else echo $(($2 - 1)); fi
}
nofile=$(cap 16384 "$(ulimit -Hn)")
nproc=$(cap 4096 "$(ulimit -Hu)")

mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<CONF
# Written by ai-edge scripts/podman-setup.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

cat > /etc/containers/storage.conf <<CONF
# Written by ai-edge scripts/podman-setup.sh
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF

# Images are referenced fully qualified; no registry search and no short-name prompts.
if [ ! -f /etc/containers/registries.conf ] || ! grep -q 'ai-edge' /etc/containers/registries.conf; then
  cat > /etc/containers/registries.conf <<CONF
# Written by ai-edge scripts/podman-setup.sh
unqualified-search-registries = []
short-name-mode = "disabled"
CONF
fi

# A policy that accepts unsigned images (the default on Debian, written here if missing).
if [ ! -f /etc/containers/policy.json ]; then
  cat > /etc/containers/policy.json <<CONF
{ "default": [{ "type": "insecureAcceptAnything" }] }
CONF
fi
