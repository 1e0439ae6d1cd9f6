//! Multi-head causal self-attention with a learned relative bias over coupled positions and
//! an optional local window.
//!
//! A kernel file, longer than most: the blocked forward and its backward share one tiling of
//! queries and keys, which splitting them would copy.
//!
//! The fast forward and backward (blocked, local-window) are here; the key/value cache and the
//! decoding step in `mha/decode.rs`; the reference twins `forward_ref` and `backward_ref` in
//! `mha/reference.rs`, and the tests in `mha/tests.rs` hold each to its twin.
//! length-scaled logits: the one place a length-generalising transformer sees positions.
//!
//! Shapes: `N` sequences of `T` tokens, `D` model width, `H` heads of `Dh = D / H`; only the
//! queries of rows `q_from..T` are computed (`Tq = T - q_from`: the rows whose outputs are
//! scored), keys and values cover every row.
//!
//! ```text
//! [q | k | v] = h @ qkv^T                              h: [N*T, D], qkv.weight: [3D, D]
//! pre[i,j]    = q_i·k_j / sqrt(Dh) + bias[head, bucket(pos_i, pos_j)]      j <= i (causal)
//! s[i,j]      = pre[i,j] * c[head] * ln(i + 1)         i + 1 keys: Scalable-Softmax
//! a[i,·]      = softmax_j s[i,·];   y_i = Σ_j a[i,j] v_j
//! out         = y @ o^T                                o.weight: [D, D], out: [N*Tq, D]
//! ```
//! `bucket` is `clip(pos_k - pos_q, -2, 2) + 2` (0..=4), and 5 when either token has no coupled
//! position (`NO_POSITION`: BOS, EOS). Nothing depends on absolute positions except the
//! `ln(i + 1)` factor, which keeps the softmax as sharp over 3,000 keys as over 60 (`c` starts at
//! `1 / ln 32`, a factor near one at training lengths).
//!
//! With a local window `W` ([`RelSelfAttention::window`]), a query sees only keys whose coupled
//! position is within `W` of its own (and tokens without one), the others get weight exactly 0,
//! and `ln(i + 1)` becomes `ln(keys it sees)`: then nothing a query attends to grows with the
//! sequence, which is what lets a model trained on 20 digits answer 1000.
//!
//! Backward, per query row: `da_j = dy_i·v_j`, `ds_j = a_j (da_j - Σ_j a_j da_j)`,
//! `dpre_j = ds_j c ln(i+1)`, `dc += Σ_j ds_j pre_j ln(i+1)`, `dbias[bucket] += dpre_j`,
//! `dq_i += dpre_j k_j / sqrt(Dh)`, `dk_j += dpre_j q_i / sqrt(Dh)`, `dv_j += a_j dy_i`.
//!
//! [`RelSelfAttention::step`] is the incremental form for decoding: one new row per sequence
//! against a key/value cache; a test checks it against the full forward pass.

use super::ffn::grow;
use super::gemm::{gemm, gemm_strided, Mat, Op};
use super::params::{standard_normal, ParamLayout, ParamRef};
use super::Real;
use rand::Rng;

/// Relative-position buckets: differences -2..=2, then "no position".
pub const BUCKETS: usize = 6;
/// The bucket of pairs involving a token without a coupled position.
pub const SPECIAL_BUCKET: usize = 5;
/// The coupled position of tokens that have none (BOS, EOS).
pub const NO_POSITION: u32 = u32::MAX;

/// Marks a two-level coupled position ([`level_position`]): bits 16..30 hold a level (an
/// operand or a scratchpad line), bits 0..16 the digit position. One-level positions are below
/// this bit and keep their meaning unchanged.
pub const LEVEL_FLAG: u32 = 1 << 30;
/// The digit field of a two-level position that has none: the token (a multiplier digit) is
/// seen from every digit position of the levels near its own, in the special bucket.
pub const NO_DIGIT: u32 = 0xFFFF;
/// The level field of a two-level position that has none: the token (a multiplicand digit) is
/// seen from every level, by digit position.
pub const NO_LEVEL: u32 = 0x3FFF;
/// Two-level positions see each other only when their levels differ by at most this (under a
/// local window).
pub const LEVEL_WINDOW: u32 = 1;

/// A two-level coupled position: `level` (below [`NO_LEVEL`]) and `digit` (below
/// [`NO_DIGIT`]), or either of those markers.
pub fn level_position(level: u32, digit: u32) -> u32 {
    assert!(
        level <= NO_LEVEL && digit <= NO_DIGIT,
        "level {level}, digit {digit}"
    );
    LEVEL_FLAG | (level << 16) | digit
}

/// The digit position of `p` (`p` itself for a one-level position).
#[inline(always)]
fn digit_of(p: u32) -> u32 {
    if p & LEVEL_FLAG != 0 {
        p & 0xFFFF
    } else {
        p
    }
}

/// Whether two positions are both two-level and their levels further apart than
/// [`LEVEL_WINDOW`].
#[inline(always)]
fn levels_apart(pq: u32, pk: u32) -> bool {
    if pq & pk & LEVEL_FLAG == 0 {
        return false;
    }
    let (lq, lk) = ((pq >> 16) & NO_LEVEL, (pk >> 16) & NO_LEVEL);
    lq != NO_LEVEL && lk != NO_LEVEL && lq.abs_diff(lk) > LEVEL_WINDOW
}

/// The bias bucket of query position `pq` and key position `pk`: their digit positions'
/// difference, clipped; the special bucket when either has no position or no digit position.
#[inline(always)]
pub fn bucket(pq: u32, pk: u32) -> usize {
    if pq == NO_POSITION || pk == NO_POSITION {
        SPECIAL_BUCKET
    } else {
        let (dq, dk) = (digit_of(pq), digit_of(pk));
        if (pq | pk) & LEVEL_FLAG != 0 && (dq == NO_DIGIT || dk == NO_DIGIT) {
            return SPECIAL_BUCKET;
        }
        ((dk as i64 - dq as i64).clamp(-2, 2) + 2) as usize
    }
}

/// Whether a query at coupled position `pq` sees a key at `pk` under a local `window`: always
/// without one, and always when either has no coupled position; else when their digit
/// positions are within `w` (or either has none) and, for two two-level positions, their
/// levels within [`LEVEL_WINDOW`] (or either has none).
#[inline(always)]
pub fn sees(window: Option<u32>, pq: u32, pk: u32) -> bool {
    match window {
        None => true,
        Some(w) => {
            if pq == NO_POSITION || pk == NO_POSITION {
                return true;
            }
            if (pq | pk) & LEVEL_FLAG == 0 {
                return pq.abs_diff(pk) <= w;
            }
            let (dq, dk) = (digit_of(pq), digit_of(pk));
            !levels_apart(pq, pk) && (dq == NO_DIGIT || dk == NO_DIGIT || dq.abs_diff(dk) <= w)
        }
    }
}

/// `ln` of the number of keys row `i` sees (the Scalable-Softmax factor without `c`).
#[inline(always)]
fn ln_keys<R: Real>(window: Option<u32>, ps: &[u32], i: usize) -> R {
    let keys = match window {
        None => i + 1,
        Some(_) => ps[..=i]
            .iter()
            .filter(|&&pj| sees(window, ps[i], pj))
            .count(),
    };
    R::from_f64((keys as f64).ln())
}

/// [`pair_kinds`] codes after the buckets: a key outside the window, a key after the query.
const MASKED: u8 = BUCKETS as u8;
const FUTURE: u8 = BUCKETS as u8 + 1;

/// For each query row `q_from + r` and key `j` of one sequence, `kinds[r * T + j]`: the bias
/// bucket, [`MASKED`] or [`FUTURE`] (shared by the heads, kept for backward).
fn pair_kinds(window: Option<u32>, ps: &[u32], q_from: usize, kinds: &mut [u8]) {
    let t = ps.len();
    for (r, row) in kinds.chunks_exact_mut(t).enumerate() {
        let i = q_from + r;
        for (j, k) in row.iter_mut().enumerate() {
            *k = if j > i {
                FUTURE
            } else if !sees(window, ps[i], ps[j]) {
                MASKED
            } else {
                bucket(ps[i], ps[j]) as u8
            };
        }
    }
}

/// A logit no softmax weight survives (for keys outside the window).
fn masked<R: Real>() -> R {
    R::from_f64(-1e30)
}

/// The attention layer's handles.
#[derive(Clone, Debug)]
pub struct RelSelfAttention {
    pub dim: usize,
    pub heads: usize,
    pub qkv: ParamRef,
    pub o: ParamRef,
    pub bias: ParamRef,
    pub c: ParamRef,
    /// Local attention over coupled positions: a query sees only keys within this distance
    /// (and tokens without a position), and its length scale counts only those keys, so what
    /// it attends to does not grow with the sequence. `None`: every earlier key.
    pub window: Option<u32>,
}

/// Activations kept for backward, and scratch; grows on demand.
#[derive(Clone, Debug, Default)]
pub struct MhaCache<R> {
    /// `[N*T, 3D]`.
    qkv: Vec<R>,
    /// `[N, H, Tq, T]` pre-scale logits (zero above the diagonal).
    pre: Vec<R>,
    /// `[N, H, Tq, T]` attention weights (zero above the diagonal).
    pub probs: Vec<R>,
    /// `[N*Tq, D]` heads' outputs before the output projection.
    y: Vec<R>,
    /// `[N*Tq]` `ln` of the keys each query row sees (shared by the heads).
    ln_k: Vec<R>,
    /// `[N, Tq, T]` each pair's bucket or mask ([`pair_kinds`]).
    bk: Vec<u8>,
    /// `[Tq, T]` one head's score gradients (backward scratch).
    dp: Vec<R>,
    /// `[classes, 3D]` per-class projections ([`RelSelfAttention::project_classes`]) and
    /// their summed gradients.
    class_qkv: Vec<R>,
    dclass_qkv: Vec<R>,
    /// Rows of the last projection (`attend` checks it matches).
    rows: usize,
    dy: Vec<R>,
    dqkv: Vec<R>,
    /// Decoding scratch: one row's scores, and the rows a query sees.
    scores: Vec<R>,
    seen_rows: Vec<u32>,
}

/// Dot product with eight independent partial sums, so the loop vectorises (a single running
/// sum is a chain of dependent adds that the compiler may not reorder).
#[inline(always)]
fn dot<R: Real>(a: &[R], b: &[R]) -> R {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [R::ZERO; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = lanes_sum(&acc);
    for (x, y) in ar.iter().zip(br) {
        s += *x * *y;
    }
    s
}

/// The eight running sums of [`dot`] and [`softmax_in_place`] added pairwise.
#[inline(always)]
fn lanes_sum<R: Real>(acc: &[R; 8]) -> R {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn axpy<R: Real>(alpha: R, x: &[R], y: &mut [R]) {
    for (d, s) in y.iter_mut().zip(x) {
        *d += alpha * *s;
    }
}

/// Softmax of `s` in place (max-subtracted), with the fast exp; the exponentials are one
/// vectorisable pass, their sum eight running sums.
#[inline(always)]
fn softmax_in_place<R: Real>(s: &mut [R]) {
    let mut m = s[0];
    for &v in s.iter() {
        if v > m {
            m = v;
        }
    }
    for v in s.iter_mut() {
        *v = (*v - m).exp_fast();
    }
    let mut acc = [R::ZERO; 8];
    let chunks = s.chunks_exact(8);
    let mut sum = chunks.remainder().iter().fold(R::ZERO, |a, &v| a + v);
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    sum += lanes_sum(&acc);
    let inv = R::ONE / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

simd_dispatch!(scores_to_probs, scores_to_probs_avx512, scores_to_probs_avx2, scores_to_probs_generic, (pre: &mut [R], probs: &mut [R], kinds: &[u8], hb: &[R], ln_k: &[R], c_h: R, t: usize, q_from: usize));
simd_dispatch!(probs_backward, probs_backward_avx512, probs_backward_avx2, probs_backward_generic, (dp: &mut [R], probs: &[R], pre: &[R], kinds: &[u8], ln_k: &[R], c_h: R, t: usize, q_from: usize, dbias: &mut [R; BUCKETS], dc: &mut R));

/// One head of one sequence, forward: `pre [Tq, T]` holds `Q K^T / sqrt(dh)` and becomes the
/// biased scores (0 where masked or in the future); `probs` gets the softmax of the scores
/// times `c_h ln(keys)` per row, over the row's keys up to its own position.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores_to_probs_generic<R: Real>(
    pre: &mut [R],
    probs: &mut [R],
    kinds: &[u8],
    hb: &[R],
    ln_k: &[R],
    c_h: R,
    t: usize,
    q_from: usize,
) {
    for (r, (((pre, pr), kinds), &ln)) in pre
        .chunks_exact_mut(t)
        .zip(probs.chunks_exact_mut(t))
        .zip(kinds.chunks_exact(t))
        .zip(ln_k)
        .enumerate()
    {
        let lam = c_h * ln;
        for ((x, y), &kind) in pre.iter_mut().zip(pr.iter_mut()).zip(kinds) {
            (*x, *y) = match kind {
                FUTURE => (R::ZERO, R::ZERO),
                MASKED => (R::ZERO, masked()),
                k => {
                    let v = *x + hb[k as usize];
                    (v, v * lam)
                }
            };
        }
        softmax_in_place(&mut pr[..=q_from + r]);
    }
}

/// One head of one sequence, backward through [`scores_to_probs_generic`]: `dp [Tq, T]` holds
/// the gradient of the probabilities and becomes that of `Q K^T / sqrt(dh)`; the bias and
/// `c_h` gradients are added into `dbias` and `dc`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn probs_backward_generic<R: Real>(
    dp: &mut [R],
    probs: &[R],
    pre: &[R],
    kinds: &[u8],
    ln_k: &[R],
    c_h: R,
    t: usize,
    q_from: usize,
    dbias: &mut [R; BUCKETS],
    dc: &mut R,
) {
    for (r, (((da, pr), pre), (kinds, &ln_i))) in dp
        .chunks_exact_mut(t)
        .zip(probs.chunks_exact(t))
        .zip(pre.chunks_exact(t))
        .zip(kinds.chunks_exact(t).zip(ln_k))
        .enumerate()
    {
        let i = q_from + r;
        let lam = c_h * ln_i;
        let mut sum = R::ZERO;
        for (&a, &g) in pr[..=i].iter().zip(&da[..=i]) {
            sum += a * g;
        }
        let mut dlam = R::ZERO;
        for (((g, &a), &x), &kind) in da.iter_mut().zip(pr).zip(pre).zip(kinds) {
            if kind >= MASKED {
                *g = R::ZERO;
                continue;
            }
            let ds = a * (*g - sum);
            dlam += ds * x;
            *g = ds * lam;
            dbias[kind as usize] += *g;
        }
        *dc += dlam * ln_i;
    }
}

impl RelSelfAttention {
    /// Registers `{prefix}.qkv.weight` `[3D, D]`, `{prefix}.o.weight` `[D, D]`,
    /// `{prefix}.bias` `[H, 6]` and `{prefix}.c` `[H]` (the names of the PyTorch reference).
    pub fn new(layout: &mut ParamLayout, prefix: &str, dim: usize, heads: usize) -> Self {
        assert!(
            heads > 0 && dim.is_multiple_of(heads),
            "dim must divide into heads"
        );
        RelSelfAttention {
            dim,
            heads,
            qkv: layout.add(format!("{prefix}.qkv.weight"), &[3 * dim, dim]),
            o: layout.add(format!("{prefix}.o.weight"), &[dim, dim]),
            bias: layout.add(format!("{prefix}.bias"), &[heads, BUCKETS]),
            c: layout.add(format!("{prefix}.c"), &[heads]),
            window: None,
        }
    }

    /// Projections normal with standard deviation `std`, biases zero, `c = 1 / ln 32`.
    pub fn init<R: Real>(&self, flat: &mut [R], rng: &mut impl Rng, std: f64) {
        for r in [self.qkv, self.o] {
            for v in r.of_mut(flat) {
                *v = R::from_f64(std * standard_normal(rng));
            }
        }
        self.bias.of_mut(flat).fill(R::ZERO);
        self.c.of_mut(flat).fill(R::from_f64(1.0 / 32f64.ln()));
    }

    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// `out [rows, 3D] = h [rows, D] @ qkv^T`.
    fn qkv_rows<R: Real>(&self, p: &[R], h: &[R], rows: usize, out: &mut [R]) {
        let d = self.dim;
        gemm(
            rows,
            d,
            3 * d,
            R::ONE,
            h,
            Op::N,
            self.qkv.of(p),
            Op::T,
            R::ZERO,
            out,
        );
    }

    /// `out [rows, D] = y [rows, D] @ o^T`: the heads' outputs projected.
    fn out_rows<R: Real>(&self, p: &[R], y: &[R], rows: usize, out: &mut [R]) {
        let d = self.dim;
        gemm(
            rows,
            d,
            d,
            R::ONE,
            y,
            Op::N,
            self.o.of(p),
            Op::T,
            R::ZERO,
            out,
        );
    }

    /// Backward through [`Self::out_rows`]: `o.weight`'s gradient into `grad`, the heads'
    /// output gradient into the cache's `dy`.
    fn out_backward<R: Real>(
        &self,
        p: &[R],
        dout: &[R],
        rows: usize,
        c: &mut MhaCache<R>,
        grad: &mut [R],
    ) {
        let d = self.dim;
        grow(&mut c.dy, rows * d);
        gemm(
            d,
            rows,
            d,
            R::ONE,
            dout,
            Op::T,
            &c.y,
            Op::N,
            R::ONE,
            self.o.of_mut(grad),
        );
        gemm(
            rows,
            d,
            d,
            R::ONE,
            dout,
            Op::N,
            self.o.of(p),
            Op::N,
            R::ZERO,
            &mut c.dy,
        );
    }

    /// Backward through [`Self::qkv_rows`] from `dqkv [rows, 3D]`: `qkv.weight`'s gradient into
    /// `grad`, and `dh = dqkv @ qkv + beta dh`.
    #[allow(clippy::too_many_arguments)]
    fn qkv_backward<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        dqkv: &[R],
        rows: usize,
        beta: R,
        grad: &mut [R],
        dh: &mut [R],
    ) {
        let (d, w3) = (self.dim, 3 * self.dim);
        gemm(
            w3,
            rows,
            d,
            R::ONE,
            dqkv,
            Op::T,
            h,
            Op::N,
            R::ONE,
            self.qkv.of_mut(grad),
        );
        gemm(
            rows,
            w3,
            d,
            R::ONE,
            dqkv,
            Op::N,
            self.qkv.of(p),
            Op::N,
            beta,
            dh,
        );
    }

    /// `out [N*Tq, D]` (overwritten) from the normed input `h [N*T, D]` and coupled positions
    /// `pos [N*T]`.
    ///
    /// Per sequence and head, the scores, the weighted values and (in backward) their gradients
    /// are matrix products over strided views of the `[T, 3D]` projection: `S = Q K^T`,
    /// `Y = P V`. Entries above the diagonal and outside the window are computed and then
    /// dropped: at training lengths that costs less than one dot product per pair. (With a
    /// window, the reference twin computes only the visible pairs; at long lengths that is
    /// less work, and decoding, [`Self::step`], works that way.)
    #[allow(clippy::too_many_arguments)]
    pub fn forward<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        pos: &[u32],
        n: usize,
        t: usize,
        q_from: usize,
        c: &mut MhaCache<R>,
        out: &mut [R],
    ) {
        self.project(p, h, n * t, c);
        self.attend(p, pos, n, t, q_from, c, out);
    }

    /// `[q | k | v]` of `rows` normed input rows `h [rows, D]` into the cache.
    pub fn project<R: Real>(&self, p: &[R], h: &[R], rows: usize, c: &mut MhaCache<R>) {
        grow(&mut c.qkv, rows * 3 * self.dim);
        c.rows = rows;
        self.qkv_rows(p, h, rows, &mut c.qkv);
    }

    /// [`Self::project`] for rows that take one of a few distinct values: `h [classes, D]`
    /// holds the distinct normed inputs and row `r` is `h[class[r]]`. The projection is
    /// computed once per class and copied to the rows (a transformer's first block, whose
    /// input depends only on the token and its segment).
    pub fn project_classes<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        classes: usize,
        class: &[u16],
        c: &mut MhaCache<R>,
    ) {
        let w3 = 3 * self.dim;
        grow(&mut c.class_qkv, classes * w3);
        self.qkv_rows(p, h, classes, &mut c.class_qkv);
        grow(&mut c.qkv, class.len() * w3);
        c.rows = class.len();
        for (row, &k) in c.qkv.chunks_exact_mut(w3).zip(class) {
            let k = k as usize;
            row.copy_from_slice(&c.class_qkv[k * w3..(k + 1) * w3]);
        }
    }

    /// The attention proper, after [`Self::project`] or [`Self::project_classes`]: `out
    /// [N*Tq, D]` (overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn attend<R: Real>(
        &self,
        p: &[R],
        pos: &[u32],
        n: usize,
        t: usize,
        q_from: usize,
        c: &mut MhaCache<R>,
        out: &mut [R],
    ) {
        let (d, nh, dh) = (self.dim, self.heads, self.head_dim());
        let tq = t - q_from;
        assert_eq!(c.rows, n * t, "attend after a projection of other rows");
        grow(&mut c.pre, n * nh * tq * t);
        grow(&mut c.probs, n * nh * tq * t);
        grow(&mut c.y, n * tq * d);
        grow(&mut c.ln_k, n * tq);
        if c.bk.len() < n * tq * t {
            c.bk.resize(n * tq * t, 0);
        }
        let inv = R::from_f64(1.0 / (dh as f64).sqrt());
        let (bias, cs) = (self.bias.of(p), self.c.of(p));
        let w3 = 3 * d;
        for b in 0..n {
            let qkv = &c.qkv[b * t * w3..(b + 1) * t * w3];
            let ps = &pos[b * t..(b + 1) * t];
            let bk = &mut c.bk[b * tq * t..(b + 1) * tq * t];
            pair_kinds(self.window, ps, q_from, bk);
            // The keys a row sees are its entries that are neither masked nor in the future.
            for (x, kinds) in c.ln_k[b * tq..(b + 1) * tq]
                .iter_mut()
                .zip(bk.chunks_exact(t))
            {
                let keys = kinds.iter().filter(|&&k| k < MASKED).count();
                *x = R::from_f64((keys as f64).ln());
            }
            for hd in 0..nh {
                let blk = (b * nh + hd) * tq * t;
                let pre = &mut c.pre[blk..blk + tq * t];
                let probs = &mut c.probs[blk..blk + tq * t];
                gemm_strided(
                    tq,
                    dh,
                    t,
                    inv,
                    Mat::rows(&qkv[q_from * w3 + hd * dh..], w3),
                    Mat::cols(&qkv[d + hd * dh..], w3),
                    R::ZERO,
                    pre,
                    t,
                );
                let hb = &bias[hd * BUCKETS..(hd + 1) * BUCKETS];
                let ln_k = &c.ln_k[b * tq..(b + 1) * tq];
                scores_to_probs(pre, probs, bk, hb, ln_k, cs[hd], t, q_from);
                gemm_strided(
                    tq,
                    t,
                    dh,
                    R::ONE,
                    Mat::rows(probs, t),
                    Mat::rows(&qkv[2 * d + hd * dh..], w3),
                    R::ZERO,
                    &mut c.y[b * tq * d + hd * dh..],
                    d,
                );
            }
        }
        self.out_rows(p, &c.y, n * tq, out);
    }

    /// Adds parameter gradients into `grad` and `dh [N*T, D]` into `dh` (accumulates), given
    /// `dout [N*Tq, D]` and the cache of the matching `forward`.
    ///
    /// Per sequence and head: `dP = dY V^T`, the softmax and scale backward row by row, then
    /// `dQ = dPre K`, `dK = dPre^T Q` and `dV = P^T dY` as strided products.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        n: usize,
        t: usize,
        q_from: usize,
        c: &mut MhaCache<R>,
        dout: &[R],
        grad: &mut [R],
        dh: &mut [R],
    ) {
        self.backward_attend(p, n, t, q_from, c, dout, grad);
        self.backward_project(p, h, n * t, c, grad, dh);
    }

    /// The gradient of [`Self::project`]: `qkv.weight`'s into `grad`, the input's added into
    /// `dh [rows, D]`, from the projection gradient [`Self::backward_attend`] left.
    pub fn backward_project<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        rows: usize,
        c: &MhaCache<R>,
        grad: &mut [R],
        dh: &mut [R],
    ) {
        self.qkv_backward(p, h, &c.dqkv, rows, R::ONE, grad, dh);
    }

    /// The gradient of [`Self::project_classes`]: the rows' projection gradients are summed
    /// per class, then multiplied once per class; `dh [classes, D]` is overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_project_classes<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        classes: usize,
        class: &[u16],
        c: &mut MhaCache<R>,
        grad: &mut [R],
        dh: &mut [R],
    ) {
        let w3 = 3 * self.dim;
        grow(&mut c.dclass_qkv, classes * w3);
        let sums = &mut c.dclass_qkv[..classes * w3];
        sums.fill(R::ZERO);
        for (row, &k) in c.dqkv.chunks_exact(w3).zip(class) {
            let k = k as usize;
            for (s, v) in sums[k * w3..(k + 1) * w3].iter_mut().zip(row) {
                *s += *v;
            }
        }
        self.qkv_backward(p, h, sums, classes, R::ZERO, grad, dh);
    }

    /// Backward through [`Self::attend`]: the output projection's and the attention's own
    /// parameter gradients into `grad`, and the gradient of `[q | k | v]` into the cache.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_attend<R: Real>(
        &self,
        p: &[R],
        n: usize,
        t: usize,
        q_from: usize,
        c: &mut MhaCache<R>,
        dout: &[R],
        grad: &mut [R],
    ) {
        let (d, nh, dhd) = (self.dim, self.heads, self.head_dim());
        let tq = t - q_from;
        grow(&mut c.dqkv, n * t * 3 * d);
        grow(&mut c.dp, tq * t);
        self.out_backward(p, dout, n * tq, c, grad);
        let inv = R::from_f64(1.0 / (dhd as f64).sqrt());
        let cs = self.c.of(p);
        let mut dbias = [R::ZERO; BUCKETS];
        let w3 = 3 * d;
        for b in 0..n {
            let qkv = &c.qkv[b * t * w3..(b + 1) * t * w3];
            let dqkv = &mut c.dqkv[b * t * w3..(b + 1) * t * w3];
            // Rows before q_from asked nothing: their queries get no gradient. Every other
            // entry is written (not added to) by the products below.
            for row in dqkv.chunks_exact_mut(w3).take(q_from) {
                row[..d].fill(R::ZERO);
            }
            let bk = &c.bk[b * tq * t..(b + 1) * tq * t];
            let dy = &c.dy[b * tq * d..(b + 1) * tq * d];
            for (hd, &c_h) in cs.iter().enumerate().take(nh) {
                let blk = (b * nh + hd) * tq * t;
                let (pre, probs) = (&c.pre[blk..blk + tq * t], &c.probs[blk..blk + tq * t]);
                let (qo, ko, vo) = (hd * dhd, d + hd * dhd, 2 * d + hd * dhd);
                let dp = &mut c.dp[..tq * t];
                gemm_strided(
                    tq,
                    dhd,
                    t,
                    R::ONE,
                    Mat::rows(&dy[qo..], d),
                    Mat::cols(&qkv[vo..], w3),
                    R::ZERO,
                    dp,
                    t,
                );
                dbias.fill(R::ZERO);
                let mut dc = R::ZERO;
                let ln_k = &c.ln_k[b * tq..(b + 1) * tq];
                probs_backward(
                    dp, probs, pre, bk, ln_k, c_h, t, q_from, &mut dbias, &mut dc,
                );
                for (g, v) in self.bias.of_mut(grad)[hd * BUCKETS..(hd + 1) * BUCKETS]
                    .iter_mut()
                    .zip(&dbias)
                {
                    *g += *v;
                }
                self.c.of_mut(grad)[hd] += dc;
                let dp = &c.dp[..tq * t];
                gemm_strided(
                    tq,
                    t,
                    dhd,
                    inv,
                    Mat::rows(dp, t),
                    Mat::rows(&qkv[ko..], w3),
                    R::ZERO,
                    &mut dqkv[q_from * w3 + qo..],
                    w3,
                );
                gemm_strided(
                    t,
                    tq,
                    dhd,
                    inv,
                    Mat::cols(dp, t),
                    Mat::rows(&qkv[q_from * w3 + qo..], w3),
                    R::ZERO,
                    &mut dqkv[ko..],
                    w3,
                );
                gemm_strided(
                    t,
                    tq,
                    dhd,
                    R::ONE,
                    Mat::cols(probs, t),
                    Mat::rows(&dy[qo..], d),
                    R::ZERO,
                    &mut dqkv[vo..],
                    w3,
                );
            }
        }
    }
}

mod decode;
pub use decode::KvCache;
mod reference;
#[cfg(test)]
mod tests;
