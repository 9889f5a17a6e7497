#!/usr/bin/env python3
"""Scores MinHash deduplication on the curation reference corpus (scripts/check_curate_minhash.sh).

    check_curate_minhash.py DUPS.tsv --ours CLUSTERS.json [--datatrove DT_OUT]
    check_curate_minhash.py --record-fixture FIXTURE.json

A planted pair (docs.dups.tsv: dup_id, orig_id) is counted twice: both documents in one
duplicate cluster, and one of them removed (the corpus README's figure: datatrove 387/403);
the check fails below --min-found, or below datatrove's figures when it ran. Natural duplicates: removed documents outside every planted pair.
`--datatrove` reads bench/curate_datatrove.py's minhash output (kept and removed documents
with their minhash_cluster_id) and prints the same figures and the agreement of the two
removal sets. `--record-fixture` writes crates/fmlab-curate/tests/fixtures/
minhash_datatrove.json (datatrove's shingles and signatures of two short texts).
"""
import argparse
import csv
import glob
import json
import os
import tempfile


def score(name, clusters, removed, pairs):
    """clusters: id -> cluster label; removed: set of ids."""
    found = [p for p in pairs if p[0] in clusters and clusters.get(p[0]) == clusters.get(p[1])]
    # The corpus README's figure (datatrove: 387): pairs with one of the two documents removed.
    hit = [p for p in pairs if p[0] in removed or p[1] in removed]
    missed = [p for p in pairs if p not in found]
    planted = {x for p in pairs for x in p[:2]}
    natural = sorted(removed - planted)
    n_clusters = len(set(clusters.values()))
    print(
        f"{name}: planted pairs in one cluster {len(found)}/{len(pairs)}, with a member removed "
        f"{len(hit)}/{len(pairs)}; removed {len(removed)} "
        f"({len(removed) - len(natural)} in planted pairs, {len(natural)} natural duplicates); "
        f"{len(clusters)} documents in {n_clusters} clusters"
    )
    for dup, orig, jac in sorted(missed, key=lambda p: p[2]):
        print(f"  missed: {dup} (whitespace 5-gram Jaccard {jac:.2f})")
    return {"same_cluster": len(found), "member_removed": len(hit), "pairs": len(pairs),
            "removed": len(removed), "natural": len(natural)}


def ours(path):
    data = json.load(open(path))
    clusters, removed = {}, set()
    for i, c in enumerate(data["clusters"]):
        for m in c["members"]:
            clusters[m["id"]] = i
            if (m["file"], m["index"]) != (c["kept"]["file"], c["kept"]["index"]):
                removed.add(m["id"])
    return clusters, removed


def datatrove(out):
    clusters, removed = {}, set()
    for sub in ("output", "removed"):
        for f in glob.glob(os.path.join(out, sub, "*.jsonl")):
            for line in open(f):
                d = json.loads(line)
                cid = d.get("metadata", {}).get("minhash_cluster_id", -1)
                if cid != -1:
                    clusters[d["id"]] = cid
                if sub == "removed":
                    removed.add(d["id"])
    return clusters, removed


def record_fixture(path):
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig

    sig = MinhashDedupSignature(
        output_folder=tempfile.mkdtemp(),
        config=MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="xxhash")),
    )
    texts = [
        "The quick brown fox jumps over the lazy dog. It was 2023, and the Café was open!\n"
        "See you on Monday, at 10.30 sharp.",
        "Four words only here.",
    ]
    docs = []
    for t in texts:
        sh = sig.get_shingles(t)
        s = sig.get_signature(sh) if sh.size else None
        docs.append({
            "text": t,
            "shingles": [int(x) for x in sh.reshape(-1)],
            "signature": [int(x) for b in s for x in b] if s else None,
        })
    source = ("datatrove 0.10 MinhashDedupSignature (5-grams, 14x8, xxhash 64-bit, seed 1), recorded by "
              "scripts/check_curate_minhash.py --record-fixture")
    json.dump({"source": source, "docs": docs}, open(path, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dups", nargs="?")
    ap.add_argument("--ours")
    ap.add_argument("--datatrove")
    ap.add_argument("--record-fixture")
    ap.add_argument("--min-found", type=int, default=387,
                    help="fail below this many planted pairs with a member removed (datatrove 0.10.1: 387)")
    a = ap.parse_args()
    if a.record_fixture:
        record_fixture(a.record_fixture)
        return 0
    pairs = [(r["dup_id"], r["orig_id"], float(r["jaccard_ws5"])) for r in csv.DictReader(open(a.dups), delimiter="\t")]
    ok = True
    result = {}
    if a.ours:
        oc, orem = ours(a.ours)
        result["fmlab"] = score("fmlab", oc, orem, pairs)
        ok = result["fmlab"]["member_removed"] >= a.min_found
    if a.datatrove:
        dc, drem = datatrove(a.datatrove)
        result["datatrove"] = score("datatrove", dc, drem, pairs)
        if a.ours:
            for k in ("same_cluster", "member_removed"):
                if result["fmlab"][k] < result["datatrove"][k]:
                    print(f"FAIL: fmlab's {k} below datatrove's")
                    ok = False
        if a.ours:
            both = len(orem & drem)
            print(f"removal sets: {both} removed by both, {len(orem - drem)} only by fmlab, {len(drem - orem)} only by datatrove")
            for x in sorted(orem ^ drem):
                print(f"  only {'fmlab' if x in orem else 'datatrove'}: {x}")
    print(json.dumps(result))
    if not ok:
        print(f"FAIL: fmlab found fewer than {a.min_found} planted pairs")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
