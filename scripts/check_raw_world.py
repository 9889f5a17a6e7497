"""Datatrove 0.10's cross-check of the raw web (`fmlab world --raw`): its URL filter (with the
world's raw-blocklist.txt) and FineWeb's four quality filters (Gopher repetition, Gopher
quality, C4 with the terminal-punctuation rule off, FineWeb) in that order on every page of
raw.jsonl, no language ID and no dedup. Prints, per truth class (junk kinds split by
style), the pages kept and the rules that dropped the others; the good pages (clean or
boilerplate) kept by language and domain; and the planted boilerplate lines C4 removed from
kept pages. Writes each page's (block, rule) and kept text as JSON.

    python check_raw_world.py WORLD/raw.jsonl WORLD/raw-blocklist.txt OUT.json
"""

import collections
import json
import sys

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    URLFilter,
)


def main(raw_path, blocklist_path, out_path):
    recs = [json.loads(line) for line in open(raw_path)]
    blocked = [line.strip() for line in open(blocklist_path) if line.strip()]
    blocks = [
        ("url", URLFilter(extra_domains=blocked)),
        ("gopher_repetition", GopherRepetitionFilter()),
        ("gopher_quality", GopherQualityFilter()),
        ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
        ("fineweb", FineWebQualityFilter()),
    ]
    out = {}
    for r in recs:
        doc = Document(text=r["text"], id=str(r["id"]), metadata={"url": r["url"]})
        res = None
        for name, block in blocks:
            v = block.filter(doc)
            if v is False or (isinstance(v, tuple) and v[0] is False):
                res = [name, v[1] if isinstance(v, tuple) else None]
                break
        out[str(r["id"])] = [res, doc.text]
    json.dump(out, open(out_path, "w"))

    by = collections.defaultdict(collections.Counter)
    good = collections.defaultdict(collections.Counter)
    for r in recs:
        cls = r["junk"] or "clean"
        if r.get("style"):
            cls += "/" + r["style"]
        if cls == "wrong_language":
            cls += "/" + r["lang"]
        res = out[str(r["id"])][0]
        by[cls]["pages"] += 1
        by[cls]["%s/%s" % tuple(res) if res else "kept"] += 1
        if r["junk"] in (None, "boilerplate"):
            for key in [(r["lang"], "all"), (r["lang"], r["domain"])]:
                good[key]["pages"] += 1
                good[key]["kept"] += res is None
    print("pages by truth class: kept, and dropped by block/rule")
    for cls in sorted(by):
        c = by[cls]
        n = c.pop("pages")
        print("  %-26s %5d  kept %5.1f%%  %s" % (cls, n, 100 * c["kept"] / n, dict(c.most_common())))
    print("good pages kept, by language and domain")
    for (lang, dom), c in sorted(good.items()):
        print("  %s %-13s %5d of %5d (%.1f%%)" % (lang, dom, c["kept"], c["pages"], 100 * c["kept"] / c["pages"]))
    planted = planted_removed = clean = clean_removed = 0
    for r in recs:
        if r["junk"] not in (None, "boilerplate") or out[str(r["id"])][0]:
            continue
        left = collections.Counter(l.strip() for l in out[str(r["id"])][1].split("\n") if l.strip())
        added = set(r.get("added_lines", []))
        for i, line in enumerate(r["text"].split("\n")):
            line = line.strip()
            if not line:
                continue
            removed = left[line] <= 0
            if not removed:
                left[line] -= 1
            if i in added:
                planted, planted_removed = planted + 1, planted_removed + removed
            else:
                clean, clean_removed = clean + 1, clean_removed + removed
    print(
        "boilerplate lines on kept pages: %d planted, %d removed (%.1f%%); clean lines %d, %d removed"
        % (planted, planted_removed, 100 * planted_removed / max(planted, 1), clean, clean_removed)
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
