"""`fmlab eval run` against lm-evaluation-harness on fmlab's own task suite
(scripts/eval_tasks: two multiple-choice tasks in a group, a rolling log-likelihood task and
a generate-until task, data written for fmlab), on the same model:

- lm-evaluation-harness 0.4.x (`local-completions`, offline) over HTTP against `fmlab serve`;
- `fmlab eval run` in-process on the same task folder.

Accuracies, exact matches, the group's aggregate and the closed-form standard errors must be
identical; perplexities equal to 1e-4 (relative; lm-evaluation-harness reads
log-probabilities through JSON). Prints both sides' wall time.

    bash scripts/check_eval.sh        # builds fmlab (release), makes the venv, runs this
    bash scripts/check_eval.sh --record   # also writes lm-evaluation-harness's results to
                                          # fixtures/reference/lm-eval-eval-tasks.json

Exits non-zero on any mismatch.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FMLAB = os.environ.get("FMLAB", str(ROOT / "target/release/fmlab"))
MODEL = os.environ.get(
    "FMLAB_MODEL",
    str(pathlib.Path.home() / ".cache/fmlab/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
)
THREADS = os.environ.get("FMLAB_THREADS", "2")
TASKS = ROOT / "scripts/eval_tasks"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def start_server():
    proc = subprocess.Popen(
        [FMLAB, "serve", MODEL, "--port", "0", "--parallel", "4", "--threads", THREADS,
         "--alias", "model"],
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        m = re.search(r"on http://([0-9.:]+)", proc.stderr.readline())
        if m:
            return proc, m.group(1)
    proc.kill()
    sys.exit("the server did not start")


def main():
    import lm_eval
    from lm_eval.tasks import TaskManager

    os.chdir(TASKS)
    proc, addr = start_server()
    try:
        tm = TaskManager(include_path=str(TASKS))
        args = (f"model=model,base_url=http://{addr}/v1/completions,tokenizer_backend=remote,"
                "num_concurrent=4,max_retries=1,tokenized_requests=True")
        started = time.time()
        theirs = lm_eval.simple_evaluate(
            model="local-completions", model_args=args,
            tasks=["fmlab_suite", "fmlab_prose_rolling", "fmlab_short_gen"], task_manager=tm,
        )["results"]
        lm_eval_seconds = time.time() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    if "--record" in sys.argv:
        keep = {t: {k: v for k, v in m.items() if "," in k and v not in ("N/A", None)}
                for t, m in theirs.items()}
        ref = ROOT / "fixtures/reference/lm-eval-eval-tasks.json"
        ref.write_text(json.dumps({
            "about": "lm-evaluation-harness 0.4.13 (local-completions against fmlab serve, "
                     "tokenized_requests=True, tokenizer_backend=remote, default few-shot seed "
                     "1234) on scripts/eval_tasks with SmolLM2-135M-Instruct Q4_1: recorded by "
                     "scripts/check_eval.sh --record.",
            "results": keep}, indent=1) + "\n")
        print(f"recorded {ref}")

    started = time.time()
    ours = json.loads(subprocess.run(
        [FMLAB, "eval", "run", "--model", MODEL, "--tasks", str(TASKS), "--threads", THREADS,
         "--json"], check=True, capture_output=True, text=True).stdout)["results"]
    fmlab_seconds = time.time() - started

    print(f"{'task':<28} {'metric':<26} {'lm-eval':>12} {'fmlab':>12}")
    for task, metrics in theirs.items():
        for key, value in metrics.items():
            if "," not in key or value in ("N/A", None):
                continue
            value = float(value)
            got = ours.get(task, {}).get(key)
            print(f"{task:<28} {key:<26} {value:>12.6f} {got if got is None else round(got, 6):>12}")
            if "stderr" in key and ("perplexity" in key or "bits_per_byte" in key):
                continue  # bootstraps on both sides
            inexact = "perplexity" in key or "bits_per_byte" in key
            agree = got is not None and (
                abs(got - value) <= 1e-4 * max(1.0, abs(value)) if inexact
                else abs(got - value) <= 1e-12)
            check(agree, f"{task} {key}: fmlab {got} vs lm-evaluation-harness {value}")
    print(f"wall time: fmlab eval run {fmlab_seconds:.1f} s (in-process, model load included), "
          f"lm-evaluation-harness over HTTP {lm_eval_seconds:.1f} s "
          f"({lm_eval_seconds / fmlab_seconds:.1f}x), {THREADS} threads each")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
