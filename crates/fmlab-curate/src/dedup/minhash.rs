//! MinHash LSH near-duplicate detection with datatrove 0.10's defaults and arithmetic:
//! `simplify_text`, word splitting, word 5-grams joined by one space and hashed with
//! xxHash64, 14 bands (buckets) of 8 permuted minimums each, the permutations
//! `(a·x + b) mod 2^64 mod (2^61 − 1)` with `a, b` drawn by NumPy's `RandomState(seed)` —
//! so a document's signature is bit for bit datatrove's. Two documents match when one band
//! is equal; matches are joined by union-find and one document per cluster is kept.
//!
//! Staged (each stage a function over a working folder, see [`super`]), or all in memory
//! with [`MinHash::dedup`]; both give the same result.

use std::collections::HashSet;
use std::path::Path;

use crate::doc::{DocKey, Document};
use crate::words::word_spans;
use crate::{Error, Result};

use super::normalize::{
    simplify_text_into, simplify_words_ascii, NormScratch, TextNorm, WordScratch,
};
use super::permute;
use super::rng::Mt19937;
use super::store::{self, Cluster, DedupSummary, RankCounts, RemovalSet};
use super::unionfind::{KeyCluster, UnionFind};
use super::xxh64::xxh64_ranges;

const MERSENNE_61: u64 = (1 << 61) - 1;

/// datatrove's `MinhashConfig` (64-bit xxHash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinhashConfig {
    pub n_grams: usize,
    pub num_buckets: usize,
    pub hashes_per_bucket: usize,
    pub seed: u32,
    pub norm: TextNorm,
}

impl Default for MinhashConfig {
    /// 5-grams, 14 buckets × 8 hashes, seed 1: datatrove's defaults.
    fn default() -> Self {
        MinhashConfig {
            n_grams: 5,
            num_buckets: 14,
            hashes_per_bucket: 8,
            seed: 1,
            norm: TextNorm::default(),
        }
    }
}

/// Reusable buffers for signatures (no allocation per shingle, few per document).
#[derive(Debug, Default)]
pub struct MinhashScratch {
    norm: NormScratch,
    words: WordScratch,
    spans: Vec<(usize, usize)>,
    /// The normalised text, then the n-grams whose words are not one space apart joined
    /// by one space, then 8 bytes of padding: what [`xxh64_ranges`] hashes.
    arena: Vec<u8>,
    glued: Vec<u32>,
    starts: Vec<u64>,
    lens: Vec<u64>,
    shingles: Vec<u64>,
}

/// The result of a whole deduplication: counts, clusters and the removed documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DedupResult {
    pub summary: DedupSummary,
    pub clusters: Vec<Cluster>,
    pub removed: RemovalSet,
}

/// A configured MinHash (its permutation parameters drawn once).
#[derive(Debug, Clone)]
pub struct MinHash {
    config: MinhashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHash {
    pub fn new(config: MinhashConfig) -> Result<Self> {
        if config.n_grams == 0 || config.num_buckets == 0 || config.hashes_per_bucket == 0 {
            return Err(Error::Config(format!(
                "minhash: n_grams ({}), buckets ({}) and hashes per bucket ({}) must be at least 1",
                config.n_grams, config.num_buckets, config.hashes_per_bucket
            )));
        }
        let n = config.num_buckets * config.hashes_per_bucket;
        let mut rng = Mt19937::new(config.seed);
        let a = (0..n).map(|_| rng.randint_u64(1, MERSENNE_61)).collect();
        let b = (0..n).map(|_| rng.randint_u64(0, MERSENNE_61)).collect();
        Ok(MinHash { config, a, b })
    }

    pub fn config(&self) -> &MinhashConfig {
        &self.config
    }

    /// Hashes of the document's word n-grams (each n-gram's words joined by one space,
    /// xxHash64 of its UTF-8), in text order, repeats included.
    pub fn shingles<'s>(&self, text: &str, scratch: &'s mut MinhashScratch) -> &'s [u64] {
        let MinhashScratch {
            norm,
            words,
            spans,
            arena,
            glued,
            starts,
            lens,
            shingles,
        } = scratch;
        shingles.clear();
        // Words are byte spans of the normalised text: an n-gram whose words are one space
        // apart is a range of the text, others are joined after it in `arena`; then all
        // ranges are hashed at once.
        let text = if self.config.norm.splits_ascii_in_one_pass() && text.is_ascii() {
            simplify_words_ascii(text, norm, words, spans)
        } else {
            let text = simplify_text_into(text, &self.config.norm, norm);
            word_spans(text, spans);
            text
        };
        let n = self.config.n_grams;
        if spans.len() < n {
            return shingles;
        }
        let bytes = text.as_bytes();
        arena.clear();
        arena.extend_from_slice(bytes);
        // `glued[j]`: how many of the gaps before word j are not one space (a prefix
        // count: an n-gram from word i is a range of the text when the count is the same at
        // its first and its last word).
        glued.clear();
        glued.reserve(spans.len());
        let mut count = 0u32;
        glued.push(0);
        for w in spans.windows(2) {
            let ((_, e0), (s1, _)) = (w[0], w[1]);
            count += u32::from(!(s1 == e0 + 1 && bytes.get(e0) == Some(&b' ')));
            glued.push(count);
        }
        let m = spans.len() - n + 1;
        starts.clear();
        lens.clear();
        starts.resize(m, 0);
        lens.resize(m, 0);
        for (i, (start, len)) in starts.iter_mut().zip(lens.iter_mut()).enumerate() {
            let (s, e) = if glued[i] == glued[i + n - 1] {
                (spans[i].0, spans[i + n - 1].1)
            } else {
                let s = arena.len();
                for (k, &(a, b)) in spans[i..i + n].iter().enumerate() {
                    if k > 0 {
                        arena.push(b' ');
                    }
                    arena.extend_from_slice(&bytes[a..b]);
                }
                (s, arena.len())
            };
            *start = s as u64;
            *len = (e - s) as u64;
        }
        arena.extend_from_slice(&[0; 8]);
        shingles.resize(starts.len(), 0);
        xxh64_ranges(arena, starts, lens, shingles);
        shingles
    }

    /// The signature (`num_buckets × hashes_per_bucket` minimums, band after band) into
    /// `sig`; false (and `sig` empty) when the text has fewer than `n_grams` words.
    pub fn signature_into(
        &self,
        text: &str,
        scratch: &mut MinhashScratch,
        sig: &mut Vec<u64>,
    ) -> bool {
        sig.clear();
        let shingles = self.shingles(text, scratch);
        if shingles.is_empty() {
            return false;
        }
        permute::min_hashes(shingles, &self.a, &self.b, sig);
        true
    }

    /// The signature of one text (see [`MinHash::signature_into`]).
    pub fn signature(&self, text: &str) -> Option<Vec<u64>> {
        let mut sig = Vec::new();
        self.signature_into(text, &mut MinhashScratch::default(), &mut sig)
            .then_some(sig)
    }

    /// All four stages in memory, on one thread: the same result as the staged path.
    pub fn dedup<'a>(&self, docs: impl IntoIterator<Item = &'a Document>) -> DedupResult {
        let h = self.config.hashes_per_bucket;
        let mut buckets = vec![Vec::new(); self.config.num_buckets];
        let mut ids = Vec::new();
        let mut counts = RankCounts::default();
        let (mut scratch, mut sig) = (MinhashScratch::default(), Vec::new());
        for doc in docs {
            counts.documents += 1;
            if self.signature_into(&doc.text, &mut scratch, &mut sig) {
                counts.hashed += 1;
                push_bands(&mut buckets, &sig, h, doc.key);
                ids.push((doc.key.as_u64(), doc.id.as_str()));
            }
        }
        let mut uf = UnionFind::new();
        let mut matches = 0;
        for flat in &mut buckets {
            store::sort_records(flat, h + 1);
            for pair in flat.chunks_exact(h + 1).collect::<Vec<_>>().windows(2) {
                if pair[0][..h] == pair[1][..h] {
                    uf.union(DocKey::from_u64(pair[0][h]), DocKey::from_u64(pair[1][h]));
                    matches += 1;
                }
            }
        }
        in_memory_result("minhash", counts, matches, &uf.clusters(), ids)
    }

    /// Stage 1, for one rank: a writer that takes the rank's documents (any order) and
    /// writes, on [`SignatureWriter::finish`], one sorted file of `(band, key)` records per
    /// bucket, `dir/sigs/bucket_BBB/rank_RRRRR.sig`, and the rank's ids and counts.
    pub fn signature_writer<'m>(&'m self, dir: &Path, rank: usize) -> SignatureWriter<'m> {
        SignatureWriter {
            minhash: self,
            dir: dir.to_path_buf(),
            rank,
            buckets: vec![Vec::new(); self.config.num_buckets],
            ids: Vec::new(),
            counts: RankCounts::default(),
            scratch: MinhashScratch::default(),
            sig: Vec::new(),
        }
    }

    /// Stage 2, for one bucket (buckets are independent: run them on any ranks): merges
    /// every rank's sorted file of the bucket and writes the matches — each document paired
    /// with the one before it in (band, key) order when their bands are equal — to
    /// `dir/matches/bucket_BBB.pairs`. Returns the number of matches.
    pub fn find_matches(&self, dir: &Path, bucket: usize) -> Result<u64> {
        if bucket >= self.config.num_buckets {
            return Err(Error::Config(format!(
                "minhash: bucket {bucket} out of range (there are {})",
                self.config.num_buckets
            )));
        }
        if store::list_files(&dir.join("ids"), "rank_", ".counts.json")?.is_empty() {
            return Err(Error::format(
                dir.join("ids"),
                "no rank has written its signatures yet (stage 1)",
            ));
        }
        let h = self.config.hashes_per_bucket;
        let sig_dir = dir.join(format!("sigs/bucket_{bucket:03}"));
        let paths = store::list_files(&sig_dir, "rank_", ".sig")?;
        let mut prev: Vec<u64> = Vec::new();
        let mut pairs: Vec<u64> = Vec::new();
        store::merge_sorted(&paths, h + 1, |rec| {
            if !prev.is_empty() && prev[..h] == rec[..h] {
                if prev[h] == rec[h] {
                    return Err(Error::format(&sig_dir, format!(
                        "document {:?} has signatures in two rank files: stale files from another run?",
                        DocKey::from_u64(rec[h])
                    )));
                }
                pairs.extend([prev[h], rec[h]]);
            }
            prev.clear();
            prev.extend_from_slice(rec);
            Ok(())
        })?;
        store::write_records(
            &dir.join(format!("matches/bucket_{bucket:03}.pairs")),
            &pairs,
        )?;
        Ok(pairs.len() as u64 / 2)
    }

    /// Stage 3, once: union-find over every bucket's matches (bucket by bucket, in order),
    /// then writes the removals per input file, `clusters.json` and `summary.json`.
    pub fn cluster(&self, dir: &Path) -> Result<DedupSummary> {
        let mut uf = UnionFind::new();
        let mut matches = 0;
        for bucket in 0..self.config.num_buckets {
            let path = dir.join(format!("matches/bucket_{bucket:03}.pairs"));
            if !path.is_file() {
                return Err(Error::format(
                    &path,
                    "missing: stage 2 has not run for this bucket",
                ));
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if bytes.len() % 16 != 0 {
                return Err(Error::format(&path, "not a whole number of pairs"));
            }
            for c in bytes.chunks_exact(16) {
                let word = |o: usize| {
                    u64::from_le_bytes([
                        c[o],
                        c[o + 1],
                        c[o + 2],
                        c[o + 3],
                        c[o + 4],
                        c[o + 5],
                        c[o + 6],
                        c[o + 7],
                    ])
                };
                uf.union(DocKey::from_u64(word(0)), DocKey::from_u64(word(8)));
                matches += 1;
            }
        }
        staged_result(dir, "minhash", matches, &uf.clusters())
    }
}

fn push_bands(buckets: &mut [Vec<u64>], sig: &[u64], h: usize, key: DocKey) {
    for (flat, band) in buckets.iter_mut().zip(sig.chunks_exact(h)) {
        flat.extend_from_slice(band);
        flat.push(key.as_u64());
    }
}

/// The documents in any cluster.
fn member_keys(key_clusters: &[KeyCluster]) -> HashSet<u64> {
    key_clusters
        .iter()
        .flat_map(|c| c.members.iter().map(|k| k.as_u64()))
        .collect()
}

/// The result of an in-memory deduplication, `ids` the `(key, id)` of every document seen.
pub(crate) fn in_memory_result<'a>(
    method: &str,
    counts: RankCounts,
    matches: u64,
    key_clusters: &[KeyCluster],
    ids: impl IntoIterator<Item = (u64, &'a str)>,
) -> DedupResult {
    let wanted = member_keys(key_clusters);
    let ids = ids
        .into_iter()
        .filter(|(k, _)| wanted.contains(k))
        .map(|(k, id)| (k, id.to_string()))
        .collect();
    finish_clusters(method, counts, matches, key_clusters, &ids)
}

/// The last stage of a staged deduplication: reads the ranks' counts and the ids of the
/// clustered documents, then writes the removals, `clusters.json` and `summary.json`.
pub(crate) fn staged_result(
    dir: &Path,
    method: &str,
    matches: u64,
    key_clusters: &[KeyCluster],
) -> Result<DedupSummary> {
    let (counts, ids) = store::read_rank_files(dir, &member_keys(key_clusters))?;
    let result = finish_clusters(method, counts, matches, key_clusters, &ids);
    store::write_outcome(
        dir,
        &result.removed.keys(),
        &result.clusters,
        &result.summary,
    )?;
    Ok(result.summary)
}

fn finish_clusters(
    method: &str,
    counts: RankCounts,
    matches: u64,
    key_clusters: &[KeyCluster],
    ids: &std::collections::HashMap<u64, String>,
) -> DedupResult {
    let mut summary = DedupSummary {
        method: method.to_string(),
        documents: counts.documents,
        hashed: counts.hashed,
        matches,
        ..DedupSummary::default()
    };
    let clusters = store::name_clusters(key_clusters, ids, &mut summary);
    let removed = RemovalSet::from_keys(
        key_clusters
            .iter()
            .flat_map(|c| c.members.iter().copied().filter(move |&k| k != c.kept)),
    );
    DedupResult {
        summary,
        clusters,
        removed,
    }
}

/// Stage 1's writer for one rank (see [`MinHash::signature_writer`]).
pub struct SignatureWriter<'m> {
    minhash: &'m MinHash,
    dir: std::path::PathBuf,
    rank: usize,
    buckets: Vec<Vec<u64>>,
    ids: Vec<(u64, String)>,
    counts: RankCounts,
    scratch: MinhashScratch,
    sig: Vec<u64>,
}

impl SignatureWriter<'_> {
    pub fn add(&mut self, doc: &Document) {
        self.add_text(doc.key, &doc.id, &doc.text);
    }

    pub fn add_text(&mut self, key: DocKey, id: &str, text: &str) {
        self.counts.documents += 1;
        if self
            .minhash
            .signature_into(text, &mut self.scratch, &mut self.sig)
        {
            self.counts.hashed += 1;
            let h = self.minhash.config.hashes_per_bucket;
            push_bands(&mut self.buckets, &self.sig, h, key);
            self.ids.push((key.as_u64(), id.to_string()));
        }
    }

    /// Adds a document whose signature was computed elsewhere (in parallel, by
    /// [`MinHash::signature`]); an empty signature counts the document as too short.
    pub fn add_signature(&mut self, key: DocKey, id: &str, sig: &[u64]) {
        self.counts.documents += 1;
        let h = self.minhash.config.hashes_per_bucket;
        if sig.len() != h * self.minhash.config.num_buckets {
            return;
        }
        self.counts.hashed += 1;
        push_bands(&mut self.buckets, sig, h, key);
        self.ids.push((key.as_u64(), id.to_string()));
    }

    /// Sorts and writes the rank's files; the counts file, written last, marks the rank done.
    pub fn finish(self) -> Result<RankCounts> {
        let h = self.minhash.config.hashes_per_bucket;
        for (b, mut flat) in self.buckets.into_iter().enumerate() {
            store::sort_records(&mut flat, h + 1);
            let path = self
                .dir
                .join(format!("sigs/bucket_{b:03}/rank_{:05}.sig", self.rank));
            store::write_records(&path, &flat)?;
        }
        store::write_rank_files(&self.dir, self.rank, self.counts, &self.ids)?;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::normalize::simplify_text;

    /// The shingles the plain way: normalise, split into words, join each n-gram's words
    /// with one space and hash it with the `xxhash-rust` crate.
    fn reference(text: &str, config: &MinhashConfig) -> Vec<u64> {
        let norm = simplify_text(text, &config.norm);
        let mut spans = Vec::new();
        word_spans(&norm, &mut spans);
        let words: Vec<&str> = spans.iter().map(|&(a, b)| &norm[a..b]).collect();
        words
            .windows(config.n_grams)
            .map(|w| xxhash_rust::xxh64::xxh64(w.join(" ").as_bytes(), 0))
            .collect()
    }

    #[test]
    fn shingles_equal_joining_and_hashing_each_n_gram() {
        // Prose, numbers, punctuation glued to words (n-grams that are not ranges of the
        // text), exceptions, long words (n-grams of 64 bytes or more), non-ASCII text.
        let pieces = [
            "the",
            "Kernel",
            "page",
            "a",
            "x",
            "don't",
            "cannot",
            "e.g.",
            "word,",
            "(paren)",
            "3.14",
            "10am",
            "\"quoted\"",
            "-",
            "...",
            "\n",
            "  ",
            "Café",
            "naïve",
            "ΟΔΟΣ",
            "—",
            "supercalifragilisticexpialidocious",
            "pneumonoultramicroscopicsilicovolcanoconiosis",
            "a.b.c",
            "foo_bar",
            "x=y+1;",
            "U.S.",
            "it's",
        ];
        let mut state = 17u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut scratch = MinhashScratch::default();
        for n_grams in [1, 2, 5] {
            let config = MinhashConfig {
                n_grams,
                ..MinhashConfig::default()
            };
            let mh = MinHash::new(config).unwrap_or_else(|e| panic!("{e}"));
            for round in 0..1500 {
                let len = next() % 60;
                let ascii = round % 3 != 0;
                let mut text = String::new();
                for _ in 0..len {
                    let piece = pieces[next() % pieces.len()];
                    if ascii && !piece.is_ascii() {
                        continue;
                    }
                    text.push_str(piece);
                    if next() % 4 != 0 {
                        text.push(' ');
                    }
                }
                assert_eq!(
                    mh.shingles(&text, &mut scratch),
                    &reference(&text, &config)[..],
                    "{text:?}"
                );
            }
        }
    }
}
