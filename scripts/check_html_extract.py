"""BlockDensity (ours) vs trafilatura on the same HTML pages; run by check_html_extract.sh.

For each page: trafilatura.extract(html) (its defaults: no comments, tables kept) and our
extractor's text; both turned into bags of lower-cased words (\\w+); precision = shared
words / our words, recall = shared words / trafilatura's words, F1. Prints per-page rows,
the overall figures (micro: summed over every page's words; macro: mean of per-page F1) and
the speed of both extractors (extraction time alone, on one core; the files already read).
"""
import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import time

import trafilatura

WORD = re.compile(r"\w+", re.UNICODE)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_pages(max_pages):
    groups = [
        sorted(glob.glob("/usr/share/doc/linux-doc-6.1/html/**/*.html", recursive=True)),
        sorted(glob.glob("/usr/share/doc/nodejs/api/*.html")),
        sorted(glob.glob("/usr/share/doc/valgrind/html/*.html")),
        sorted(glob.glob("/usr/share/doc/libxslt1-dev/**/*.html", recursive=True)),
        sorted(glob.glob("/usr/share/doc/python3*/**/*.html", recursive=True)),
    ]
    pages = []
    share = max(1, max_pages // max(1, sum(1 for g in groups if g)))
    for g in groups:
        g = [p for p in g if "/_static/" not in p and "genindex" not in p and "search.html" not in p]
        if not g:
            continue
        step = max(1, len(g) // share)
        pages += g[::step][:share]
    pages += sorted(glob.glob(os.path.join(ROOT, "crates/fmlab-curate/tests/fixtures/io/html/*.html")))
    seen, unique = set(), []
    for p in pages:  # Debian links one page into several packages' folders
        if os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            unique.append(p)
    return unique


def bag(text):
    return collections.Counter(w.lower() for w in WORD.findall(text or ""))


def prf(ours, theirs):
    shared = sum((ours & theirs).values())
    p = shared / max(1, sum(ours.values()))
    r = shared / max(1, sum(theirs.values()))
    f = 2 * p * r / (p + r) if p + r else 0.0
    return shared, p, r, f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="*", help="extra HTML files or folders")
    ap.add_argument("--max-pages", type=int, default=200)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    pages = default_pages(args.max_pages)
    for p in args.paths:
        pages += sorted(glob.glob(os.path.join(p, "**/*.html"), recursive=True)) if os.path.isdir(p) else [p]
    htmls = {}
    for p in pages:
        with open(p, "rb") as f:
            htmls[p] = f.read().decode("utf-8", errors="replace")
    total_bytes = sum(len(h.encode()) for h in htmls.values())

    ours_out = subprocess.run([os.environ["EXTRACT"], *pages], check=True, capture_output=True, text=True).stdout
    ours = {}
    ours_s = 0.0
    for line in ours_out.splitlines():
        r = json.loads(line)
        ours[r["path"]] = r["text"]
        ours_s += r["seconds"]

    theirs = {}
    theirs_s = 0.0
    for p, h in htmls.items():
        t0 = time.perf_counter()
        theirs[p] = trafilatura.extract(h) or ""
        theirs_s += time.perf_counter() - t0

    rows = []
    tot = [0, 0, 0]
    print(f"{'page':60} {'ours':>6} {'traf':>6} {'P':>5} {'R':>5} {'F1':>5}")
    for p in pages:
        a, b = bag(ours[p]), bag(theirs[p])
        shared, pr, rc, f1 = prf(a, b)
        tot[0] += shared
        tot[1] += sum(a.values())
        tot[2] += sum(b.values())
        name = p.replace("/usr/share/doc/", "").replace(ROOT + "/", "")
        rows.append({"page": name, "ours_words": sum(a.values()), "trafilatura_words": sum(b.values()),
                     "precision": pr, "recall": rc, "f1": f1})
        print(f"{name[-60:]:60} {sum(a.values()):6} {sum(b.values()):6} {pr:5.2f} {rc:5.2f} {f1:5.2f}")
    P = tot[0] / max(1, tot[1])
    R = tot[0] / max(1, tot[2])
    F = 2 * P * R / (P + R) if P + R else 0.0
    macro = sum(r["f1"] for r in rows) / max(1, len(rows))
    mb = total_bytes / 1e6
    summary = {
        "pages": len(pages), "megabytes": mb,
        "micro": {"precision": P, "recall": R, "f1": F}, "macro_f1": macro,
        "ours": {"seconds": ours_s, "pages_per_s": len(pages) / max(ours_s, 1e-9), "mb_per_s": mb / max(ours_s, 1e-9)},
        "trafilatura": {"version": trafilatura.__version__, "seconds": theirs_s,
                        "pages_per_s": len(pages) / max(theirs_s, 1e-9), "mb_per_s": mb / max(theirs_s, 1e-9)},
    }
    print(f"\n{len(pages)} pages, {mb:.1f} MB of HTML")
    print(f"words vs trafilatura {trafilatura.__version__}: precision {P:.3f}  recall {R:.3f}  F1 {F:.3f} (micro); mean per-page F1 {macro:.3f}")
    print(f"speed: BlockDensity {summary['ours']['pages_per_s']:.0f} pages/s ({summary['ours']['mb_per_s']:.1f} MB/s); "
          f"trafilatura {summary['trafilatura']['pages_per_s']:.1f} pages/s ({summary['trafilatura']['mb_per_s']:.2f} MB/s); "
          f"{theirs_s / max(ours_s, 1e-9):.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "pages": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
