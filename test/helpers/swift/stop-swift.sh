#!/usr/bin/env bash
# stop-swift.sh WORKDIR [--purge]
#
# Stops what start-swift.sh started in WORKDIR: SIGTERM to each pid in WORKDIR/run/*.pid, up to
# 5 s for them to exit, then SIGKILL. Each pid is checked first (alive, not a zombie, and its
# command line names WORKDIR/etc/, or it is a memcached) so a recycled pid is never hit. Servers
# run with workers = 0 (one process each, own process group), so there are no children to chase.
# --purge also deletes WORKDIR, but only if it looks like one of ours (WORKDIR/etc/swift.conf).
# Idempotent: safe to call twice, or on a dir where start failed. Always exits 0 unless misused.
set -euo pipefail

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 WORKDIR [--purge]" >&2; exit 2; }
[[ $# -eq 1 || $2 == --purge ]] || { echo "usage: $0 WORKDIR [--purge]" >&2; exit 2; }
[[ -d $1 ]] || exit 0
WORK=$(cd "$1" && pwd -P)
RUN=$WORK/run

ours() {
  local pid=$1 cmd state
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$WORK/etc/"* || $cmd == memcached\ * || $cmd == */memcached\ * ]]
}

pids=()
for f in "$RUN"/*.pid; do
  [[ -e $f ]] || continue
  pid=$(<"$f")
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
  rm -f "$f"
done

if (( ${#pids[@]} )); then
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do ours "$pid" && alive=1; done
    (( alive )) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if ours "$pid"; then
      echo "stop-swift: pid $pid ignored SIGTERM for 5 s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
fi

if [[ ${2:-} == --purge && -f $WORK/etc/swift.conf ]]; then
  rm -rf -- "$WORK"
fi
exit 0
