#!/usr/bin/env python3
"""Keep/drop agreement of fmlab's quality filters with datatrove 0.10's.

  check_curate_filters.py datatrove DOCS.jsonl OUT.jsonl   run datatrove's four filters
      (FineWeb's settings) on every document: each filter alone on the original text
      ("indep") and the four in FineWeb's order ("seq", C4 rewriting the text FineWeb sees);
      one JSON line per document: {id, indep: {filter: reason|null}, seq: {...}}.
  check_curate_filters.py tokens DOCS.jsonl OUT.jsonl      spaCy's English words per
      document, as datatrove splits them (to compare fmlab's word splitting).
  check_curate_filters.py fixture SEED OUT.jsonl            write the synthetic test
      documents (our own text: English sentences written for fmlab, arranged into the cases
      each rule looks for: repetition, bullets, code, boilerplate lines, short lines...).
  check_curate_filters.py compare DATATROVE.jsonl OURS.jsonl
      per filter, the share of documents with the same decision, and the disagreements
      by reason (both files in the layout above).

A decision is null (kept), a datatrove reason string (dropped), or absent from "seq" when
an earlier filter dropped the document.
"""
import json
import sys
import time
from collections import Counter

FILTERS = ["gopher_repetition", "gopher_quality", "c4", "fineweb"]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def make_filters():
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    # FineWeb's recipe (datatrove/examples/fineweb.py): defaults, C4's terminal-punctuation
    # rule off.
    return {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(filter_no_terminal_punct=False),
        "fineweb": FineWebQualityFilter(),
    }


def decide(flt, doc):
    try:
        res = flt.filter(doc)
    except ZeroDivisionError:
        return "error_zero_division"
    keep, reason = (res if isinstance(res, tuple) else (res, None))
    return None if keep else (reason or "dropped")


def run_datatrove(docs_path, out_path):
    from datatrove.data import Document

    filters = make_filters()
    t0 = time.time()
    n = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for rec in read_jsonl(docs_path):
            indep = {}
            for name, flt in filters.items():
                doc = Document(text=rec["text"], id=rec["id"])
                indep[name] = decide(flt, doc)
            seq = {}
            doc = Document(text=rec["text"], id=rec["id"])
            for name, flt in filters.items():
                seq[name] = decide(flt, doc)
                if seq[name] is not None:
                    break
            out.write(json.dumps({"id": rec["id"], "indep": indep, "seq": seq}) + "\n")
            n += 1
    print(f"datatrove: {n} documents in {time.time() - t0:.1f} s", file=sys.stderr)


def run_tokens(docs_path, out_path):
    from datatrove.utils.text import split_into_words

    with open(out_path, "w", encoding="utf-8") as out:
        for rec in read_jsonl(docs_path):
            out.write(json.dumps({"id": rec["id"], "words": split_into_words(rec["text"])}) + "\n")


SENTENCES = [
    "The river rose quickly after three days of heavy rain in the hills.",
    "Farmers moved their cattle to higher ground before the water reached the fields.",
    "A small bridge near the mill was closed, and the village school opened late.",
    "Nobody could remember a flood like it since the winter of the great storm.",
    "The council met on Tuesday to decide how the repairs should be paid for.",
    "Some members wanted to raise taxes, while others preferred to borrow money.",
    "In the end they agreed to ask the county for help with the cost.",
    "Meanwhile, volunteers cleared mud from the streets and the church hall.",
    "It's hard to say when the road to the market town will open again.",
    "Engineers don't expect the work to finish before the end of the month.",
    "The baker, who has run the shop for thirty years, gave bread to everyone.",
    "Children collected books that had been damaged in the library basement.",
    "Dr. Hughes said the water supply was safe, e.g. for drinking and cooking.",
    "A report from the U.S. weather service predicted a dry week ahead.",
    "The old map, drawn in 1893, shows that the river once ran further east.",
    "Historians believe the channel was moved to power a second mill.",
    "Visitors can read more at https://example.org/flood-history or in the museum.",
    "Prices at the shop rose by 5% during the week, mostly for fresh vegetables.",
    "The mayor thanked the rescue teams - and the neighbours who fed them.",
    "Why did the warning come so late? Many people asked that question.",
    "Weather stations upstream had failed, so the data arrived hours behind.",
    "New sensors will be installed this autumn at a cost of about $40,000.",
    "Local musicians held a concert to raise money for the families affected.",
    "The concert sold out in two days, which surprised even the organisers.",
    "Her grandmother's house, built of stone, stood firm while others flooded.",
    "Insurance companies sent assessors, but many claims are still open.",
    "The regional newspaper printed a special edition with photographs.",
    "One photograph, showing a boat in the high street, became famous.",
    "Scientists at the university are studying how the soil absorbed the rain.",
    "They think that changes in farming made the ground harder and drier.",
    "Planting hedges and trees along the slopes could slow the water down.",
    "A pilot project with five farms will begin in the spring.",
    "Residents were asked to report damaged drains to the council office.",
    "The office is open from 9 a.m. to 5 p.m. on weekdays, and on Saturday mornings.",
    "Several roads are still covered with gravel washed down from the hills.",
    "Cyclists should take care on the lane between the chapel and the farm.",
    "The fire brigade pumped water out of forty cellars in a single night.",
    "Everyone agreed that the village had pulled together in a remarkable way.",
    "\u201cWe will rebuild,\u201d said the teacher, \u201cand we will be better prepared.\u201d",
    "Caf\u00e9 owners on the square offered free coffee \u2014 and cake \u2014 to the helpers.",
]

BOILERPLATE = [
    "Menu", "Home", "Contact us", "Share this page", "Log in",
    "This site uses cookies to improve your experience.",
    "Please enable JavaScript to view the comments powered by our service.",
    "Read our privacy policy and terms of use before you continue.",
    "Copyright 2024 All rights reserved", "Next page", "Previous",
]


def make_fixture(seed, out_path):
    import random

    rng = random.Random(int(seed))

    def prose(n):
        return " ".join(rng.choice(SENTENCES) for _ in range(n))

    def paragraphs(k, n):
        return "\n\n".join(prose(n) for _ in range(k))

    cases = []
    for i in range(30):
        cases.append(("prose", paragraphs(rng.randint(1, 5), rng.randint(2, 7))))
    for i in range(8):
        cases.append(("short", prose(rng.randint(1, 4))))
    for i in range(10):
        line = prose(1)
        body = "\n".join([line] * rng.randint(2, 8) + [prose(1) for _ in range(rng.randint(1, 8))])
        cases.append(("repeated_lines", body))
    for i in range(8):
        spam = rng.choice(["buy cheap watches now", "click here to win", "best price best price"])
        body = prose(rng.randint(3, 8)) + " " + " ".join([spam] * rng.randint(2, 12)) + " " + prose(2)
        cases.append(("repeated_ngrams", body))
    for i in range(8):
        items = [("- " if rng.random() < 0.95 else "") + prose(1) for _ in range(rng.randint(5, 15))]
        cases.append(("bullets", "\n".join(items)))
    for i in range(6):
        lines = [prose(1)[: rng.randint(20, 60)] + ("..." if rng.random() < 0.5 else "") for _ in range(10)]
        cases.append(("ellipsis", "\n".join(lines)))
    for i in range(6):
        lines = [("#" * rng.randint(1, 3)) + " " + prose(1) if rng.random() < 0.6 else prose(2) for _ in range(12)]
        cases.append(("hashes", "\n".join(lines)))
    for i in range(6):
        code = "int main(void) {\n    return 0;\n}" if rng.random() < 0.7 else "x = [1, 2, 3]"
        cases.append(("code", paragraphs(2, 4) + "\n\n" + code))
    for i in range(4):
        cases.append(("lorem", paragraphs(2, 4) + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."))
    for i in range(12):
        lines = []
        for _ in range(rng.randint(6, 20)):
            lines.append(rng.choice(BOILERPLATE) if rng.random() < 0.4 else prose(rng.randint(1, 3)))
        cases.append(("boilerplate", "\n".join(lines)))
    for i in range(6):
        words = prose(rng.randint(10, 20)).replace(".", "").replace("?", "").split()
        lines = [" ".join(words[j : j + rng.randint(2, 6)]) for j in range(0, len(words), 5)]
        cases.append(("no_punct_short_lines", "\n".join(lines)))
    for i in range(6):
        rows = "\n".join(f"{rng.randint(0, 999)} | {rng.randint(0, 99999)} | 0x{rng.randint(0, 65535):04x} |" for _ in range(rng.randint(10, 30)))
        cases.append(("numbers", prose(2) + "\n" + rows))
    for i in range(6):
        body = " ".join(rng.choice(SENTENCES) + (" [1]" if rng.random() < 0.3 else "") + (" [citation needed]" if rng.random() < 0.1 else "") for _ in range(12))
        cases.append(("citations", body))
    for i in range(6):
        lines = [prose(1) for _ in range(rng.randint(8, 16))]
        dup = rng.choice(lines)
        lines.insert(rng.randint(0, len(lines)), dup)
        cases.append(("one_dup_line", "\n".join(lines)))
    cases += [("empty", ""), ("whitespace", "  \n\n \t"), ("one_word", "Flood.")]
    cases.append(("long_word", paragraphs(2, 5) + "\n" + "x" * 1200 + " tail words here."))
    cases.append(("crlf", paragraphs(3, 4).replace("\n", "\r\n")))
    with open(out_path, "w", encoding="utf-8") as out:
        for i, (kind, text) in enumerate(cases):
            out.write(json.dumps({"id": f"{i:03d}-{kind}", "text": text}, ensure_ascii=False) + "\n")


def compare(dt_path, ours_path):
    dt = {r["id"]: r for r in read_jsonl(dt_path)}
    ours = {r["id"]: r for r in read_jsonl(ours_path)}
    ids = [i for i in dt if i in ours]
    missing = len(dt) - len(ids)
    if missing:
        print(f"warning: {missing} documents of datatrove's file are not in ours")
    worst = 1.0
    for mode in ("indep", "seq"):
        print(f"== {'each filter alone on every document' if mode == 'indep' else 'the four in sequence'}")
        for f in FILTERS:
            seen = [i for i in ids if f in dt[i][mode] or f in ours[i][mode]]
            same = [i for i in seen if dt[i][mode].get(f, "absent") == ours[i][mode].get(f, "absent")]
            share = len(same) / len(seen) if seen else 1.0
            worst = min(worst, share)
            kept_dt = sum(1 for i in seen if dt[i][mode].get(f, "absent") is None)
            kept_us = sum(1 for i in seen if ours[i][mode].get(f, "absent") is None)
            print(f"{f:18} {len(same):5}/{len(seen):5} same ({100 * share:6.2f}%)  kept: datatrove {kept_dt}, fmlab {kept_us}")
            diff = Counter(
                (dt[i][mode].get(f, "absent"), ours[i][mode].get(f, "absent")) for i in seen if i not in same
            )
            for (a, b), c in diff.most_common():
                ex = [i for i in seen if i not in same and (dt[i][mode].get(f, "absent"), ours[i][mode].get(f, "absent")) == (a, b)][:3]
                print(f"    datatrove {a or 'keep'} / fmlab {b or 'keep'}: {c}   e.g. {', '.join(ex)}")
    return worst


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("datatrove", "tokens", "compare", "fixture"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, a, b = sys.argv[1:]
    if mode == "datatrove":
        run_datatrove(a, b)
    elif mode == "fixture":
        make_fixture(a, b)
    elif mode == "tokens":
        run_tokens(a, b)
    else:
        worst = compare(a, b)
        print(f"lowest agreement: {100 * worst:.2f}%")


if __name__ == "__main__":
    main()
