//! Union-find over document keys with datatrove's MinHash clustering rule: union by size,
//! the first document of a pair winning ties, path compression. The document kept from a
//! cluster is its root; every other member is removed. Feeding the same pairs in the same
//! order gives the same roots, which is why matches are read bucket by bucket, each in
//! signature order.

use std::collections::HashMap;

use crate::doc::DocKey;

/// A cluster of near-duplicates: the kept document and every member (kept one included),
/// in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCluster {
    pub kept: DocKey,
    pub members: Vec<DocKey>,
}

#[derive(Debug, Default)]
pub struct UnionFind {
    index: HashMap<u64, u32>,
    keys: Vec<u64>,
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new() -> Self {
        Self::default()
    }

    fn node(&mut self, key: u64) -> u32 {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.keys.len() as u32;
        self.index.insert(key, i);
        self.keys.push(key);
        self.parent.push(i);
        self.size.push(1);
        i
    }

    fn find(&mut self, x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        let mut cur = x;
        while self.parent[cur as usize] != root {
            let next = self.parent[cur as usize];
            self.parent[cur as usize] = root;
            cur = next;
        }
        root
    }

    /// Joins the clusters of `a` and `b`; the larger cluster's root stays root, and on a
    /// tie `a`'s root does (datatrove's `union`).
    pub fn union(&mut self, a: DocKey, b: DocKey) {
        let (na, nb) = (self.node(a.as_u64()), self.node(b.as_u64()));
        let (mut ra, mut rb) = (self.find(na), self.find(nb));
        if ra == rb {
            return;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
    }

    /// Documents seen in any pair.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The clusters, ordered by their smallest member.
    pub fn clusters(&mut self) -> Vec<KeyCluster> {
        let mut by_root: HashMap<u32, Vec<DocKey>> = HashMap::new();
        for i in 0..self.keys.len() as u32 {
            let r = self.find(i);
            by_root
                .entry(r)
                .or_default()
                .push(DocKey::from_u64(self.keys[i as usize]));
        }
        let mut out: Vec<KeyCluster> = by_root
            .into_iter()
            .map(|(root, mut members)| {
                members.sort_unstable();
                KeyCluster {
                    kept: DocKey::from_u64(self.keys[root as usize]),
                    members,
                }
            })
            .collect();
        out.sort_unstable_by_key(|c| c.members[0]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> DocKey {
        DocKey::new(0, i)
    }

    #[test]
    fn larger_cluster_root_is_kept_and_ties_go_to_first() {
        let mut uf = UnionFind::new();
        uf.union(k(5), k(3)); // tie: 5 stays root
        uf.union(k(1), k(3)); // {5,3} is larger: 5 stays root
        uf.union(k(8), k(9)); // tie: 8
        let c = uf.clusters();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].kept, k(5));
        assert_eq!(c[0].members, vec![k(1), k(3), k(5)]);
        assert_eq!(c[1].kept, k(8));
        assert_eq!(uf.len(), 5);
    }
}
