"""Checks a `tokenizer.model` that fmlab wrote (`fmlab_tokenizer::sentencepiece`) with
Google's own `sentencepiece` library: it must load, and encode the fixture texts to the ids
llama.cpp gave for the reference Gemma 3 (fixtures/reference/gemma-3-270m-q4_k_m.json,
`plain`: no BOS, no special-token parsing).

    ~/.cache/fmlab/venv-llama/bin/pip install sentencepiece
    cargo test -p fmlab-cli --test it -- convert_gemma3   # leaves the folder in /tmp
    ~/.cache/fmlab/venv-llama/bin/python scripts/check_sentencepiece.py \
        /tmp/fmlab-cli-test-*-convert-gemma3/hf/tokenizer.model

Prints one line per text (agreeing ids, or the first token that differs) and exits
non-zero on any difference. Seen on 2026-12-05 (sentencepiece 0.2.3): code, english and
multilingual identical; edge.txt differs at token 161 of 171, at the text `</s>`: the
piece is user-defined in Gemma's vocabulary, which SentencePiece always matches whole,
while llama.cpp makes end-of-generation tokens control tokens at load and, without special
parsing, spells them out (`▁</`, `s`, `>`). That is llama.cpp's behaviour, not the file's.
"""

import json
import pathlib
import sys

import sentencepiece

root = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
reference = json.loads((root / "reference" / "gemma-3-270m-q4_k_m.json").read_text())
sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
print(f"{sys.argv[1]}: {sp.get_piece_size()} pieces, sentencepiece {sentencepiece.__version__}")
failed = False
for name, ids in reference["tokenize"].items():
    text = (root / "texts" / name).read_text()
    got = sp.encode(text)
    want = ids["plain"]
    if got == want:
        print(f"{name}: {len(got)} ids, identical to llama.cpp's")
    else:
        at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        print(f"{name}: differs at token {at} of {len(want)}: {got[at:at + 5]} vs {want[at:at + 5]}")
        failed = True
sys.exit(1 if failed else 0)
