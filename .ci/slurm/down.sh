#!/usr/bin/env bash
# Stops the one-node SLURM cluster of .ci/slurm/up.sh: its daemons, by their pid files, in the
# reverse order of their start. Its configuration, accounting database and logs stay
# (/etc/slurm, /var/lib/mysql, /var/log/mnistbench-slurm), so `up.sh` brings it back as it was.
set -euo pipefail
RUN=/run/mnistbench-slurm
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo -n)
for pidfile in "$RUN/slurmd.pid" "$RUN/slurmctld.pid" "$RUN/slurmdbd.pid" \
  /run/mysqld/mysqld.pid /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || continue
  echo "slurm-down: stopping $(basename "$pidfile" .pid) ($pid)" >&2
  "${SUDO[@]}" kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
done
