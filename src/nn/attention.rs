//! Luong attention ("general" score, Luong et al. 2015) over the encoder's outputs.
//!
//! For each decoder output `h[t]` (`[T_out, B, H]`) and encoder outputs `e[s]` (`[T_in, B, E]`):
//!
//! ```text
//! q[t]     = h[t] @ W_a                    W_a: [H, E]        (attention.weight_a)
//! score    = q[t] · e[s]                   a[t] = softmax over s (masked positions excluded)
//! ctx[t]   = Σ_s a[t, s] e[s]
//! out[t]   = tanh([ctx[t]; h[t]] @ W_c^T + b_c)   W_c: [H, E + H]  (attention.weight_c)
//! ```
//!
//! Why Luong rather than Bahdanau: the score uses the decoder's current output, so the scores
//! of all steps of a teacher-forced (or repeat-vector) decoder come from whole-sequence GEMMs
//! after the recurrence, and the recurrent kernels stay as they are; Bahdanau's score uses the
//! previous state and an additive MLP inside the recurrence. For digit alignment (answer digit
//! j looks at operand digits j) the multiplicative score is enough.

use super::gemm::{gemm, Op};
use super::params::{glorot_uniform, ParamLayout, ParamRef};
use super::rnn::col_sum_add;
use super::Real;
use rand::Rng;

simd_dispatch!(add_bias_tanh, add_bias_tanh_avx512, add_bias_tanh_avx2, add_bias_tanh_generic, (out: &mut [R], bias: &[R]));

/// `out[r] = tanh(out[r] + bias)` for every row `r` of `out` (`[n, bias.len()]`).
#[inline(always)]
fn add_bias_tanh_generic<R: Real>(out: &mut [R], bias: &[R]) {
    for row in out.chunks_exact_mut(bias.len()) {
        for (v, &bb) in row.iter_mut().zip(bias) {
            *v = (*v + bb).tanh_fast();
        }
    }
}

/// The attention layer's handles and sizes.
#[derive(Clone, Debug)]
pub struct Attention {
    /// Decoder width H.
    pub hidden: usize,
    /// Encoder width E.
    pub enc: usize,
    pub w_a: ParamRef,
    pub w_c: ParamRef,
    pub b_c: ParamRef,
}

/// Activations kept for backward; grows on demand.
#[derive(Clone, Debug, Default)]
pub struct AttentionCache<R> {
    /// `[T_out, B, E]`.
    q: Vec<R>,
    /// `[T_out, B, T_in]` attention weights.
    pub weights: Vec<R>,
    /// `[T_out, B, E + H]`: context then decoder output.
    cat: Vec<R>,
    /// `[T_out, B, H]` outputs (tanh).
    pub out: Vec<R>,
    // Backward scratch.
    dz: Vec<R>,
    dcat: Vec<R>,
    dq: Vec<R>,
    da: Vec<R>,
}

fn grow<R: Real>(v: &mut Vec<R>, n: usize) {
    if v.len() < n {
        v.resize(n, R::ZERO);
    }
}

impl Attention {
    pub fn new(layout: &mut ParamLayout, hidden: usize, enc: usize) -> Attention {
        let w_a = layout.add("attention.weight_a", &[hidden, enc]);
        let w_c = layout.add("attention.weight_c", &[hidden, enc + hidden]);
        let b_c = layout.add("attention.bias_c", &[hidden]);
        Attention {
            hidden,
            enc,
            w_a,
            w_c,
            b_c,
        }
    }

    pub fn init<R: Real>(&self, flat: &mut [R], rng: &mut impl Rng) {
        glorot_uniform(rng, self.w_a.of_mut(flat), self.hidden, self.enc);
        glorot_uniform(
            rng,
            self.w_c.of_mut(flat),
            self.enc + self.hidden,
            self.hidden,
        );
        self.b_c.of_mut(flat).fill(R::ZERO);
    }

    /// Forward for `t_out` decoder steps over `t_in` encoder steps of `b` rows. `mask`
    /// (`[T_in, B]`, true = attend) excludes padding; `None` attends everywhere. The outputs are
    /// left in `cache.out` (`[T_out, B, H]`).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<R: Real>(
        &self,
        p: &[R],
        enc_out: &[R],
        dec_out: &[R],
        mask: Option<&[bool]>,
        b: usize,
        t_in: usize,
        t_out: usize,
        cache: &mut AttentionCache<R>,
    ) {
        let (h, e) = (self.hidden, self.enc);
        let n = t_out * b;
        grow(&mut cache.q, n * e);
        grow(&mut cache.weights, n * t_in);
        grow(&mut cache.cat, n * (e + h));
        grow(&mut cache.out, n * h);
        gemm(
            n,
            h,
            e,
            R::ONE,
            dec_out,
            Op::N,
            self.w_a.of(p),
            Op::N,
            R::ZERO,
            &mut cache.q,
        );
        for t in 0..t_out {
            for r in 0..b {
                let row = t * b + r;
                let q = &cache.q[row * e..(row + 1) * e];
                let a = &mut cache.weights[row * t_in..(row + 1) * t_in];
                let mut max = R::from_f64(f64::NEG_INFINITY);
                for s in 0..t_in {
                    if mask.is_some_and(|m| !m[s * b + r]) {
                        continue;
                    }
                    let k = &enc_out[(s * b + r) * e..(s * b + r + 1) * e];
                    let mut dot = R::ZERO;
                    for j in 0..e {
                        dot += q[j] * k[j];
                    }
                    a[s] = dot;
                    if dot > max {
                        max = dot;
                    }
                }
                let mut sum = R::ZERO;
                for s in 0..t_in {
                    if mask.is_some_and(|m| !m[s * b + r]) {
                        a[s] = R::ZERO;
                    } else {
                        a[s] = (a[s] - max).exp();
                        sum += a[s];
                    }
                }
                // A fully masked row (an empty question) attends to nothing: context 0.
                let inv = if sum > R::ZERO { R::ONE / sum } else { R::ZERO };
                let cat = &mut cache.cat[row * (e + h)..(row + 1) * (e + h)];
                cat[..e].fill(R::ZERO);
                for s in 0..t_in {
                    a[s] *= inv;
                    let w = a[s];
                    if w != R::ZERO {
                        let k = &enc_out[(s * b + r) * e..(s * b + r + 1) * e];
                        for j in 0..e {
                            cat[j] += w * k[j];
                        }
                    }
                }
                cat[e..].copy_from_slice(&dec_out[row * h..(row + 1) * h]);
            }
        }
        let out = &mut cache.out[..n * h];
        gemm(
            n,
            e + h,
            h,
            R::ONE,
            &cache.cat,
            Op::N,
            self.w_c.of(p),
            Op::T,
            R::ZERO,
            out,
        );
        add_bias_tanh(out, self.b_c.of(p));
    }

    /// Backward from `d_out` (`[T_out, B, H]`): adds parameter gradients into `grad`, the
    /// decoder-output gradient into `d_dec` and the encoder-output gradient into `d_enc` (both
    /// accumulated, not overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        p: &[R],
        enc_out: &[R],
        d_out: &[R],
        b: usize,
        t_in: usize,
        t_out: usize,
        cache: &mut AttentionCache<R>,
        grad: &mut [R],
        d_dec: &mut [R],
        d_enc: &mut [R],
    ) {
        let (h, e) = (self.hidden, self.enc);
        let n = t_out * b;
        grow(&mut cache.dz, n * h);
        grow(&mut cache.dcat, n * (e + h));
        grow(&mut cache.dq, n * e);
        grow(&mut cache.da, t_in);
        let dz = &mut cache.dz[..n * h];
        for ((d, &y), &g) in dz.iter_mut().zip(&cache.out[..n * h]).zip(&d_out[..n * h]) {
            *d = g * (R::ONE - y * y);
        }
        gemm(
            h,
            n,
            e + h,
            R::ONE,
            dz,
            Op::T,
            &cache.cat,
            Op::N,
            R::ONE,
            self.w_c.of_mut(grad),
        );
        col_sum_add(dz, h, self.b_c.of_mut(grad));
        gemm(
            n,
            h,
            e + h,
            R::ONE,
            dz,
            Op::N,
            self.w_c.of(p),
            Op::N,
            R::ZERO,
            &mut cache.dcat,
        );
        let AttentionCache {
            q: q_all,
            weights,
            dcat: dcat_all,
            dq: dq_all,
            da,
            ..
        } = cache;
        for t in 0..t_out {
            for r in 0..b {
                let row = t * b + r;
                let dcat = &dcat_all[row * (e + h)..(row + 1) * (e + h)];
                let (dctx, dh) = dcat.split_at(e);
                for (d, &g) in d_dec[row * h..(row + 1) * h].iter_mut().zip(dh) {
                    *d += g;
                }
                let a = &weights[row * t_in..(row + 1) * t_in];
                let q = &q_all[row * e..(row + 1) * e];
                // da[s] = dctx · e[s]; dscore = a ⊙ (da - Σ a da).
                let mut mean = R::ZERO;
                for s in 0..t_in {
                    if a[s] == R::ZERO {
                        continue;
                    }
                    let k = &enc_out[(s * b + r) * e..(s * b + r + 1) * e];
                    let mut dot = R::ZERO;
                    for j in 0..e {
                        dot += dctx[j] * k[j];
                    }
                    da[s] = dot;
                    mean += a[s] * dot;
                }
                let dq = &mut dq_all[row * e..(row + 1) * e];
                dq.fill(R::ZERO);
                for s in 0..t_in {
                    if a[s] == R::ZERO {
                        continue;
                    }
                    let ds = a[s] * (da[s] - mean);
                    let k = &enc_out[(s * b + r) * e..(s * b + r + 1) * e];
                    let dk = &mut d_enc[(s * b + r) * e..(s * b + r + 1) * e];
                    for j in 0..e {
                        dq[j] += ds * k[j];
                        dk[j] += a[s] * dctx[j] + ds * q[j];
                    }
                }
            }
        }
        // q = h @ W_a: dW_a += h^T dq (needs the decoder outputs: cat[e..]), dh += dq @ W_a^T.
        let dq = &cache.dq[..n * e];
        for row in 0..n {
            let hrow = &cache.cat[row * (e + h) + e..(row + 1) * (e + h)];
            let dqr = &dq[row * e..(row + 1) * e];
            let gw = self.w_a.of_mut(grad);
            for i in 0..h {
                let hv = hrow[i];
                if hv != R::ZERO {
                    for j in 0..e {
                        gw[i * e + j] += hv * dqr[j];
                    }
                }
            }
        }
        gemm(
            n,
            e,
            h,
            R::ONE,
            dq,
            Op::N,
            self.w_a.of(p),
            Op::T,
            R::ONE,
            d_dec,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::SeedableRng;

    #[test]
    fn attention_gradients_match_finite_differences() {
        let (h, e, b, t_in, t_out) = (3, 4, 2, 5, 3);
        let mut layout = ParamLayout::default();
        let att = Attention::new(&mut layout, h, e);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut p = vec![0.0f64; layout.total];
        att.init(&mut p, &mut rng);
        for v in att.b_c.of_mut(&mut p) {
            *v = rng.random_range(-0.5..0.5);
        }
        let mut rv =
            |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let enc = rv(t_in * b * e);
        let dec = rv(t_out * b * h);
        let w = rv(t_out * b * h);
        // Row 1 has its last two encoder steps masked (padding).
        let mask: Vec<bool> = (0..t_in * b).map(|i| !(i % b == 1 && i / b >= 3)).collect();
        for m in [None, Some(&mask[..])] {
            let loss = |pp: &[f64], en: &[f64], de: &[f64]| {
                let mut c = AttentionCache::default();
                att.forward(pp, en, de, m, b, t_in, t_out, &mut c);
                c.out[..t_out * b * h]
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            };
            let mut c = AttentionCache::default();
            att.forward(&p, &enc, &dec, m, b, t_in, t_out, &mut c);
            if m.is_some() {
                // Masked positions get no weight; each row's weights sum to 1.
                for row in 0..t_out * b {
                    let a = &c.weights[row * t_in..(row + 1) * t_in];
                    assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                    if row % b == 1 {
                        assert!(a[3] == 0.0 && a[4] == 0.0);
                    }
                }
            }
            let mut grad = vec![0.0; p.len()];
            let (mut dd, mut de) = (vec![0.0; dec.len()], vec![0.0; enc.len()]);
            att.backward(
                &p, &enc, &w, b, t_in, t_out, &mut c, &mut grad, &mut dd, &mut de,
            );
            let what = format!("attention, mask {}", m.is_some());
            let all = |n: usize| (0..n).collect::<Vec<_>>();
            gradcheck::check(
                &p,
                &grad,
                &all(p.len()),
                1e-6,
                |pp| loss(pp, &enc, &dec),
                &what,
            );
            gradcheck::check(
                &dec,
                &dd,
                &all(dec.len()),
                1e-6,
                |x| loss(&p, &enc, x),
                &what,
            );
            gradcheck::check(
                &enc,
                &de,
                &all(enc.len()),
                1e-6,
                |x| loss(&p, x, &dec),
                &what,
            );
        }
    }
}
