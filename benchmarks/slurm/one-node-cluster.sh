#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for camkit's executor tests (tests/test_slurm.py) and for
# trying `camkit bench --executor slurm` without a cluster. Needs root and Debian's slurm-wlm + munge
# (apt-get install slurm-wlm munge). Idempotent: re-running restarts the daemons with a fresh config.
#   benchmarks/slurm/one-node-cluster.sh          start (prints the node's state)
#   benchmarks/slurm/one-node-cluster.sh stop     stop the daemons
set -euo pipefail
CONF_DIR=/etc/slurm
STATE=/var/spool/slurm
if [ "${1:-start}" = "stop" ]; then
  pkill -x slurmd 2>/dev/null || true; pkill -x slurmctld 2>/dev/null || true; pkill -x munged 2>/dev/null || true
  exit 0
fi
for bin in slurmctld slurmd munged sinfo; do
  command -v "$bin" >/dev/null || { echo "no $bin: apt-get install slurm-wlm munge" >&2; exit 2; }
done
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" /var/log/slurm /run/munge /etc/munge /var/lib/munge /var/log/munge
cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=camkit-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
# a cancelled job gets SIGKILL 2 s after SIGTERM (submitit lets its job run on through SIGTERM)
KillWait=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pkill -x slurmd 2>/dev/null || true; pkill -x slurmctld 2>/dev/null || true
pgrep -x munged >/dev/null || (su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force)
slurmctld -c
slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    sinfo; exit 0
  fi
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm did not come up: see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
