#!/usr/bin/env bash
# Checks `fmlab curate --slurm` on a real single-node Slurm from Debian's packages
# (slurm-wlm, munge; slurmctld and slurmd on localhost, state in a temporary folder):
# the FineWeb recipe over a world's corpus cut into 6 files, as Slurm array jobs with
# W = 3 ranks chained by job dependencies, must give the same output as one process.
#
#   bash scripts/check_slurm_curate.sh [W]      (as root: it installs and starts daemons)
#
# Prints the job ids, the array tasks that ran, and whether the outputs are identical.
set -euo pipefail
W=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}
FMLAB="$CARGO_TARGET_DIR/release/fmlab"
(cd "$ROOT" && cargo build --release -q -p fmlab-cli)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

WORK=$(mktemp -d /tmp/fmlab-slurm.XXXXXX)
trap 'pkill -f "slurmd -f $WORK" 2>/dev/null || true; pkill -f "slurmctld -f $WORK" 2>/dev/null || true' EXIT

# munge: a key and a daemon (reused when one already runs).
if ! pgrep -x munged >/dev/null; then
  mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  if id munge >/dev/null 2>&1; then su -s /bin/sh munge -c munged || munged --force; else munged --force; fi
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
cat > "$WORK/slurm.conf" <<CONF
ClusterName=fmlab
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$WORK/slurm.conf"
slurmctld -f "$WORK/slurm.conf"
slurmd -f "$WORK/slurm.conf"
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break; sleep 1; done
echo "== sinfo"; sinfo

# The input: a world's corpus in 6 files.
"$FMLAB" world --size 3MB --seed 7 --out "$WORK/world" >/dev/null
mkdir -p "$WORK/in"
split -n l/6 -d --additional-suffix=.jsonl "$WORK/world/corpus.jsonl" "$WORK/in/part-"

echo "== fmlab curate --slurm (W=$W)"
"$FMLAB" curate "$WORK/in" --out "$WORK/slurm-run" --recipe fineweb --world-size "$W" --slurm
for _ in $(seq 600); do
  [ -z "$(squeue -h 2>/dev/null)" ] && break
  sleep 1
done
echo "== array tasks that ran (logs)"
ls "$WORK/slurm-run/slurm/logs"
[ -f "$WORK/slurm-run/report.json" ] || { echo "no report.json: see $WORK/slurm-run/slurm/logs and $WORK/log"; exit 1; }

echo "== one process"
"$FMLAB" curate "$WORK/in" --out "$WORK/one" --recipe fineweb --json > "$WORK/one.json"

same=yes
(cd "$WORK/slurm-run/output" && find . -type f | sort | xargs sha256sum) > "$WORK/a.sums"
(cd "$WORK/one/output" && find . -type f | sort | xargs sha256sum) > "$WORK/b.sums"
diff "$WORK/a.sums" "$WORK/b.sums" || same=no
python3 - "$WORK/slurm-run/report.json" "$WORK/one/report.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print("blocks (Slurm, W ranks):", [(x["name"], x["documents_in"], x["documents_out"]) for x in a["blocks"]])
print("blocks (one process):  ", [(x["name"], x["documents_in"], x["documents_out"]) for x in b["blocks"]])
sys.exit(0 if a["blocks"] == b["blocks"] else 1)
PY
[ $? -eq 0 ] || same=no
echo "output files: $(wc -l < "$WORK/a.sums"); identical outputs and report blocks: $same"
[ "$same" = yes ]
