#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on this machine, for CI and for anyone who wants to run
# the workflow's SLURM path for real (docs/cluster.md). Idempotent: run it again and it only
# starts what is not running.
#   bash .ci/slurm/up.sh          # as root (or with sudo -n); ~1 min the first time
#   bash .ci/slurm/down.sh        # stops the daemons this script started
# Debian/Ubuntu packages (slurm-wlm, munge, slurmdbd, mariadb-server) are installed when missing.
# The daemons run as plain processes (no systemd): munged, mariadbd, slurmdbd, slurmctld, slurmd.
# slurm.conf describes this machine as `slurmd -C` sees it (its cores and memory); the cluster
# is named mnistbench, its one partition `debug` (the default), and root is a user of the
# account mnistbench. Jobs over their memory are killed (JobAcctGatherParams=OverMemoryKill).
set -euo pipefail

CLUSTER=mnistbench
RUN=/run/mnistbench-slurm          # the SLURM daemons' pid files
LOG=/var/log/mnistbench-slurm      # the daemons' logs
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo -n)

say() { echo "slurm-up: $*" >&2; }
pidfile() {
  case $1 in
  munged) echo /run/munge/munged.pid ;;
  mariadbd) echo /run/mysqld/mysqld.pid ;;
  *) echo "$RUN/$1.pid" ;;
  esac
}
running() { [ -s "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

# 1. Packages.
missing=()
for pair in sinfo:slurm-wlm slurmctld:slurm-wlm munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null || PATH=$PATH:/usr/sbin command -v "${pair%%:*}" >/dev/null ||
    missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing ${missing[*]}"
  apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin

"${SUDO[@]}" mkdir -p "$RUN" "$LOG" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge
"${SUDO[@]}" chown munge:munge /run/munge

# 2. slurm.conf and slurmdbd.conf for this machine (rewritten only when they change).
node=$(slurmd -C | head -1)        # NodeName=<host> CPUs=... RealMemory=...
host=$(hostname -s)
conf=$(mktemp)
cat >"$conf" <<EOF
# Written by mnistbench's .ci/slurm/up.sh: a one-node cluster on this machine.
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
InactiveLimit=0
KillWait=10
MinJobAge=300
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
changed=0
if ! cmp -s "$conf" /etc/slurm/slurm.conf; then
  "${SUDO[@]}" install -m 644 "$conf" /etc/slurm/slurm.conf
  changed=1
fi
cat >"$conf" <<EOF
# Written by mnistbench's .ci/slurm/up.sh.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
"${SUDO[@]}" install -m 600 "$conf" /etc/slurm/slurmdbd.conf
rm -f "$conf"

# 3. The daemons, each started only when it is not running.
if ! running munged; then
  say "starting munged"
  "${SUDO[@]}" runuser -u munge -- munged
fi
if ! running mariadbd; then
  say "starting mariadbd"
  "${SUDO[@]}" mkdir -p /run/mysqld && "${SUDO[@]}" chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || "${SUDO[@]}" mariadb-install-db --user=mysql >/dev/null
  "${SUDO[@]}" bash -c "mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
    >>$LOG/mariadbd.log 2>&1 &"
  for _ in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
"${SUDO[@]}" mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
if ! running slurmdbd; then
  say "starting slurmdbd"
  "${SUDO[@]}" slurmdbd
  for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
fi
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
  "${SUDO[@]}" sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [ -z "$(sacctmgr -n -P list account "$CLUSTER" format=account)" ]; then
  "${SUDO[@]}" sacctmgr -i add account "$CLUSTER" description=mnistbench organization=mnistbench >/dev/null
fi
user=$(id -un)
for who in root "$user"; do
  if [ -z "$(sacctmgr -n -P list user "$who" format=user)" ]; then
    "${SUDO[@]}" sacctmgr -i add user "$who" account="$CLUSTER" >/dev/null
  fi
done
if [ "$changed" = 1 ]; then
  # a new slurm.conf: restart what read the old one
  for d in slurmd slurmctld; do
    if running "$d"; then "${SUDO[@]}" kill "$(cat "$(pidfile "$d")")"; fi
  done
  sleep 1
fi
if ! running slurmctld; then
  say "starting slurmctld"
  "${SUDO[@]}" slurmctld
fi
if ! running slurmd; then
  say "starting slurmd"
  "${SUDO[@]}" slurmd
fi

# 4. Wait until the node takes jobs.
for i in $(seq 120); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  case "$state" in
  idle | mix | alloc) break ;;
  down* | drain* | inval*) [ $((i % 10)) = 0 ] && "${SUDO[@]}" scontrol update nodename="$host" state=resume ;;
  esac
  sleep 0.5
done
if [[ ! "$state" =~ ^(idle|mix|alloc)$ ]]; then
  say "the node is '${state:-not known}' after 60 s; see $LOG/*.log"
  exit 1
fi
say "cluster $CLUSTER is up: $(sinfo -h -N -o '%N %t cpus=%c mem=%m')"
