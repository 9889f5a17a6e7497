"""A bounded load generator for OpenAI-compatible servers: C clients on loopback, each
streaming R completions of N tokens (ignore_eos, so every request generates exactly N) from
a distinct ~40-token prompt, one after another. Prints one JSON line: aggregate generated
tokens/s over the whole run, and p50/p99 of the time to first token and of the time between
tokens, in milliseconds. Standard library only.

    python3 bench/serve_load.py HOST:PORT CLIENTS REQUESTS TOKENS [EXTRA_JSON]
    python3 bench/serve_load.py --row NAME JSON        # a table row of one result
    python3 bench/serve_load.py --ratio JSON JSON      # throughput ratio of two results
"""

import http.client
import json
import statistics
import sys
import threading
import time

if sys.argv[1] == "--row":
    j = json.loads(sys.argv[3])
    row = [j["clients"], sys.argv[2], j["tokens_per_s"], j["ttft_p50_ms"], j["ttft_p99_ms"],
           j["tpot_p50_ms"], j["tpot_p99_ms"]]
    print("{:<8} {:<13} {:>9} {:>9} {:>9} {:>9} {:>9}".format(*row)
          + (f"  ({j['errors']} errors)" if j["errors"] else ""))
    sys.exit(0)
if sys.argv[1] == "--ratio":
    f, l = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    print(f"{f['clients']:<8} ratio fmlab / llama-server: {f['tokens_per_s'] / l['tokens_per_s']:.2f}x")
    sys.exit(0)

addr, clients, requests_each, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
host, port = addr.rsplit(":", 1)
ttft, gaps, generated, errors = [], [], [], []
lock = threading.Lock()


def one(client, k):
    prompt = (f"Request {client}-{k}. Here is a long story about a traveller who crosses the "
              "mountains, meets a river spirit and learns the names of the stars:")
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, **extra}
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    started = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        with lock:
            errors.append(f"{resp.status} {resp.read()[:200]!r}")
        return
    first, last, count, local_gaps = None, None, 0, []
    buffer = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                j = json.loads(data)
                text = "".join(c.get("text") or "" for c in j.get("choices", []))
                if not text:
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now - started
                else:
                    local_gaps.append(now - last)
                last = now
                count += 1
    conn.close()
    with lock:
        if first is not None:
            ttft.append(first)
        gaps.extend(local_gaps)
        generated.append(count)


def client(c):
    for k in range(requests_each):
        one(c, k)


t0 = time.perf_counter()
threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 1)


print(json.dumps({
    "clients": clients, "requests": clients * requests_each, "errors": len(errors),
    "chunks": sum(generated), "wall_s": round(wall, 2),
    "tokens_per_s": round(clients * requests_each * tokens / wall, 2),
    "ttft_p50_ms": pct(ttft, 50), "ttft_p99_ms": pct(ttft, 99),
    "tpot_p50_ms": pct(gaps, 50), "tpot_p99_ms": pct(gaps, 99),
}))
if errors:
    print("errors:", errors[:3], file=sys.stderr)
