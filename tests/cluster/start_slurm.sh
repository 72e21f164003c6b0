#!/usr/bin/env bash
# A single-node SLURM on localhost for CI (root, no systemd, no accounting database, no cgroups).
# Prints SLURM_RUN=<dir>; stop_slurm.sh stops the daemons by their pid files.
set -euo pipefail
SLURM_RUN=${SLURM_RUN:-$(mktemp -d -t slurm-ci.XXXXXX)}
mkdir -p "$SLURM_RUN" && chmod 0755 "$SLURM_RUN"  # job users must traverse the spool dir
mkdir -p "$SLURM_RUN"/{state,spool,log}

[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge && chmod 0755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  touch "$SLURM_RUN/munged.ours"  # stop_slurm.sh stops only a munged started here
  for _ in $(seq 1 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n | unmunge >/dev/null

NCPU=$(nproc)
# RealMemory above what slurmd detects drains the node: use what it reports, less a margin.
DETECTED_MB=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEM_MB=${SLURM_MEM_MB:-$((DETECTED_MB * 3 / 4))}
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
# Finished jobs stay visible to squeue (the status command without accounting) for 10 min.
MinJobAge=600
# Time limits are enforced promptly (the preemption check relies on it).
KillWait=5
OverTimeLimit=0
SchedulerType=sched/backfill
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_RUN/state
SlurmdSpoolDir=$SLURM_RUN/spool
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmctldLogFile=$SLURM_RUN/log/slurmctld.log
SlurmdLogFile=$SLURM_RUN/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i
slurmd -N localhost
for _ in $(seq 1 60); do sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break; sleep 0.5; done
sinfo
echo "SLURM_RUN=$SLURM_RUN"
