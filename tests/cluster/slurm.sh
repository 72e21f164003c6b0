#!/usr/bin/env bash
# The tiny pipeline through profiles/slurm on a real single-node SLURM, as a user would run it:
#   * installs slurm-wlm + munge where it can (root + apt-get) and starts munged, slurmctld, slurmd;
#   * runs the same config locally (--cores 2) and through `--profile profiles/slurm` (sbatch jobs);
#   * requeues one training job after its first checkpoint (preemption): it must resume, not restart;
#   * every metrics.json of the SLURM run must equal the local run's byte for byte;
#   * stops the daemons by pid. Where SLURM cannot be installed it says so and exits 0.
#   --time-limit: instead of the requeue, the training jobs hit a 1-minute SLURM time limit and the
#   retries (2, 3, 4 minutes) resume them (~10 min: not in CI; its output is quoted in the README).
set -euo pipefail
MODE=${1:-requeue}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tests/cluster"
PY=${PYTHON:-$ROOT/.venv/bin/python}
skip() { echo "SLURM check SKIPPED: $*"; exit 0; }
t0=$SECONDS

if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || skip "SLURM is not installed, and installing it needs root"
  command -v apt-get >/dev/null 2>&1 || skip "SLURM is not installed, and there is no apt-get to install it"
  echo "== installing slurm-wlm and munge with apt-get"
  apt_log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; } >"$apt_log" 2>&1; then
    tail -5 "$apt_log"
    skip "apt-get could not install slurm-wlm and munge (no package registry?)"
  fi
fi
[ "$(id -u)" -eq 0 ] || skip "starting munged, slurmctld and slurmd needs root"
if sinfo >/dev/null 2>&1; then skip "a SLURM controller is already running here; not touching it"; fi
"$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || { echo "FAIL: snakemake-executor-plugin-slurm missing in $PY's environment (pip install -e '.[test]')"; exit 1; }

WORK=$(mktemp -d -t fashion-rembg-slurm.XXXXXX)
chmod 0755 "$WORK"
# SLURM_CHECK_DAEMONS_STAY=<dir>: the daemons keep running from <dir> after the check, for the caller
# to stop (`SLURM_RUN=<dir> stop_slurm.sh`): .ci/run runs the test suite beside this check.
export SLURM_RUN="${SLURM_CHECK_DAEMONS_STAY:-$WORK/slurm-daemons}"
cleanup() {
  local rc=$?
  [ -n "${SLURM_CHECK_DAEMONS_STAY:-}" ] || bash "$HERE/stop_slurm.sh" || true
  if [ "$rc" -ne 0 ]; then
    echo "== SLURM check FAILED (rc $rc); logs kept in $WORK"
  else
    [ -n "${KEEP_SLURM_WORK:-}" ] && echo "== kept $WORK" || rm -rf "$WORK"
  fi
}
trap cleanup EXIT
echo "== starting single-node SLURM ($(slurmctld -V))"
bash "$HERE/start_slurm.sh"
srun --time=1 hostname >/dev/null

"$PY" "$HERE/ci_config.py" "$WORK/tiny.yaml" "$MODE"
SMK=("$PY" -m snakemake --snakefile "$ROOT/Snakefile" --configfile "$WORK/tiny.yaml" --until train_classifier)
export PATH="$(dirname "$PY"):$PATH"

echo "== local reference run (--cores 2), in the background while SLURM runs the same config"
mkdir "$WORK/local"
(cd "$WORK/local" && timeout -k 10 600 "${SMK[@]}" --workflow-profile none --cores 2 >snakemake.log 2>&1 \
  && echo "   local run done after $((SECONDS - t0)) s") &
local_run=$!

# Preemption: once a training job has checkpointed its first epoch, requeue it (SLURM kills it and
# runs it again); the retry must resume from the checkpoint.
requeue_first_training() {
  for _ in $(seq 1 6000); do  # 10 min: in CI the test suite runs beside this check
    ckpt=$(find results/checkpoints/classification -name last.pt 2>/dev/null | head -1 || true)
    if [ -n "$ckpt" ]; then
      exp=$(basename "$(dirname "$(dirname "$ckpt")")")
      job=$(squeue -h -t RUNNING -o '%i %k' | awk -v e="$exp" 'index($2, "rule_train_classifier") && index($2, e) {print $1; exit}' || true)
      # The job may finish between the two looks: then wait for the other training's checkpoint.
      if [ -n "$job" ] && scontrol requeue "$job" 2>/dev/null; then
        echo "$exp $job" >requeued.txt
        echo "   requeued SLURM job $job (train_classifier $exp) after its checkpoint $ckpt"
        # SLURM holds a requeued job back (~150 s here); what is checked is the resume, not that wait.
        for _ in $(seq 1 300); do
          if [ "$(squeue -h -j "$job" -o %r 2>/dev/null)" = BeginTime ]; then
            scontrol update JobId="$job" StartTime=now && break
          fi
          sleep 0.1
        done
        return 0
      fi
    fi
    sleep 0.1
  done
  echo "   no training job to requeue was seen"
}

echo "== SLURM run: snakemake --profile profiles/slurm --workflow-profile profiles/slurm-noacct"
mkdir "$WORK/slurm"
cd "$WORK/slurm"
watcher=
[ "$MODE" = --time-limit ] || { requeue_first_training & watcher=$!; }
rc=0
# --time-limit: up to 3 retries (1, 2, 3, 4 minutes), each resuming where the last was killed.
EXTRA=()
[ "$MODE" = --time-limit ] && EXTRA=(--retries 3)
timeout -k 30 1200 "${SMK[@]}" --profile "$ROOT/profiles/slurm" --workflow-profile "$ROOT/profiles/slurm-noacct" \
  "${EXTRA[@]}" >snakemake.log 2>&1 || rc=$?
if [ -n "$watcher" ]; then
  [ "$rc" -eq 0 ] || kill "$watcher" 2>/dev/null || true
  wait "$watcher" || true
fi
grep -E "submitted with SLURM jobid|Finished jobid|steps \([0-9]+%\) done" snakemake.log | sed 's/^/   /'
if [ "$rc" -ne 0 ]; then tail -60 snakemake.log; exit "$rc"; fi
echo "   SLURM jobs (squeue --states=all):"
squeue --states=all -h -o '%.6i %.10T %.8M %V %S %e %k' | sed 's/^/     /'
echo "   done after $((SECONDS - t0)) s"

submitted=$(grep -c "submitted with SLURM jobid" snakemake.log || true)
[ "$submitted" -ge 5 ] || { echo "FAIL: only $submitted jobs went through sbatch"; exit 1; }
if [ "$MODE" = --time-limit ]; then
  grep -E "SLURM status is: 'TIMEOUT'|Trying to restart job" snakemake.log | sed 's/^/   /'
  grep -q "SLURM status is: 'TIMEOUT'" snakemake.log || { echo "FAIL: no job reached its time limit"; exit 1; }
  # A job that finished just before SLURM noticed its limit is retrained from scratch; at least one resumes.
  resumed=$(grep -l "resumed from .* after epoch" results/logs/train_classifier/*/seed-0.log || true)
  [ -n "$resumed" ] || { echo "FAIL: no training job resumed from its checkpoint after the time limit"; exit 1; }
  for train_log in $resumed; do
    echo "   $(grep -o 'resumed from .* after epoch [0-9]*' "$train_log" | sed 's|results/checkpoints/classification/||')"
  done
else
  [ -s requeued.txt ] || { echo "FAIL: no training job was requeued (preemption not exercised)"; exit 1; }
  read -r exp job <requeued.txt
  train_log="results/logs/train_classifier/$exp/seed-0.log"
  grep -q "resumed from .* after epoch" "$train_log" \
    || { echo "FAIL: requeued job $job did not resume from its checkpoint:"; cat "$train_log"; exit 1; }
  echo "   requeued job $job: $(grep -o 'resumed from .* after epoch [0-9]*' "$train_log")"
fi

wait "$local_run" || { echo "FAIL: the local run failed:"; tail -40 "$WORK/local/snakemake.log"; exit 1; }
echo "== SLURM results vs local results"
n=0
while IFS= read -r metrics; do
  cmp "$WORK/local/$metrics" "$metrics" || { echo "FAIL: $metrics differs from the local run"; exit 1; }
  n=$((n + 1))
done < <(cd "$WORK/local" && find results/runs -name metrics.json | sort)
[ "$n" -ge 2 ] || { echo "FAIL: only $n metrics.json files to compare"; exit 1; }
echo "   $n metrics.json byte-identical to the local run (incl. the preempted, resumed training)"
echo "== SLURM check passed in $((SECONDS - t0)) s"
