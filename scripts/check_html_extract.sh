#!/usr/bin/env bash
# fmlab's HTML main-text extractor (BlockDensity, crates/fmlab-curate/src/read/html.rs)
# compared with trafilatura on the same pages: word-level precision/recall/F1 of ours
# against trafilatura's output, and the speed of both. Pages: HTML documentation installed
# on this machine (the kernel's Sphinx docs with their navigation sidebars, Node.js API
# docs, valgrind, libxslt…) and the hand-made boilerplate pages of
# crates/fmlab-curate/tests/fixtures/io/html/. Arguments go to check_html_extract.py
# (--max-pages N, --json FILE, extra HTML files or folders).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
cargo build --release -p fmlab-curate --example extract_html
venv="${FMLAB_DT_VENV:-$HOME/.cache/fmlab/venv-datatrove}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import trafilatura' 2>/dev/null \
  || "$venv/bin/pip" install -q 'trafilatura>=1.11' lxml_html_clean
EXTRACT="$CARGO_TARGET_DIR/release/examples/extract_html" \
  "$venv/bin/python" scripts/check_html_extract.py "$@"
