#!/usr/bin/env bash
# The servers the tests run for real, from Debian's packages, installed when missing:
# redis-server (proxy store), slurmctld/slurmd + munge (SlurmProvider), chromium (the report).
# Idempotent and quiet; uses sudo when not root. Part of the README's test command.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "installing the test servers: ${need[*]}"
    ("${as_root[@]}" apt-get update -qq &&
     DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${need[@]}") >/dev/null
fi
