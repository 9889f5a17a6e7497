#!/usr/bin/env bash
# Measures fmlab-curate's language identification (cascade, hashed and lingua backends) and
# the fastText-style classifier: a 2 MB world (en/fr/sw, `lang` and `domain` fields) and,
# when it is built, the reference corpus's English (~/.cache/fmlab/curation/corpus).
# Prints accuracy per language (prose, and code+tables), confusions, the shipped held-out
# sentences' accuracy per language, documents/s, and the classifier's held-out accuracy
# per domain and per language with its training and prediction speed.
#
#   bash scripts/check_langid.sh [cascade|hashed|lingua]   # one backend, no classifier
set -euo pipefail
cd "$(dirname "$0")/.."
world=${TMPDIR:-/tmp}/fmlab-check-langid-world
cargo run --release -q -p fmlab-cli -- world --size 2MB --out "$world"
english=$HOME/.cache/fmlab/curation/corpus/docs.jsonl
[ -f "$english" ] || english=/dev/null
args=("$world")
if [ "$english" != /dev/null ]; then args+=("$english"); elif [ $# -gt 0 ]; then args+=(/dev/null); fi
[ $# -gt 0 ] && args+=("$1")
cargo run --release -q -p fmlab-curate --example langid_classifier_measure -- "${args[@]}"
