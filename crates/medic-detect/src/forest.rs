//! Streaming isolation forest over shingled values. The forest is refitted every
//! `refit_every` samples on a sliding pool of the most recent shingles, with a seeded PRNG,
//! so results are deterministic and memory is bounded.

use std::collections::VecDeque;

use crate::util::{clamp01, SplitMix64};
use crate::Detector;

/// Parameters of [`IsolationForest`].
#[derive(Debug, Clone, PartialEq)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Points in the sliding pool the forest is fitted on.
    pub pool: usize,
    /// Points sampled (without replacement) from the pool for each tree.
    pub subsample: usize,
    /// Shingle length: each point is the last `shingle` values.
    pub shingle: usize,
    /// Refit after this many new samples.
    pub refit_every: usize,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            trees: 24,
            pool: 512,
            subsample: 128,
            shingle: 4,
            refit_every: 512,
            seed: 0x006d_6564_6963,
        }
    }
}

const LEAF: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    dim: u32,
    split: f64,
    left: u32,
    right: u32,
    size: u32,
}

#[derive(Debug, Clone, Default)]
struct Tree {
    nodes: Vec<Node>,
    /// Per node, the bounding box of its points: `dims` minima then `dims` maxima.
    boxes: Vec<f64>,
}

/// Average path length of an unsuccessful BST search among `n` points.
fn c_factor(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    2.0 * ((nf - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (nf - 1.0) / nf
}

/// Isolation-forest detector.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    p: ForestParams,
    recent: VecDeque<f64>,
    pool: VecDeque<Vec<f64>>,
    trees: Vec<Tree>,
    rng: SplitMix64,
    since_fit: usize,
    fitted_n: usize,
    scratch: Vec<u32>,
    point: Vec<f64>,
}

impl IsolationForest {
    /// A detector with the given parameters.
    #[must_use]
    pub fn new(p: ForestParams) -> Self {
        let p = ForestParams {
            trees: p.trees.max(1),
            pool: p.pool.max(8),
            subsample: p.subsample.clamp(4, p.pool.max(8)),
            shingle: p.shingle.max(1),
            refit_every: p.refit_every.max(1),
            seed: p.seed,
        };
        Self {
            rng: SplitMix64::new(p.seed),
            recent: VecDeque::with_capacity(p.shingle),
            pool: VecDeque::with_capacity(p.pool),
            trees: Vec::new(),
            since_fit: 0,
            fitted_n: 0,
            scratch: Vec::new(),
            point: Vec::with_capacity(p.shingle),
            p,
        }
    }

    fn fit(&mut self) {
        let n = self.pool.len();
        let m = self.p.subsample.min(n);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_depth = (m as f64).log2().ceil() as usize;
        self.trees.clear();
        for _ in 0..self.p.trees {
            // Partial Fisher–Yates sample of `m` pool indices.
            self.scratch.clear();
            #[allow(clippy::cast_possible_truncation)]
            self.scratch.extend(0..n as u32);
            for i in 0..m {
                let j = i + self.rng.below(n - i);
                self.scratch.swap(i, j);
            }
            let mut idx: Vec<u32> = self.scratch[..m].to_vec();
            let mut tree = Tree::default();
            build(
                &mut tree,
                &self.pool,
                &mut idx,
                0,
                max_depth,
                &mut self.rng,
                self.p.shingle,
            );
            self.trees.push(tree);
        }
        self.fitted_n = m;
        self.since_fit = 0;
    }

    /// Expected isolation depth of `x`. At every node, a random cut through the node's
    /// bounding box extended to contain `x` separates `x` with probability
    /// `extension / (range + extension)` (summed over dimensions), as in a random cut forest;
    /// otherwise `x` follows the stored split.
    fn path_len(&self, tree: &Tree, x: &[f64]) -> f64 {
        let dims = self.p.shingle;
        let mut i = 0usize;
        let mut depth = 0.0;
        let mut reach = 1.0;
        let mut expected = 0.0;
        loop {
            let Some(node) = tree.nodes.get(i) else {
                return expected + reach * depth;
            };
            if let Some(b) = tree.boxes.get(i * 2 * dims..(i + 1) * 2 * dims) {
                let (lo, hi) = b.split_at(dims);
                let mut range = 0.0;
                let mut ext = 0.0;
                for ((v, l), h) in x.iter().zip(lo).zip(hi) {
                    range += h - l;
                    ext += (l - v).max(0.0) + (v - h).max(0.0);
                }
                if ext > 0.0 {
                    let p = ext / (range + ext);
                    expected += reach * p * (depth + 1.0);
                    reach *= 1.0 - p;
                }
            }
            if node.left == LEAF {
                return expected + reach * (depth + c_factor(node.size as usize));
            }
            let v = x.get(node.dim as usize).copied().unwrap_or(0.0);
            i = if v < node.split {
                node.left
            } else {
                node.right
            } as usize;
            depth += 1.0;
        }
    }
}

fn build(
    tree: &mut Tree,
    pool: &VecDeque<Vec<f64>>,
    idx: &mut [u32],
    depth: usize,
    max_depth: usize,
    rng: &mut SplitMix64,
    dims: usize,
) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let me = tree.nodes.len() as u32;
    #[allow(clippy::cast_possible_truncation)]
    let size = idx.len() as u32;
    tree.nodes.push(Node {
        dim: 0,
        split: 0.0,
        left: LEAF,
        right: LEAF,
        size,
    });
    let base = tree.boxes.len();
    tree.boxes.resize(base + 2 * dims, 0.0);
    for d in 0..dims {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in idx.iter().map(|&i| &pool[i as usize]) {
            let v = p[d];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        tree.boxes[base + d] = lo;
        tree.boxes[base + dims + d] = hi;
    }
    if idx.len() <= 1 || depth >= max_depth {
        return me;
    }
    // Pick a random dimension with spread (try each dimension at most once, starting randomly).
    let start = rng.below(dims);
    let mut chosen = None;
    for k in 0..dims {
        let d = (start + k) % dims;
        let lo = tree.boxes[base + d];
        let hi = tree.boxes[base + dims + d];
        if hi > lo {
            chosen = Some((d, lo, hi));
            break;
        }
    }
    let Some((d, lo, hi)) = chosen else {
        return me;
    };
    let split = lo + rng.next_f64() * (hi - lo);
    let split = if split <= lo { (lo + hi) / 2.0 } else { split };
    // Partition: values < split to the front.
    let mut mid = 0;
    for k in 0..idx.len() {
        if pool[idx[k] as usize][d] < split {
            idx.swap(k, mid);
            mid += 1;
        }
    }
    let (l, r) = idx.split_at_mut(mid);
    let left = build(tree, pool, l, depth + 1, max_depth, rng, dims);
    let right = build(tree, pool, r, depth + 1, max_depth, rng, dims);
    let node = &mut tree.nodes[me as usize];
    #[allow(clippy::cast_possible_truncation)]
    {
        node.dim = d as u32;
    }
    node.split = split;
    node.left = left;
    node.right = right;
    me
}

impl Default for IsolationForest {
    fn default() -> Self {
        Self::new(ForestParams::default())
    }
}

impl Detector for IsolationForest {
    fn name(&self) -> &'static str {
        "forest"
    }

    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if self.recent.len() == self.p.shingle {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        if self.recent.len() < self.p.shingle {
            return 0.0;
        }
        self.point.clear();
        self.point.extend(self.recent.iter().copied());
        let score = if self.trees.is_empty() {
            0.0
        } else {
            let total: f64 = self
                .trees
                .iter()
                .map(|t| self.path_len(t, &self.point))
                .sum();
            #[allow(clippy::cast_precision_loss)]
            let mean = total / self.trees.len() as f64;
            let c = c_factor(self.fitted_n).max(1e-9);
            let s = (-mean / c).exp2();
            clamp01(2.0 * s - 1.0)
        };
        let mut slot = if self.pool.len() == self.p.pool {
            self.pool.pop_front().unwrap_or_default()
        } else {
            Vec::with_capacity(self.p.shingle)
        };
        slot.clear();
        slot.extend_from_slice(&self.point);
        self.pool.push_back(slot);
        self.since_fit += 1;
        let ready = self.pool.len() >= self.p.subsample;
        if ready && (self.trees.is_empty() || self.since_fit >= self.p.refit_every) {
            self.fit();
        }
        score
    }
}
