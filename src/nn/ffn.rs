//! Gated GELU feed-forward (GEGLU, Shazeer 2020), the transformer block's position-wise MLP.
//!
//! ```text
//! [g | u] = x @ w_in^T            x: [N, D], w_in: [2F, D] (gate rows first), g, u: [N, F]
//! a       = gelu(g) * u           gelu(z) = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
//! y       = a @ w_out^T           w_out: [D, F], y: [N, D]
//! ```
//! Backward: `dw_out += dy^T @ a`, `da = dy @ w_out`, `dg = da u gelu'(g)`, `du = da gelu(g)`,
//! `dw_in += [dg | du]^T @ x`, `dx += [dg | du] @ w_in`. (PyTorch's `F.gelu` defaults to the erf
//! form; the tanh form differs by < 1e-3 and needs no erf.)

use super::gemm::{gemm, Op};
use super::params::{ParamLayout, ParamRef};
use super::Real;

/// The feed-forward layer's handles.
#[derive(Clone, Debug)]
pub struct GatedFfn {
    pub dim: usize,
    pub hidden: usize,
    pub w_in: ParamRef,
    pub w_out: ParamRef,
}

/// Activations kept for backward, and backward scratch; grows on demand.
#[derive(Clone, Debug, Default)]
pub struct FfnCache<R> {
    /// `[N, 2F]`: gelu(gate) then up projections (the gate itself is overwritten).
    ug: Vec<R>,
    /// `[N, F]`: gelu'(gate), kept so backward evaluates no tanh.
    gd: Vec<R>,
    /// `[N, F]`: gelu(g) * u.
    act: Vec<R>,
    /// `[N, F]` then `[N, 2F]` backward scratch.
    dact: Vec<R>,
    dug: Vec<R>,
}

pub(crate) fn grow<R: Real>(v: &mut Vec<R>, n: usize) {
    if v.len() < n {
        v.resize(n, R::ZERO);
    }
}

const GELU_K: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
const GELU_C: f64 = 0.044_715;

/// gelu(z) and gelu'(z), tanh form.
#[inline(always)]
pub fn gelu_and_grad<R: Real>(z: R) -> (R, R) {
    let half = R::from_f64(0.5);
    let k = R::from_f64(GELU_K);
    let c = R::from_f64(GELU_C);
    let z2 = z * z;
    let t = (k * (z + c * z2 * z)).tanh_fast();
    let val = half * z * (R::ONE + t);
    let grad = half * (R::ONE + t)
        + half * z * (R::ONE - t * t) * k * (R::ONE + R::from_f64(3.0) * c * z2);
    (val, grad)
}

simd_dispatch!(geglu_forward, geglu_forward_avx512, geglu_forward_avx2, geglu_forward_generic, (ug: &mut [R], gd: &mut [R], act: &mut [R], f: usize));
simd_dispatch!(geglu_act, geglu_act_avx512, geglu_act_avx2, geglu_act_generic, (ug: &[R], act: &mut [R], f: usize));
simd_dispatch!(geglu_backward, geglu_backward_avx512, geglu_backward_avx2, geglu_backward_generic, (ug: &[R], gd: &[R], dact: &[R], dug: &mut [R], f: usize));

/// Row by row, `ug` holding each row's `[g | u]`: `act = gelu(g) * u`, `gd = gelu'(g)`, and
/// `g` replaced by `gelu(g)`.
#[inline(always)]
fn geglu_forward_generic<R: Real>(ug: &mut [R], gd: &mut [R], act: &mut [R], f: usize) {
    for ((ug, gd), a) in ug
        .chunks_exact_mut(2 * f)
        .zip(gd.chunks_exact_mut(f))
        .zip(act.chunks_exact_mut(f))
    {
        let (g, u) = ug.split_at_mut(f);
        for (((a, g), gd), &u) in a.iter_mut().zip(g).zip(gd).zip(&*u) {
            let (gv, gdv) = gelu_and_grad(*g);
            (*g, *gd) = (gv, gdv);
            *a = gv * u;
        }
    }
}

/// `act = gelu(g) * u` row by row, `ug` holding each row's `[g | u]` (left as it is).
#[inline(always)]
fn geglu_act_generic<R: Real>(ug: &[R], act: &mut [R], f: usize) {
    for (ug, a) in ug.chunks_exact(2 * f).zip(act.chunks_exact_mut(f)) {
        let (g, u) = ug.split_at(f);
        for ((a, &g), &u) in a.iter_mut().zip(g).zip(u) {
            *a = gelu_and_grad(g).0 * u;
        }
    }
}

/// `dg = dact u gelu'(g)`, `du = dact gelu(g)`, row by row into `dug`'s `[dg | du]`, from the
/// forward's `[gelu(g) | u]` and `gelu'(g)`.
#[inline(always)]
fn geglu_backward_generic<R: Real>(ug: &[R], gd: &[R], dact: &[R], dug: &mut [R], f: usize) {
    for (((ug, gd), da), dug) in ug
        .chunks_exact(2 * f)
        .zip(gd.chunks_exact(f))
        .zip(dact.chunks_exact(f))
        .zip(dug.chunks_exact_mut(2 * f))
    {
        let (gv, u) = ug.split_at(f);
        let (dg, du) = dug.split_at_mut(f);
        for (((((dg, du), &gv), &gd), &u), &da) in
            dg.iter_mut().zip(du).zip(gv).zip(gd).zip(u).zip(da)
        {
            *dg = da * u * gd;
            *du = da * gv;
        }
    }
}

impl GatedFfn {
    /// Registers `{prefix}.w_in.weight` `[2F, D]` and `{prefix}.w_out.weight` `[D, F]`.
    pub fn new(layout: &mut ParamLayout, prefix: &str, dim: usize, hidden: usize) -> GatedFfn {
        let w_in = layout.add(format!("{prefix}.w_in.weight"), &[2 * hidden, dim]);
        let w_out = layout.add(format!("{prefix}.w_out.weight"), &[dim, hidden]);
        GatedFfn {
            dim,
            hidden,
            w_in,
            w_out,
        }
    }

    /// `y [N, D]` (overwritten) from `x [N, D]`, keeping in `c` what [`Self::backward`] needs.
    pub fn forward<R: Real>(&self, p: &[R], x: &[R], n: usize, c: &mut FfnCache<R>, y: &mut [R]) {
        self.run(p, x, n, c, y, true);
    }

    /// `y [N, D]` (overwritten) from `x [N, D]` with no backward to follow (decoding): the
    /// same values as [`Self::forward`], without `gelu'`.
    pub fn infer<R: Real>(&self, p: &[R], x: &[R], n: usize, c: &mut FfnCache<R>, y: &mut [R]) {
        self.run(p, x, n, c, y, false);
    }

    fn run<R: Real>(
        &self,
        p: &[R],
        x: &[R],
        n: usize,
        c: &mut FfnCache<R>,
        y: &mut [R],
        for_backward: bool,
    ) {
        let (d, f) = (self.dim, self.hidden);
        grow(&mut c.ug, n * 2 * f);
        grow(&mut c.act, n * f);
        let w_in = self.w_in.of(p);
        gemm(
            n,
            d,
            2 * f,
            R::ONE,
            x,
            Op::N,
            w_in,
            Op::T,
            R::ZERO,
            &mut c.ug,
        );
        if for_backward {
            grow(&mut c.gd, n * f);
            geglu_forward(
                &mut c.ug[..n * 2 * f],
                &mut c.gd[..n * f],
                &mut c.act[..n * f],
                f,
            );
        } else {
            geglu_act(&c.ug[..n * 2 * f], &mut c.act[..n * f], f);
        }
        let w_out = self.w_out.of(p);
        gemm(n, f, d, R::ONE, &c.act, Op::N, w_out, Op::T, R::ZERO, y);
    }

    /// Adds weight gradients into `grad` and `dx [N, D]` into `dx` (accumulates).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        p: &[R],
        x: &[R],
        dy: &[R],
        n: usize,
        c: &mut FfnCache<R>,
        grad: &mut [R],
        dx: &mut [R],
    ) {
        let (d, f) = (self.dim, self.hidden);
        grow(&mut c.dact, n * f);
        grow(&mut c.dug, n * 2 * f);
        gemm(
            d,
            n,
            f,
            R::ONE,
            dy,
            Op::T,
            &c.act,
            Op::N,
            R::ONE,
            self.w_out.of_mut(grad),
        );
        gemm(
            n,
            d,
            f,
            R::ONE,
            dy,
            Op::N,
            self.w_out.of(p),
            Op::N,
            R::ZERO,
            &mut c.dact,
        );
        geglu_backward(
            &c.ug[..n * 2 * f],
            &c.gd[..n * f],
            &c.dact[..n * f],
            &mut c.dug[..n * 2 * f],
            f,
        );
        gemm(
            2 * f,
            n,
            d,
            R::ONE,
            &c.dug,
            Op::T,
            x,
            Op::N,
            R::ONE,
            self.w_in.of_mut(grad),
        );
        gemm(
            n,
            2 * f,
            d,
            R::ONE,
            &c.dug,
            Op::N,
            self.w_in.of(p),
            Op::N,
            R::ONE,
            dx,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::{Rng, SeedableRng};

    /// The GEGLU kernels compiled for the baseline, AVX2 and AVX-512 give the same bits.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn geglu_kernels_give_the_same_bits_at_every_simd_level() {
        use crate::nn::{wider_levels, SimdLevel};
        let (rows, f) = (3, 37); // odd width: vector bodies and scalar tails both run
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut rand =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-6.0..6.0)).collect() };
        let (ug0, dact) = (rand(rows * 2 * f), rand(rows * f));
        let run = |level: SimdLevel| -> Vec<u32> {
            let (mut ug, mut gd, mut act) = (ug0.clone(), vec![0.0; rows * f], vec![0.0; rows * f]);
            let (mut act2, mut dug) = (vec![0.0; rows * f], vec![0.0; rows * 2 * f]);
            at_level!(
                level,
                geglu_act_generic,
                geglu_act_avx2,
                geglu_act_avx512,
                (&ug, &mut act2, f)
            );
            at_level!(
                level,
                geglu_forward_generic,
                geglu_forward_avx2,
                geglu_forward_avx512,
                (&mut ug, &mut gd, &mut act, f)
            );
            at_level!(
                level,
                geglu_backward_generic,
                geglu_backward_avx2,
                geglu_backward_avx512,
                (&ug, &gd, &dact, &mut dug, f)
            );
            assert!(act2 == act, "geglu_act differs from the forward's output");
            [ug, gd, act, dug]
                .concat()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        let base = run(SimdLevel::Baseline);
        for level in wider_levels() {
            assert!(run(level) == base, "{level:?} differs from the baseline");
        }
    }

    #[test]
    fn gelu_matches_its_erf_definition_closely() {
        // Reference values of x * Phi(x) (erf form).
        for (x, want) in [
            (-3.0f64, -0.004_049_6),
            (-1.0, -0.158_655_3),
            (0.5, 0.345_731_4),
            (2.0, 1.954_5),
        ] {
            let got = gelu_and_grad(x).0;
            assert!(
                (got - want).abs() < 1e-3,
                "gelu({x}) = {got}, erf form {want}"
            );
        }
    }

    #[test]
    fn ffn_gradients_match_finite_differences() {
        let mut layout = ParamLayout::default();
        let ffn = GatedFfn::new(&mut layout, "blocks.0", 4, 6);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let p: Vec<f64> = (0..layout.total)
            .map(|_| rng.random_range(-0.7..0.7))
            .collect();
        let n = 3;
        let x: Vec<f64> = (0..n * 4).map(|_| rng.random_range(-2.0..2.0)).collect();
        let w: Vec<f64> = (0..n * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
        let loss = |pp: &[f64], xx: &[f64]| {
            let mut y = vec![0.0; n * 4];
            ffn.forward(pp, xx, n, &mut FfnCache::default(), &mut y);
            y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut c = FfnCache::default();
        let mut y = vec![0.0; n * 4];
        ffn.forward(&p, &x, n, &mut c, &mut y);
        let mut grad = vec![0.0; p.len()];
        let mut dx = vec![0.0; x.len()];
        ffn.backward(&p, &x, &w, n, &mut c, &mut grad, &mut dx);
        let all = |len| gradcheck::sample_indices(len, 1);
        gradcheck::check(
            &p,
            &grad,
            &all(p.len()),
            1e-6,
            |pp| loss(pp, &x),
            "ffn weights",
        );
        gradcheck::check(&x, &dx, &all(x.len()), 1e-6, |xx| loss(&p, xx), "ffn input");
    }

    #[test]
    fn infer_gives_forwards_output_bit_for_bit() {
        let mut layout = ParamLayout::default();
        let ffn = GatedFfn::new(&mut layout, "blocks.0", 16, 40);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let p: Vec<f32> = (0..layout.total)
            .map(|_| rng.random_range(-0.7..0.7))
            .collect();
        let n = 5;
        let x: Vec<f32> = (0..n * 16).map(|_| rng.random_range(-2.0..2.0)).collect();
        let (mut y1, mut y2) = (vec![0.0f32; n * 16], vec![0.0f32; n * 16]);
        ffn.forward(&p, &x, n, &mut FfnCache::default(), &mut y1);
        ffn.infer(&p, &x, n, &mut FfnCache::default(), &mut y2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y1), bits(&y2));
    }
}
