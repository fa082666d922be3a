//! Drain: log lines clustered into templates with a fixed-depth prefix tree, as Loki's
//! pattern ingester runs it (its parameters, its tree, its LRU of clusters and its limiter).
//!
//! Owns: one Drain's state for one stream and level: the tree (first by token count, then
//! by leading tokens, up to 28 levels, 15 children per node, tokens with digits routed to a
//! `<_>` child), the clusters (a line joins the most similar one of its leaf if at least 30%
//! of the tokens agree, which turns the differing tokens into `<_>`), at most 300 clusters
//! with the least recently used one evicted, and Loki's limiter: when evictions exceed a
//! quarter of the lines trained, training stops for ten minutes (here, of line time).
//!
//! Must not: read records or allocate past the query's budget; every cluster, sample and
//! tree node is counted there before it is kept.

use std::collections::HashMap;

use super::samples::Chunks;
use super::tokens::{Format, PARAM, Tokens};
use crate::query::budget::Budget;
use crate::query::error::QueryError;

/// Loki's `LogClusterDepth` (30) less the two levels it does not walk.
const MAX_NODE_DEPTH: usize = 28;
/// Loki's `SimTh`.
const SIM_THRESHOLD: f64 = 0.3;
/// Loki's `MaxChildren`.
const MAX_CHILDREN: usize = 15;
/// Loki's `MaxClusters`: clusters one Drain keeps before it evicts the least recently used.
const MAX_CLUSTERS: usize = 300;
/// Loki's `MaxEvictionRatio`.
const MAX_EVICTION_RATIO: f64 = 0.25;
/// How long the limiter stops training once evictions run over the ratio.
const BLOCK_NS: i64 = 600_000_000_000;
/// Lines with fewer or more tokens are not clustered.
const MIN_TOKENS: usize = 4;
const MAX_TOKENS: usize = 80;

/// What a cluster holds besides its tokens, and one sample, and one tree node, for the
/// budget.
const CLUSTER_BYTES: usize = 160;
const TOKEN_BYTES: usize = 32;
const SAMPLE_BYTES: usize = 16;
const NODE_BYTES: usize = 64;

#[derive(Default)]
struct Node {
    children: Vec<(String, usize)>,
    clusters: Vec<usize>,
}

pub struct Cluster {
    tokens: Tokens,
    pub chunks: Chunks,
    used: u64,
    held: usize,
}

pub struct Drain {
    format: Format,
    nodes: Vec<Node>,
    clusters: HashMap<usize, Cluster>,
    next_id: usize,
    tick: u64,
    added: u64,
    evicted: u64,
    blocked_until: Option<i64>,
    budget: Budget,
}

impl Drain {
    pub fn new(format: Format, budget: Budget) -> Drain {
        Drain {
            format,
            nodes: vec![Node::default()],
            clusters: HashMap::new(),
            next_id: 0,
            tick: 0,
            added: 0,
            evicted: 0,
            blocked_until: None,
            budget,
        }
    }

    /// The clusters kept, with their patterns (`""` for one that cannot be shown).
    pub fn clusters(&self) -> impl Iterator<Item = (String, &Cluster)> {
        self.clusters
            .values()
            .map(|c| (self.format.join(&c.tokens), c))
    }

    /// Trains on one line at `ts_ns`.
    pub fn train(&mut self, line: &str, ts_ns: i64) -> Result<(), QueryError> {
        if !self.allow(ts_ns) {
            return Ok(());
        }
        let Some(tokens) = self.format.tokenize(line) else {
            return Ok(());
        };
        let n = tokens.words.len();
        if !(MIN_TOKENS..=MAX_TOKENS).contains(&n) {
            return Ok(());
        }
        let ts_ms = ts_ns.div_euclid(1_000_000);
        match self.search(&tokens.words) {
            Some(id) => {
                let Some(c) = self.clusters.get_mut(&id) else {
                    return Ok(());
                };
                for (t, w) in c.tokens.words.iter_mut().zip(&tokens.words) {
                    if t != w {
                        *t = PARAM.to_owned();
                    }
                }
                if c.chunks.add(ts_ms) {
                    self.budget.hold(SAMPLE_BYTES)?;
                    c.held += SAMPLE_BYTES;
                }
                self.touch(id);
            }
            None => {
                let held = CLUSTER_BYTES
                    + SAMPLE_BYTES
                    + tokens
                        .words
                        .iter()
                        .map(|w| w.len() + TOKEN_BYTES)
                        .sum::<usize>();
                self.budget.hold(held)?;
                self.next_id += 1;
                let id = self.next_id;
                let mut chunks = Chunks::default();
                chunks.add(ts_ms);
                self.tick += 1;
                self.clusters.insert(
                    id,
                    Cluster {
                        tokens,
                        chunks,
                        used: self.tick,
                        held,
                    },
                );
                if self.clusters.len() > MAX_CLUSTERS {
                    self.evict_oldest();
                }
                self.insert(id)?;
            }
        }
        Ok(())
    }

    fn allow(&mut self, ts_ns: i64) -> bool {
        if let Some(until) = self.blocked_until {
            if ts_ns < until {
                return false;
            }
            (self.added, self.evicted, self.blocked_until) = (0, 0, None);
        }
        if self.added > 0 && self.evicted as f64 / self.added as f64 > MAX_EVICTION_RATIO {
            self.blocked_until = Some(ts_ns.saturating_add(BLOCK_NS));
            return false;
        }
        self.added += 1;
        true
    }

    /// Marks a cluster used (every lookup does, as in Loki's LRU); whether it is kept.
    fn touch(&mut self, id: usize) -> bool {
        self.tick += 1;
        match self.clusters.get_mut(&id) {
            Some(c) => {
                c.used = self.tick;
                true
            }
            None => false,
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .clusters
            .iter()
            .min_by_key(|(_, c)| c.used)
            .map(|(&id, _)| id);
        if let Some(c) = oldest.and_then(|id| self.clusters.remove(&id)) {
            self.budget.release(c.held);
            self.evicted += 1;
        }
    }

    fn child(&self, node: usize, key: &str) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, n)| n)
    }

    fn add_child(&mut self, node: usize, key: &str) -> Result<usize, QueryError> {
        self.budget.hold(NODE_BYTES + key.len())?;
        self.nodes.push(Node::default());
        let id = self.nodes.len() - 1;
        self.nodes[node].children.push((key.to_owned(), id));
        Ok(id)
    }

    /// The best cluster for `tokens` in the leaf their leading tokens lead to.
    fn search(&mut self, tokens: &[String]) -> Option<usize> {
        let mut node = self.child(0, &tokens.len().to_string())?;
        for (depth, t) in (1..).zip(tokens) {
            if depth >= MAX_NODE_DEPTH || depth == tokens.len() {
                break;
            }
            node = self.child(node, t).or_else(|| self.child(node, PARAM))?;
        }
        let candidates = self.nodes[node].clusters.clone();
        let mut best: Option<(f64, i64, usize)> = None;
        for id in candidates {
            if !self.touch(id) {
                continue;
            }
            let Some((sim, params)) = distance(&self.clusters[&id].tokens.words, tokens) else {
                continue;
            };
            if best.is_none_or(|(s, p, _)| sim > s || (sim == s && params > p)) {
                best = Some((sim, params, id));
            }
        }
        best.filter(|b| b.0 >= SIM_THRESHOLD).map(|b| b.2)
    }

    /// Files a new cluster under the path of its tokens.
    fn insert(&mut self, id: usize) -> Result<(), QueryError> {
        let words = self.clusters[&id].tokens.words.clone();
        let count = words.len().to_string();
        let mut node = match self.child(0, &count) {
            Some(n) => n,
            None => self.add_child(0, &count)?,
        };
        for (depth, t) in (1..).zip(&words) {
            if depth >= MAX_NODE_DEPTH || depth >= words.len() {
                let mut kept = std::mem::take(&mut self.nodes[node].clusters);
                kept.retain(|&c| self.touch(c));
                kept.push(id);
                self.nodes[node].clusters = kept;
                break;
            }
            node = match self.child(node, t) {
                Some(n) => n,
                None => self.branch(node, t)?,
            };
        }
        Ok(())
    }

    /// Where a token without a child of its own goes: a new child while there is room (never
    /// for a token with a digit), else the `<_>` child.
    fn branch(&mut self, node: usize, t: &str) -> Result<usize, QueryError> {
        let param = self.child(node, PARAM);
        let n = self.nodes[node].children.len();
        let digits = t.chars().any(char::is_numeric);
        match param {
            Some(p) if digits || n >= MAX_CHILDREN => Ok(p),
            Some(_) => self.add_child(node, t),
            None if !digits && n + 1 < MAX_CHILDREN => self.add_child(node, t),
            None => self.add_child(node, PARAM),
        }
    }
}

/// The share of tokens a cluster has in common with a line, and its `<_>` count.
fn distance(cluster: &[String], tokens: &[String]) -> Option<(f64, i64)> {
    let (mut same, mut params) = (0usize, 0i64);
    for (c, t) in cluster.iter().zip(tokens) {
        if c.as_bytes().first() == Some(&0) && c != t {
            return None;
        }
        if c == PARAM {
            params += 1;
        } else if c == t {
            same += 1;
        }
    }
    Some((same as f64 / cluster.len() as f64, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget() -> Budget {
        Budget::new(Duration::from_secs(10), 64 << 20)
    }

    /// A line with no token in common with any other `unlike(j)`, and no digits.
    fn unlike(i: usize) -> String {
        let w: String = (0..3)
            .map(|k| char::from(b'a' + ((i >> (k * 4)) & 15) as u8))
            .collect();
        format!("{w}p {w}q {w}r {w}s")
    }

    fn patterns(d: &Drain) -> Vec<String> {
        let mut p: Vec<String> = d.clusters().map(|(p, _)| p).collect();
        p.sort();
        p
    }

    #[test]
    fn lines_differing_in_variable_tokens_share_one_pattern() {
        let mut d = Drain::new(Format::Unknown, budget());
        for (i, user) in ["root", "root", "root"].iter().enumerate() {
            let line = format!("Failed password for {user} from 10.0.0.{i} port 2{i} ssh2");
            d.train(&line, i as i64 * 1_000_000_000).unwrap();
        }
        d.train("Accepted publickey for ops from 10.0.0.9 port 22 ssh2", 0)
            .unwrap();
        assert_eq!(
            patterns(&d),
            [
                "Accepted publickey for ops from 10.0.0.9 port 22 ssh2",
                "Failed password for root from <_> port <_> ssh2"
            ]
        );
    }

    #[test]
    fn short_lines_are_not_clustered_and_the_least_recently_used_cluster_goes_first() {
        let mut d = Drain::new(Format::Unknown, budget());
        d.train("too few tokens", 0).unwrap();
        assert!(patterns(&d).is_empty());
        for i in 0..=MAX_CLUSTERS {
            d.train(&unlike(i), i as i64).unwrap();
        }
        assert_eq!(d.clusters.len(), MAX_CLUSTERS);
        assert!(!patterns(&d).contains(&unlike(0)));
        assert_eq!(d.evicted, 1);
    }

    #[test]
    fn every_cluster_is_counted_in_the_budget() {
        let tight = Budget::new(Duration::from_secs(10), 4096);
        let mut d = Drain::new(Format::Unknown, tight);
        let e = (0..1000)
            .map(|i| d.train(&unlike(i as usize), i))
            .find_map(Result::err)
            .expect("a 4 KiB budget fills");
        assert!(e.to_string().contains("query.max_memory_bytes"), "{e}");
    }
}
