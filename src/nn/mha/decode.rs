//! Incremental decoding: a key/value cache of the rows seen so far and one step of attention
//! for one new row per sequence. Under a local window the cache indexes its rows by coupled
//! position, so a step looks up the few positions its query can see instead of scanning every
//! row; the softmax adds in the lanes a full row would use, so both ways give the same bits.

use super::*;
use std::collections::HashMap;

/// Keys and values of the rows seen so far, for incremental decoding of `N` sequences.
#[derive(Clone, Debug)]
pub struct KvCache<R> {
    n: usize,
    cap: usize,
    /// Rows filled so far (the next row's index).
    pub len: usize,
    /// `[N, H, cap, Dh]` each: one head's keys of one sequence are contiguous.
    k: Vec<R>,
    v: Vec<R>,
    /// `[N, cap]`.
    pos: Vec<u32>,
    /// Per sequence, the rows at each coupled position, in order: under a local window a
    /// decoding step looks up the few positions its query can see instead of scanning every
    /// row ([`RelSelfAttention::step`]).
    rows_at: Vec<HashMap<u32, Vec<u32>>>,
    /// Per sequence, whether any row holds a two-level position.
    any_level: Vec<bool>,
}

impl<R: Real> KvCache<R> {
    /// Room for `cap` rows of `n` sequences of width `dim` (any split into heads).
    pub fn new(n: usize, cap: usize, dim: usize) -> KvCache<R> {
        KvCache {
            n,
            cap,
            len: 0,
            k: vec![R::ZERO; n * cap * dim],
            v: vec![R::ZERO; n * cap * dim],
            pos: vec![0; n * cap],
            rows_at: vec![HashMap::new(); n],
            any_level: vec![false; n],
        }
    }

    /// The rows of sequence `b` (up to `len`) that a query at `pq` can see under window `w`,
    /// ascending, into `out`; `false` when they cannot be looked up by position (the query
    /// lacks a level or a digit, or a one-level query meets two-level keys): then the caller
    /// scans every row.
    pub(super) fn visible_rows(&self, b: usize, w: u32, pq: u32, out: &mut Vec<u32>) -> bool {
        out.clear();
        let map = &self.rows_at[b];
        let mut take = |p: u32| {
            if let Some(rows) = map.get(&p) {
                out.extend_from_slice(rows);
            }
        };
        take(NO_POSITION);
        if pq == NO_POSITION {
            return false;
        }
        let near = |d: u32| d.saturating_sub(w)..=d.saturating_add(w);
        if pq & LEVEL_FLAG == 0 {
            if self.any_level[b] {
                return false;
            }
            near(pq).filter(|&d| d < LEVEL_FLAG).for_each(&mut take);
        } else {
            let (lq, dq) = ((pq >> 16) & NO_LEVEL, pq & 0xFFFF);
            if lq == NO_LEVEL || dq == NO_DIGIT {
                return false;
            }
            // Keys by (level, digit) near the query's, with no level, or with no digit; and
            // one-level keys by digit.
            let levels = lq.saturating_sub(LEVEL_WINDOW)..=(lq + LEVEL_WINDOW).min(NO_LEVEL - 1);
            for l in levels.chain([NO_LEVEL]) {
                for d in near(dq).filter(|&d| d < NO_DIGIT) {
                    take(level_position(l, d));
                }
                if l != NO_LEVEL {
                    take(level_position(l, NO_DIGIT));
                }
            }
            near(dq).chain([NO_DIGIT]).for_each(&mut take);
        }
        out.sort_unstable();
        out.dedup();
        true
    }
}

/// [`softmax_in_place`] of a row of `t` scores of which only those at the ascending indices
/// `rows` are finite (the others masked, so their weights are exactly 0), computed on those
/// alone: `s[k]` is the score of row `rows[k]`. Every weight has the bits the full row's
/// would, for the sum is accumulated in the lanes the full row's would use (masked weights
/// add exact zeros there).
#[inline(always)]
fn softmax_sparse<R: Real>(s: &mut [R], rows: &[u32], t: usize) {
    let mut m = s[0];
    for &v in s.iter() {
        if v > m {
            m = v;
        }
    }
    for v in s.iter_mut() {
        *v = (*v - m).exp_fast();
    }
    let chunked = t / 8 * 8;
    let mut acc = [R::ZERO; 8];
    let mut sum = R::ZERO;
    for (&v, &j) in s.iter().zip(rows) {
        let j = j as usize;
        if j < chunked {
            acc[j % 8] += v;
        } else {
            sum += v;
        }
    }
    sum += lanes_sum(&acc);
    let inv = R::ONE / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

impl RelSelfAttention {
    /// One decoding step: the new rows `h [N, D]` (normed input) at coupled positions
    /// `pos [N]` join the cache, and `out [N, D]` (overwritten) is their attention output.
    ///
    /// Under a local window each query's visible rows are looked up by position, so a step
    /// costs what the window holds rather than the sequence's length; the weights and outputs
    /// have the bits of a scan over every row (its twin, tested against it).
    pub fn step<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        pos: &[u32],
        kv: &mut KvCache<R>,
        c: &mut MhaCache<R>,
        out: &mut [R],
    ) {
        self.step_with(p, h, pos, kv, c, out, true)
    }

    /// [`Self::step`], looking visible rows up by position (`indexed`) or scanning every row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_with<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        pos: &[u32],
        kv: &mut KvCache<R>,
        c: &mut MhaCache<R>,
        out: &mut [R],
        indexed: bool,
    ) {
        let (d, nh, dh, n) = (self.dim, self.heads, self.head_dim(), kv.n);
        let i = kv.len;
        assert!(i < kv.cap, "key/value cache full ({} rows)", kv.cap);
        grow(&mut c.qkv, n * 3 * d);
        grow(&mut c.y, n * d);
        grow(&mut c.scores, i + 1);
        self.qkv_rows(p, h, n, &mut c.qkv);
        let cap = kv.cap;
        for (b, &pb) in pos[..n].iter().enumerate() {
            let row = &c.qkv[b * 3 * d..(b + 1) * 3 * d];
            for hd in 0..nh {
                let at = ((b * nh + hd) * cap + i) * dh;
                kv.k[at..at + dh].copy_from_slice(&row[d + hd * dh..d + (hd + 1) * dh]);
                kv.v[at..at + dh].copy_from_slice(&row[2 * d + hd * dh..2 * d + (hd + 1) * dh]);
            }
            kv.pos[b * cap + i] = pb;
            if self.window.is_some() {
                kv.rows_at[b].entry(pb).or_default().push(i as u32);
                kv.any_level[b] |= pb != NO_POSITION && pb & LEVEL_FLAG != 0;
            }
        }
        kv.len += 1;
        let inv = R::from_f64(1.0 / (dh as f64).sqrt());
        let (bias, cs) = (self.bias.of(p), self.c.of(p));
        let mut rows = std::mem::take(&mut c.seen_rows);
        for b in 0..n {
            let ps = &kv.pos[b * cap..b * cap + i + 1];
            let indexed = match self.window {
                Some(w) if indexed => kv.visible_rows(b, w, pos[b], &mut rows),
                _ => false,
            };
            debug_assert!(
                !indexed
                    || rows
                        .iter()
                        .all(|&j| sees(self.window, pos[b], ps[j as usize]))
            );
            let ln_i = if indexed {
                R::from_f64((rows.len() as f64).ln())
            } else {
                ln_keys::<R>(self.window, ps, i)
            };
            for hd in 0..nh {
                let base = (b * nh + hd) * cap * dh;
                let ks = &kv.k[base..base + (i + 1) * dh];
                let vs = &kv.v[base..base + (i + 1) * dh];
                let q = &c.qkv[b * 3 * d + hd * dh..b * 3 * d + (hd + 1) * dh];
                let hb = &bias[hd * BUCKETS..(hd + 1) * BUCKETS];
                let lam = cs[hd] * ln_i;
                let y = &mut c.y[b * d + hd * dh..b * d + (hd + 1) * dh];
                y.fill(R::ZERO);
                let score = |j: usize| {
                    let pj = ps[j];
                    (dot(q, &ks[j * dh..(j + 1) * dh]) * inv + hb[bucket(pos[b], pj)]) * lam
                };
                if indexed {
                    let s = &mut c.scores[..rows.len()];
                    for (sj, &j) in s.iter_mut().zip(&rows) {
                        *sj = score(j as usize);
                    }
                    softmax_sparse(s, &rows, i + 1);
                    for (&sj, &j) in s.iter().zip(&rows) {
                        if sj != R::ZERO {
                            let j = j as usize;
                            axpy(sj, &vs[j * dh..(j + 1) * dh], y);
                        }
                    }
                    continue;
                }
                let s = &mut c.scores[..=i];
                for (j, (sj, &pj)) in s.iter_mut().zip(ps).enumerate() {
                    *sj = if sees(self.window, pos[b], pj) {
                        score(j)
                    } else {
                        masked()
                    };
                }
                softmax_in_place(s);
                for (&sj, v) in s.iter().zip(vs.chunks_exact(dh)) {
                    if sj != R::ZERO {
                        axpy(sj, v, y);
                    }
                }
            }
        }
        c.seen_rows = rows;
        self.out_rows(p, &c.y, n, out);
    }
}
