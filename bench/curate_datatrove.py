#!/usr/bin/env python3
"""datatrove 0.10's side of bench/curate.sh and scripts/check_curate_minhash.sh.

    curate_datatrove.py fineweb-filters CORPUS.jsonl OUT
    curate_datatrove.py minhash CORPUS.jsonl OUT

Runs datatrove's pipeline on one process (LocalPipelineExecutor, tasks=1, workers=1):
`fineweb-filters` is FineWeb's four quality filters in FineWeb's order and settings
(Gopher repetition, Gopher quality, C4 with the terminal-punctuation rule off, FineWeb);
`minhash` is datatrove's four MinHash stages with its default config (5-grams, 14 buckets
x 8 hashes, 64-bit xxhash). Kept documents go to OUT/output, removed ones (minhash) to
OUT/removed, with their `minhash_cluster_id`. Prints one JSON line:
{"blocks": [{"name", "documents_in", "documents_out"}], "seconds"} (seconds: the pipeline
alone, imports and spaCy's load excluded; the caller times the whole process too).
"""
import glob
import json
import os
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def count_lines(folder):
    return sum(sum(1 for _ in open(f)) for f in glob.glob(os.path.join(folder, "*.jsonl")))


def run(pipeline, logs):
    LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=logs).run()


def fineweb_filters(corpus, out):
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    run(
        [
            JsonlReader(os.path.dirname(corpus), glob_pattern=os.path.basename(corpus)),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            JsonlWriter(f"{out}/output", compression=None),
        ],
        f"{out}/logs",
    )


def minhash(corpus, out):
    from datatrove.pipeline.dedup import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig

    config = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="xxhash"))

    def reader():
        return JsonlReader(os.path.dirname(corpus), glob_pattern=os.path.basename(corpus))

    run([reader(), MinhashDedupSignature(output_folder=f"{out}/sigs", config=config)], f"{out}/logs1")
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets", config=config)],
        tasks=config.num_buckets,
        workers=1,
        logging_dir=f"{out}/logs2",
    ).run()
    run(
        [MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove", config=config, save_cluster_id=True)],
        f"{out}/logs3",
    )
    run(
        [
            reader(),
            MinhashDedupFilter(
                input_folder=f"{out}/remove",
                exclusion_writer=JsonlWriter(f"{out}/removed", compression=None),
                load_cluster_ids=True,
            ),
            JsonlWriter(f"{out}/output", compression=None),
        ],
        f"{out}/logs4",
    )


def main():
    recipe, corpus, out = sys.argv[1:4]
    corpus = os.path.abspath(corpus)
    t0 = time.perf_counter()
    {"fineweb-filters": fineweb_filters, "minhash": minhash}[recipe](corpus, out)
    seconds = time.perf_counter() - t0
    n_in = sum(1 for _ in open(corpus))
    report = {
        "blocks": [{"name": recipe, "documents_in": n_in, "documents_out": count_lines(f"{out}/output")}],
        "seconds": seconds,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
