#!/usr/bin/env bash
# One core (taskset -c 0, RAYON_NUM_THREADS=1): documents/s and MB/s (MB of document text)
# of (a) FineWeb's four quality filters and (b) MinHash deduplication, all four stages
# (5-grams, 14 buckets × 8 hashes, 64-bit xxhash), `fmlab curate --recipe fineweb-filters`
# and `--recipe minhash` against datatrove 0.10.1 (bench/curate_datatrove.py: the same
# pipelines on LocalPipelineExecutor, one worker) on the curation reference corpus
# (/work/shared/curation/build_corpus.py → ~/.cache/fmlab/curation/corpus/docs.jsonl,
# CORPUS=path for another). Wall time of the whole process, medians of REPS (3) runs;
# ratio = datatrove's time / fmlab's, for wall and for CPU time (user + system, which the
# other tenants of a shared machine do not inflate).
# DATATROVE=0 skips datatrove (its figures on a 2-core EPYC are in the corpus README).
source "$(dirname "$0")/lib.sh"
REPS="${REPS:-3}"
corpus="${CORPUS:-$HOME/.cache/fmlab/curation/corpus/docs.jsonl}"
[ -f "$corpus" ] || { echo "no corpus at $corpus: build it with /work/shared/curation/build_corpus.py" >&2; exit 1; }
dtvenv="${DATATROVE_VENV:-$HOME/.cache/fmlab/venv-datatrove}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export RAYON_NUM_THREADS=1
docs=$(wc -l < "$corpus")
mb=$(python3 -c "import json,sys; print(sum(len(json.loads(l)['text'].encode()) for l in open(sys.argv[1])) / 1e6)" "$corpus")

# One thread, uncompressed output: as datatrove's reference runs wrote theirs.
fmlab_cmd() { "$FMLAB" curate "$corpus" --out "$work/out" --recipe "$1" --threads 1 --compression none --json; }
if [ "${DATATROVE:-1}" = 1 ]; then
  [ -x "$dtvenv/bin/python" ] || python3 -m venv "$dtvenv"
  "$dtvenv/bin/python" -c "import datatrove, spacy, xxhash, orjson" 2> /dev/null ||
    "$dtvenv/bin/pip" install --quiet "datatrove[processing]==0.10.1" spacy xxhash orjson
fi
datatrove_cmd() { "$dtvenv/bin/python" "$root/bench/curate_datatrove.py" "$1" "$corpus" "$work/out"; }

# timed TOOL RECIPE: median wall seconds of REPS runs on core 0 (a fresh output folder each
# run), the median CPU seconds (user + system, the fair figure on a shared machine) and the
# documents out of the last run's report; prints "seconds cpu_seconds documents_out", or
# nothing when the tool cannot run the recipe.
timed() {
  local times=() cpus=() out
  for _ in $(seq "$REPS"); do
    rm -rf "$work/out"
    local t0 t1
    t0=$(date +%s%N)
    (taskset -cp 0 "$BASHPID" > /dev/null && "${1}_cmd" "$2" > "$work/stdout" 2> "$work/err" && times > "$work/times") ||
      return 0
    t1=$(date +%s%N)
    out=$(cat "$work/stdout")
    times+=("$(( (t1 - t0) / 1000 ))")
    # `times`' second line: the children's user and system time, "XmY.YYYs XmY.YYYs".
    cpus+=("$(sed -n 2p "$work/times" | awk '{s = 0; for (i = 1; i <= 2; i++) {split($i, p, "m"); s += p[1] * 60 + p[2]} printf "%d", s * 1e6}')")
  done
  local med cpu n_out
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)] / 1e6}')
  cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)] / 1e6}')
  n_out=$(printf '%s' "$out" | python3 -c "
import json, sys
text = sys.stdin.read()
try: r = json.loads(text)
except ValueError: r = json.loads(text.strip().splitlines()[-1])
print(r['blocks'][-1]['documents_out'])")
  echo "$med $cpu $n_out"
}

printf '| pipeline | tool | documents in → out | median wall s | documents/s | MB/s | median CPU s | documents/CPU s | ratio (wall) | ratio (CPU) |\n|---|---|---|---|---|---|---|---|---|---|\n'
for recipe in fineweb-filters minhash; do
  read -r f_s f_c f_out <<< "$(timed fmlab "$recipe")" || true
  d_s=""
  if [ "${DATATROVE:-1}" = 1 ]; then read -r d_s d_c d_out <<< "$(timed datatrove "$recipe")" || true; fi
  for tool in fmlab datatrove; do
    if [ "$tool" = fmlab ]; then s="${f_s:-}"; c="${f_c:-}"; o="${f_out:-}"; else s="${d_s:-}"; c="${d_c:-}"; o="${d_out:-}"; fi
    if [ -z "$s" ]; then printf '| %s | %s | not run | | | | | | | |\n' "$recipe" "$tool"; continue; fi
    ratio="| "
    if [ "$tool" = fmlab ] && [ -n "$d_s" ]; then
      ratio=$(awk -v d="$d_s" -v f="$s" -v dc="$d_c" -v fc="$c" 'BEGIN {printf "%.0f× | %.0f×", d / f, dc / fc}')
    fi
    awk -v r="$recipe" -v t="$tool" -v n="$docs" -v o="$o" -v s="$s" -v c="$c" -v mb="$mb" -v ratio="$ratio" \
      'BEGIN {printf "| %s | %s | %d → %d | %.3f | %.1f | %.3f | %.3f | %.1f | %s |\n", r, t, n, o, s, n / s, mb / s, c, n / c, ratio}'
  done
done
