"""Holds `fmlab serve` to the tools people already use, unmodified:

(a) the `openai` Python client: models, chat, chat streaming with usage, chat
    log-probabilities, completions with legacy log-probabilities, echo scoring, token-id
    prompts;
(b) lm-evaluation-harness (`lm_eval[api]`, offline) with `local-completions` on three local
    tasks (scripts/serve_tasks: multiple_choice, loglikelihood_rolling, generate_until) and
    `local-chat-completions` on the generation task — its per-item log-likelihoods and
    generations checked against llama.cpp's own scoring of the same token sequences
    (llama-cpp-python, the reference fmlab's engine reproduces bit for bit).

    bash scripts/check_serve.sh      # builds fmlab, makes the venvs, runs this

Starts the server itself on a free loopback port; exits non-zero on any mismatch.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FMLAB = os.environ.get("FMLAB", str(ROOT / "target/release/fmlab"))
MODEL = os.environ.get(
    "FMLAB_MODEL",
    str(pathlib.Path.home() / ".cache/fmlab/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
)
LLAMA_PY = os.environ.get(
    "FMLAB_LLAMA_PYTHON", str(pathlib.Path.home() / ".cache/fmlab/venv-llama/bin/python")
)
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def start_server():
    proc = subprocess.Popen(
        [FMLAB, "serve", MODEL, "--port", "0", "--parallel", "4", "--alias", "smollm2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"on http://([0-9.:]+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    sys.exit("the server did not start")


def openai_checks(addr):
    from openai import OpenAI

    client = OpenAI(base_url=f"http://{addr}/v1", api_key="unused")
    models = client.models.list()
    check([m.id for m in models.data] == ["smollm2"], "models.list lists the alias")

    messages = [{"role": "user", "content": "What is 12 times 7?"}]
    chat = client.chat.completions.create(model="smollm2", messages=messages, temperature=0, max_tokens=16)
    text = chat.choices[0].message.content
    check(bool(text) and chat.choices[0].finish_reason in ("stop", "length"), f"chat: {text!r}")
    check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage adds up")

    stream = client.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=16, stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    check("".join(parts) == text, "chat streaming gives the same text")
    check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, "chat streaming usage")
    check(finish == chat.choices[0].finish_reason, "chat streaming finish_reason")

    lp = client.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3
    )
    content = lp.choices[0].logprobs.content
    check(len(content) == lp.usage.completion_tokens, "chat logprobs: one entry per token")
    check(all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content), "chat top_logprobs")
    check(all(max(a.logprob for a in t.top_logprobs) >= t.logprob - 1e-6 for t in content),
          "greedy tokens are the most likely")

    comp = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=5, temperature=0, logprobs=2
    )
    c = comp.choices[0]
    n = comp.usage.completion_tokens
    check(comp.object == "text_completion", "completions object")
    check(len(c.logprobs.tokens) == n and len(c.logprobs.token_logprobs) == n
          and len(c.logprobs.top_logprobs) == n and len(c.logprobs.text_offset) == n,
          "legacy logprobs: tokens, token_logprobs, top_logprobs, text_offset")
    check(all(len(t) <= 2 for t in c.logprobs.top_logprobs), "legacy top_logprobs has at most 2")
    check(c.text.startswith(" Paris"), f"completion: {c.text!r}")

    echo = client.completions.create(
        model="smollm2", prompt="The capital of France is Paris", max_tokens=0, echo=True, logprobs=1
    )
    e = echo.choices[0]
    check(e.text == "The capital of France is Paris", "echo returns the prompt")
    check(e.logprobs.token_logprobs[0] is None and all(x is not None for x in e.logprobs.token_logprobs[1:]),
          "echo: first log-probability null, then all")
    check(echo.usage.completion_tokens == 0, "echo with max_tokens 0 generates nothing")

    ids = client.completions.create(model="smollm2", prompt=[504, 3575, 282, 4649, 314], max_tokens=3, temperature=0)
    check(ids.choices[0].text == comp.choices[0].text[: len(ids.choices[0].text)], "token-id prompt")
    batch = client.completions.create(model="smollm2", prompt=[[504, 3575], [6403, 1980, 253]], max_tokens=2, temperature=0)
    check([c.index for c in batch.choices] == [0, 1], "a list of token-id prompts")


def llama_reference(requests):
    """llama.cpp's scoring of token sequences: [{"context": ids, "continuation": ids}] →
    sums of log-probabilities and greedy flags; [{"generate": ids, "n": k}] → greedy ids."""
    code = r'''
import json, sys, math
import numpy as np
import llama_cpp
reqs = json.load(open(sys.argv[2]))
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=1024, logits_all=True, verbose=False, n_threads=2)
out = []
for r in reqs:
    if "generate" in r:
        llm.reset(); llm.eval(r["generate"])
        ids = []
        for _ in range(r["n"]):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if t == llm.token_eos(): break
            ids.append(t); llm.eval([t])
        out.append(ids); continue
    toks = r["context"] + r["continuation"]
    llm.reset(); llm.eval(toks)
    total, greedy = 0.0, True
    for i, t in enumerate(r["continuation"]):
        row = np.array(llm.scores[len(r["context"]) + i - 1], dtype=np.float64)
        m = row.max(); lse = m + math.log(np.exp(row - m).sum())
        total += row[t] - lse
        greedy = greedy and int(np.argmax(row)) == t
    out.append([total, greedy])
json.dump(out, open(sys.argv[3], "w"))
'''
    with tempfile.TemporaryDirectory() as d:
        src, inp, res = (pathlib.Path(d) / n for n in ("ref.py", "in.json", "out.json"))
        src.write_text(code)
        inp.write_text(json.dumps(requests))
        subprocess.run([LLAMA_PY, str(src), MODEL, str(inp), str(res)], check=True)
        return json.loads(res.read_text())


def tokenize(addr, text):
    import requests
    r = requests.post(f"http://{addr}/tokenize", json={"prompt": text, "add_special_tokens": False})
    return r.json()["tokens"]


def lm_eval_checks(addr):
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks_dir = ROOT / "scripts/serve_tasks"
    os.chdir(tasks_dir)
    tm = TaskManager(include_path=str(tasks_dir))
    args = (f"model=smollm2,base_url=http://{addr}/v1/completions,tokenizer_backend=remote,"
            "num_concurrent=4,max_retries=1,tokenized_requests=True")
    started = time.time()
    res = lm_eval.simple_evaluate(
        model="local-completions", model_args=args,
        tasks=["fmlab_mc", "fmlab_rolling", "fmlab_gen"], task_manager=tm, log_samples=True,
    )
    lm_eval_seconds = time.time() - started
    for task in ("fmlab_mc", "fmlab_rolling", "fmlab_gen"):
        print(task, {k: v for k, v in res["results"][task].items() if not k.endswith("stderr,none")})

    # `fmlab eval run` in-process on the same task files and model: the same accuracies,
    # perplexities to 1e-4 (relative), and the same closed-form standard errors.
    started = time.time()
    ours = json.loads(subprocess.run(
        [FMLAB, "eval", "run", "--model", MODEL, "--tasks", str(tasks_dir), "--threads", "2", "--json"],
        check=True, capture_output=True, text=True).stdout)
    fmlab_seconds = time.time() - started
    # The same task files through the same server with `eval run --base-url`: the API model.
    over_api = json.loads(subprocess.run(
        [FMLAB, "eval", "run", "--base-url", f"http://{addr}/v1", "--model-name", "smollm2",
         "--tasks", str(tasks_dir), "--json"],
        check=True, capture_output=True, text=True).stdout)
    for task in ("fmlab_mc", "fmlab_rolling", "fmlab_gen"):
        for key, value in res["results"][task].items():
            if "," in key and "stderr" not in key:
                got = over_api["results"][task].get(key)
                check(got is not None and abs(got - float(value)) <= 1e-6 * max(1.0, abs(float(value))),
                      f"eval run --base-url agrees with lm-evaluation-harness: {task} {key} = {got} vs {value}")
    for task in ("fmlab_mc", "fmlab_rolling", "fmlab_gen"):
        theirs, mine = res["results"][task], ours["results"][task]
        for key, value in theirs.items():
            if "," not in key or value in ("N/A", None) or ("stderr" in key and "perplexity" in key) \
                    or ("stderr" in key and "bits_per_byte" in key):
                continue  # perplexities' standard errors are bootstraps on both sides
            value = float(value)
            got = mine.get(key)
            agree = got is not None and (abs(got - value) <= 1e-4 * max(1.0, abs(value)))
            check(agree, f"eval run agrees with lm-evaluation-harness: {task} {key} = {got} vs {value}")
    print(f"wall time on the three tasks: fmlab eval run {fmlab_seconds:.1f} s (in-process, "
          f"model load included), lm-evaluation-harness over HTTP {lm_eval_seconds:.1f} s "
          f"({lm_eval_seconds / fmlab_seconds:.1f}x)")

    # multiple choice: every (context, continuation)'s log-likelihood and greedy flag.
    samples = res["samples"]["fmlab_mc"]
    reqs, got = [], []
    def pairs(s):
        args = s["arguments"]
        if isinstance(args, dict):
            return [(a["arg_0"], a["arg_1"]) for a in args.values()]
        return [tuple(a) for a in args]

    for s in samples:
        for (ctx, cont), resp in zip(pairs(s), s["resps"]):
            whole = tokenize(addr, ctx + cont)
            context = tokenize(addr, ctx)
            reqs.append({"context": whole[: len(context)], "continuation": whole[len(context):]})
            got.append(resp[0])
    ref = llama_reference(reqs)
    worst = max(abs(float(g[0]) - r[0]) for g, r in zip(got, ref))
    check(worst < 1e-3, f"multiple_choice: {len(ref)} log-likelihoods equal llama.cpp's (largest difference {worst:.2e})")
    check(all(bool(g[1]) == r[1] for g, r in zip(got, ref)), "multiple_choice: greedy flags equal llama.cpp's")

    # generate_until: the greedy text, cut at the first stop string, equals llama.cpp's.
    gen = res["samples"]["fmlab_gen"]
    reqs = [{"generate": tokenize(addr, s["arguments"]["gen_args_0"]["arg_0"]
                                  if isinstance(s["arguments"], dict) else s["arguments"][0][0]), "n": 8}
            for s in gen]
    ref = llama_reference(reqs)
    import requests
    ok = True
    for s, ids in zip(gen, ref):
        text = requests.post(f"http://{addr}/detokenize", json={"tokens": ids}).json()["prompt"]
        for stop in ["\n", ".", ","]:
            text = text.split(stop)[0]
        resp = s["resps"][0][0]
        if resp != text:
            ok = False
            print(f"  generate_until: {resp!r} vs llama.cpp {text!r}")
    check(ok, f"generate_until: {len(gen)} greedy generations equal llama.cpp's")

    # loglikelihood_rolling: each text scored after the prefix token lm-evaluation-harness
    # takes from a remote tokenizer (BOS, else EOS), in one window.
    import requests as rq
    info = rq.get(f"http://{addr}/tokenizer_info").json()
    prefix_text = info["bos_token"] or info["eos_token"]
    eot = tokenize(addr, prefix_text)
    check(len(eot) == 1, f"the prefix token {prefix_text!r} is one token")
    rolling = res["samples"]["fmlab_rolling"]
    reqs = [{"context": eot, "continuation": tokenize(addr, s["doc"]["text"])} for s in rolling]
    ref = llama_reference(reqs)
    got = [float(s["resps"][0][0]) if isinstance(s["resps"][0], list) else float(s["resps"][0]) for s in rolling]
    worst = max(abs(g - r[0]) for g, r in zip(got, ref))
    check(worst < 1e-3, f"loglikelihood_rolling: {len(ref)} texts' log-likelihoods equal llama.cpp's (largest difference {worst:.2e})")

    chat_args = (f"model=smollm2,base_url=http://{addr}/v1/chat/completions,num_concurrent=2,"
                 "max_retries=1,tokenizer_backend=None,tokenized_requests=False")
    chat_res = lm_eval.simple_evaluate(
        model="local-chat-completions", model_args=chat_args, tasks=["fmlab_gen"],
        task_manager=tm, apply_chat_template=True,
    )
    print("fmlab_gen (chat)", chat_res["results"]["fmlab_gen"])
    check("exact_match,strip" in chat_res["results"]["fmlab_gen"] or
          any(k.startswith("exact_match") for k in chat_res["results"]["fmlab_gen"]),
          "local-chat-completions runs the generation task")


def main():
    proc, addr = start_server()
    try:
        openai_checks(addr)
        lm_eval_checks(addr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed: {failures}")
    print("all checks passed")


if __name__ == "__main__":
    main()
