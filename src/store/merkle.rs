//! The per-segment Merkle tree: RFC 6962's shape (the left subtree holds the largest power of
//! two of leaves smaller than the whole) over blake3, with its own node context.
//!
//! A leaf is the record's `leaf_n` (already blake3 derive-key `"daftari v1 entry leaf"` over
//! `ENTRY_V1`); an inner node is blake3 derive-key `"daftari v1 merkle node"` over
//! `left ‖ right`; the root of no leaves is derive-key `"daftari v1 merkle empty"` over
//! nothing. Distinct contexts keep a node from ever passing for a leaf.
//!
//! Owns: the streaming root ([`Builder`], O(log n) memory), inclusion paths ([`path_ranges`]
//! names the subtrees a path needs, so a caller computes them in one pass over the leaves),
//! and checking a path ([`verify_path`], RFC 9162 §2.1.3.2).
//!
//! Must not: do I/O.

use super::chain::Hash;

/// Context of inner nodes.
pub const CTX_NODE: &str = "daftari v1 merkle node";
/// Context of the root of an empty tree.
pub const CTX_EMPTY: &str = "daftari v1 merkle empty";

/// An inner node.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(CTX_NODE);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// The root of a tree with no leaves.
pub fn empty_root() -> Hash {
    *blake3::Hasher::new_derive_key(CTX_EMPTY)
        .finalize()
        .as_bytes()
}

/// Builds a root from leaves pushed in order, holding only the perfect subtrees of the binary
/// decomposition of the count so far.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    /// (height, root) of each perfect subtree, largest first.
    stack: Vec<(u32, Hash)>,
    count: u64,
}

impl Builder {
    pub fn push_leaf(&mut self, leaf: Hash) {
        self.push_subtree(0, leaf);
    }

    /// Appends a perfect subtree of `2^height` leaves. Only valid where the leaves so far are
    /// a multiple of `2^height` (always true for leaves, and for aligned chunks); returns
    /// false and changes nothing otherwise.
    pub fn push_subtree(&mut self, height: u32, root: Hash) -> bool {
        if height >= 64 || !self.count.is_multiple_of(1u64 << height) {
            return false;
        }
        let (mut h, mut r) = (height, root);
        while let Some(&(top_h, top)) = self.stack.last() {
            if top_h != h {
                break;
            }
            self.stack.pop();
            r = node(&top, &r);
            h += 1;
        }
        self.stack.push((h, r));
        self.count += 1u64 << height;
        true
    }

    /// Leaves pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The perfect subtrees so far, largest first: what [`Builder::push_subtree`] takes to
    /// continue this tree inside a larger one.
    pub fn subtrees(&self) -> &[(u32, Hash)] {
        &self.stack
    }

    /// The RFC 6962 root of the leaves so far: the subtrees folded from the right.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            r = node(left, &r);
        }
        r
    }
}

/// Leaves from an arbitrary position on, kept as maximal aligned perfect subtrees: what a
/// worker walking one stretch of a segment contributes to the segment's tree.
#[derive(Debug, Clone)]
pub struct Pieces {
    /// (first leaf, height, root), in leaf order.
    stack: Vec<(u64, u32, Hash)>,
    next: u64,
}

impl Pieces {
    /// Pieces whose first leaf is leaf `start` of the whole tree.
    pub fn starting_at(start: u64) -> Pieces {
        Pieces {
            stack: Vec::new(),
            next: start,
        }
    }

    pub fn push_leaf(&mut self, leaf: Hash) {
        let (mut start, mut h, mut r) = (self.next, 0u32, leaf);
        while let Some(&(top_start, top_h, top)) = self.stack.last() {
            // Two neighbours merge only into a subtree the whole tree also has.
            if top_h != h || !top_start.is_multiple_of(1u64 << (h + 1)) {
                break;
            }
            self.stack.pop();
            r = node(&top, &r);
            start = top_start;
            h += 1;
        }
        self.stack.push((start, h, r));
        self.next += 1;
    }

    /// The position after the last leaf.
    pub fn end(&self) -> u64 {
        self.next
    }

    pub fn into_vec(self) -> Vec<(u64, u32, Hash)> {
        self.stack
    }
}

impl Builder {
    /// Appends the pieces of one stretch; false (and the builder is then unusable) when the
    /// stretch does not start where the tree so far ends.
    pub fn push_pieces(&mut self, pieces: &[(u64, u32, Hash)]) -> bool {
        pieces
            .iter()
            .all(|&(start, h, r)| start == self.count && self.push_subtree(h, r))
    }
}

/// The root of `leaves`.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut b = Builder::default();
    leaves.iter().for_each(|l| b.push_leaf(*l));
    b.root()
}

/// The leaf ranges `lo..hi` whose roots form the inclusion path of leaf `m` in a tree of `n`
/// leaves, in path order (from the leaf's sibling up to the root's other child).
pub fn path_ranges(m: u64, n: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, n);
    // Top-down: at each level, the half that does not hold m is a path element.
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if m < lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
        }
    }
    out.reverse();
    out
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn largest_power_of_two_below(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Whether `path` proves leaf `m` with hash `leaf` in the tree of `n` leaves with `root`.
pub fn verify_path(m: u64, n: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if m >= n {
        return false;
    }
    let (mut f, mut s) = (m, n - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| *blake3::hash(&i.to_be_bytes()).as_bytes())
            .collect()
    }

    /// RFC 6962's recursive definition, the reference for the streaming builder.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                node(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    #[test]
    fn the_streaming_root_is_rfc_6962s() {
        for n in 0..70 {
            let d = leaves(n);
            assert_eq!(root(&d), mth(&d), "n = {n}");
        }
        assert_ne!(root(&leaves(2)), root(&leaves(2)[..1]));
    }

    #[test]
    fn aligned_chunks_combine_to_the_same_root() {
        let d = leaves(37);
        let mut whole = Builder::default();
        for chunk in d.chunks(8) {
            let mut part = Builder::default();
            chunk.iter().for_each(|l| part.push_leaf(*l));
            for &(h, r) in part.subtrees() {
                assert!(whole.push_subtree(h, r));
            }
        }
        assert_eq!(whole.root(), mth(&d));
        assert!(
            !whole.push_subtree(3, [0; 32]),
            "37 leaves are not 8-aligned"
        );
    }

    #[test]
    fn stretches_at_any_boundaries_combine_to_the_same_root() {
        let d = leaves(300);
        for cuts in [
            vec![0, 300],
            vec![0, 1, 300],
            vec![0, 7, 100, 257, 300],
            vec![0, 131, 262, 300],
        ] {
            let mut whole = Builder::default();
            for w in cuts.windows(2) {
                let mut p = Pieces::starting_at(w[0]);
                d[w[0] as usize..w[1] as usize]
                    .iter()
                    .for_each(|l| p.push_leaf(*l));
                assert_eq!(p.end(), w[1]);
                assert!(whole.push_pieces(&p.into_vec()), "{cuts:?}");
            }
            assert_eq!(whole.root(), mth(&d), "{cuts:?}");
        }
        let mut p = Pieces::starting_at(5);
        p.push_leaf(d[5]);
        assert!(!Builder::default().push_pieces(&p.into_vec()), "a gap");
    }

    #[test]
    fn every_path_verifies_and_no_other_does() {
        for n in 1..40u64 {
            let d = leaves(n);
            let r = mth(&d);
            for m in 0..n {
                let path: Vec<Hash> = path_ranges(m, n)
                    .iter()
                    .map(|&(lo, hi)| mth(&d[lo as usize..hi as usize]))
                    .collect();
                assert!(verify_path(m, n, &d[m as usize], &path, &r), "{m}/{n}");
                let other = (m + 1) % n;
                if other != m {
                    assert!(!verify_path(other, n, &d[m as usize], &path, &r));
                    assert!(!verify_path(m, n, &d[other as usize], &path, &r));
                }
                // The size is bound by the seal, not by the path: against the bigger tree's
                // root the same path fails.
                let bigger = mth(&leaves(n + 1));
                assert!(!verify_path(m, n + 1, &d[m as usize], &path, &bigger));
                if let Some(first) = path.first() {
                    let mut bad = path.clone();
                    bad[0] = node(first, first);
                    assert!(!verify_path(m, n, &d[m as usize], &bad, &r));
                }
            }
        }
    }
}
