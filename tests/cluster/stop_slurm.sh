#!/usr/bin/env bash
# Stop the daemons of start_slurm.sh by their pid files (never by name).
SLURM_RUN=${SLURM_RUN:-$(sed -n 's|^StateSaveLocation=\(.*\)/state$|\1|p' /etc/slurm/slurm.conf 2>/dev/null)}
stop_pidfile() {
  [ -s "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$1"
}
[ -n "$SLURM_RUN" ] && for f in "$SLURM_RUN/slurmd.pid" "$SLURM_RUN/slurmctld.pid"; do stop_pidfile "$f"; done
if [ -n "$SLURM_RUN" ] && [ -e "$SLURM_RUN/munged.ours" ]; then stop_pidfile /run/munge/munged.pid; rm -f "$SLURM_RUN/munged.ours"; fi
