//! The reference twins of the attention's forward and backward passes: one dot product per
//! (query, key) pair, as the formulas in the module doc read.

use super::*;

impl RelSelfAttention {
    /// The reference twin of [`RelSelfAttention::forward`]: one dot product per (query, key)
    /// pair, as the formulas read.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_ref<R: Real>(
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
        let (d, nh, dh) = (self.dim, self.heads, self.head_dim());
        let tq = t - q_from;
        self.project(p, h, n * t, c);
        grow(&mut c.pre, n * nh * tq * t);
        grow(&mut c.probs, n * nh * tq * t);
        grow(&mut c.y, n * tq * d);
        grow(&mut c.ln_k, n * tq);
        let inv = R::from_f64(1.0 / (dh as f64).sqrt());
        let (bias, cs) = (self.bias.of(p), self.c.of(p));
        let w3 = 3 * d;
        for b in 0..n {
            let qkv = &c.qkv[b * t * w3..(b + 1) * t * w3];
            let ps = &pos[b * t..(b + 1) * t];
            let ln_k = &mut c.ln_k[b * tq..(b + 1) * tq];
            for (r, x) in ln_k.iter_mut().enumerate() {
                *x = ln_keys(self.window, ps, q_from + r);
            }
            for hd in 0..nh {
                let hb = &bias[hd * BUCKETS..(hd + 1) * BUCKETS];
                for r in 0..tq {
                    let i = q_from + r;
                    let lam = cs[hd] * c.ln_k[b * tq + r];
                    let row = ((b * nh + hd) * tq + r) * t;
                    let pre = &mut c.pre[row..row + t];
                    let pr = &mut c.probs[row..row + t];
                    let q = &qkv[i * w3 + hd * dh..i * w3 + (hd + 1) * dh];
                    for j in 0..=i {
                        if !sees(self.window, ps[i], ps[j]) {
                            (pre[j], pr[j]) = (R::ZERO, masked());
                            continue;
                        }
                        let k = &qkv[j * w3 + d + hd * dh..j * w3 + d + (hd + 1) * dh];
                        pre[j] = dot(q, k) * inv + hb[bucket(ps[i], ps[j])];
                        pr[j] = pre[j] * lam;
                    }
                    pre[i + 1..].fill(R::ZERO);
                    pr[i + 1..].fill(R::ZERO);
                    softmax_in_place(&mut pr[..=i]);
                    let y = &mut c.y[(b * tq + r) * d + hd * dh..(b * tq + r) * d + (hd + 1) * dh];
                    y.fill(R::ZERO);
                    for j in 0..=i {
                        if pr[j] == R::ZERO {
                            continue;
                        }
                        let v = &qkv[j * w3 + 2 * d + hd * dh..j * w3 + 2 * d + (hd + 1) * dh];
                        axpy(pr[j], v, y);
                    }
                }
            }
        }
        self.out_rows(p, &c.y, n * tq, out);
    }

    /// The reference twin of [`RelSelfAttention::backward`] (after [`Self::forward_ref`]).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_ref<R: Real>(
        &self,
        p: &[R],
        h: &[R],
        pos: &[u32],
        n: usize,
        t: usize,
        q_from: usize,
        c: &mut MhaCache<R>,
        dout: &[R],
        grad: &mut [R],
        dh: &mut [R],
    ) {
        let (d, nh, dhd) = (self.dim, self.heads, self.head_dim());
        let tq = t - q_from;
        grow(&mut c.dqkv, n * t * 3 * d);
        self.out_backward(p, dout, n * tq, c, grad);
        c.dqkv[..n * t * 3 * d].fill(R::ZERO);
        let inv = R::from_f64(1.0 / (dhd as f64).sqrt());
        let cs = self.c.of(p);
        let mut dbias = vec![R::ZERO; nh * BUCKETS];
        let mut dc = vec![R::ZERO; nh];
        let mut da = vec![R::ZERO; t];
        let mut dq = vec![R::ZERO; dhd];
        let w3 = 3 * d;
        for b in 0..n {
            let qkv = &c.qkv[b * t * w3..(b + 1) * t * w3];
            let dqkv = &mut c.dqkv[b * t * w3..(b + 1) * t * w3];
            let ps = &pos[b * t..(b + 1) * t];
            for hd in 0..nh {
                let (qo, ko, vo) = (hd * dhd, d + hd * dhd, 2 * d + hd * dhd);
                for r in 0..tq {
                    let i = q_from + r;
                    let ln_i = c.ln_k[b * tq + r];
                    let lam = cs[hd] * ln_i;
                    let row = ((b * nh + hd) * tq + r) * t;
                    let pre = &c.pre[row..row + t];
                    let pr = &c.probs[row..row + t];
                    let dy = &c.dy[(b * tq + r) * d + qo..(b * tq + r) * d + qo + dhd];
                    let mut sum = R::ZERO;
                    for j in 0..=i {
                        // Keys outside the window have weight exactly 0 and no gradient.
                        if pr[j] == R::ZERO {
                            continue;
                        }
                        da[j] = dot(dy, &qkv[j * w3 + vo..j * w3 + vo + dhd]);
                        sum += pr[j] * da[j];
                    }
                    let mut dlam = R::ZERO;
                    dq.fill(R::ZERO);
                    let q = &qkv[i * w3 + qo..i * w3 + qo + dhd];
                    for j in 0..=i {
                        if pr[j] == R::ZERO {
                            continue;
                        }
                        let ds = pr[j] * (da[j] - sum);
                        dlam += ds * pre[j];
                        let dpre = ds * lam;
                        dbias[hd * BUCKETS + bucket(ps[i], ps[j])] += dpre;
                        let g = dpre * inv;
                        // dq_i += g k_j; dk_j += g q_i; dv_j += a_j dy_i
                        axpy(g, &qkv[j * w3 + ko..j * w3 + ko + dhd], &mut dq);
                        let (dk, dv) = dqkv[j * w3 + ko..j * w3 + vo + dhd].split_at_mut(d);
                        axpy(g, q, &mut dk[..dhd]);
                        axpy(pr[j], dy, &mut dv[..dhd]);
                    }
                    for (x, y) in dqkv[i * w3 + qo..i * w3 + qo + dhd].iter_mut().zip(&dq) {
                        *x += *y;
                    }
                    dc[hd] += dlam * ln_i;
                }
            }
        }
        for (g, v) in self.bias.of_mut(grad).iter_mut().zip(&dbias) {
            *g += *v;
        }
        for (g, v) in self.c.of_mut(grad).iter_mut().zip(&dc) {
            *g += *v;
        }
        self.backward_project(p, h, n * t, c, grad, dh);
    }
}
