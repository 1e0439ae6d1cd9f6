//! RMSNorm (Zhang & Sennrich 2019; PyTorch `nn.RMSNorm`): rescale each row to unit root mean
//! square, then by a learned per-feature gain.
//!
//! ```text
//! r[n]    = 1 / sqrt(mean_d x[n,d]^2 + eps)          (cached as `rstd`)
//! y[n,d]  = x[n,d] * r[n] * weight[d]
//! ```
//! `x`, `y` are `[N, D]`, `weight` `[D]`. Backward, with `g = dy * weight`:
//! `dweight[d] += Σ_n dy[n,d] x[n,d] r[n]`,
//! `dx[n,d] = r[n] (g[n,d] - x[n,d] r[n]^2 mean_d(g[n,·] x[n,·]))`.

use super::params::{ParamLayout, ParamRef};
use super::Real;

/// An RMSNorm's handle.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub dim: usize,
    pub weight: ParamRef,
    pub eps: f64,
}

impl RmsNorm {
    /// Registers `{prefix}.weight` `[D]` (eps 1e-6, as the PyTorch references use).
    pub fn new(layout: &mut ParamLayout, prefix: &str, dim: usize) -> RmsNorm {
        let weight = layout.add(format!("{prefix}.weight"), &[dim]);
        RmsNorm {
            dim,
            weight,
            eps: 1e-6,
        }
    }

    /// PyTorch: gains of one.
    pub fn init<R: Real>(&self, flat: &mut [R]) {
        self.weight.of_mut(flat).fill(R::ONE);
    }

    /// `y [N, D]` from `x [N, D]`; `rstd [N]` receives `r` for the backward pass.
    pub fn forward<R: Real>(&self, p: &[R], x: &[R], n: usize, y: &mut [R], rstd: &mut [R]) {
        let (d, w) = (self.dim, self.weight.of(p));
        let eps = R::from_f64(self.eps);
        let inv_d = R::from_f64(1.0 / d as f64);
        for ((xr, yr), r) in x[..n * d]
            .chunks_exact(d)
            .zip(y[..n * d].chunks_exact_mut(d))
            .zip(rstd[..n].iter_mut())
        {
            let mut ss = R::ZERO;
            for &v in xr {
                ss += v * v;
            }
            let rs = R::ONE / (ss * inv_d + eps).sqrt();
            *r = rs;
            for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
                *o = v * rs * g;
            }
        }
    }

    /// Adds the gain's gradient into `grad` and `dx [N, D]` into `dx` (accumulates: residual
    /// streams sum their gradients).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        p: &[R],
        x: &[R],
        rstd: &[R],
        dy: &[R],
        n: usize,
        grad: &mut [R],
        dx: &mut [R],
    ) {
        let d = self.dim;
        let w = self.weight.of(p);
        let inv_d = R::from_f64(1.0 / d as f64);
        let gw = self.weight.of_mut(grad);
        for (((xr, dyr), dxr), &r) in x[..n * d]
            .chunks_exact(d)
            .zip(dy[..n * d].chunks_exact(d))
            .zip(dx[..n * d].chunks_exact_mut(d))
            .zip(&rstd[..n])
        {
            let mut gx = R::ZERO;
            for k in 0..d {
                gw[k] += dyr[k] * xr[k] * r;
                gx += dyr[k] * w[k] * xr[k];
            }
            let coef = r * r * r * gx * inv_d;
            for k in 0..d {
                dxr[k] += r * dyr[k] * w[k] - coef * xr[k];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rmsnorm_gradients_match_finite_differences() {
        let mut layout = ParamLayout::default();
        let norm = RmsNorm::new(&mut layout, "n1", 5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let p: Vec<f64> = (0..layout.total)
            .map(|_| rng.random_range(0.5..1.5))
            .collect();
        let n = 4;
        let x: Vec<f64> = (0..n * 5).map(|_| rng.random_range(-2.0..2.0)).collect();
        let w: Vec<f64> = (0..n * 5).map(|_| rng.random_range(-1.0..1.0)).collect();
        let loss = |pp: &[f64], xx: &[f64]| {
            let (mut y, mut r) = (vec![0.0; n * 5], vec![0.0; n]);
            norm.forward(pp, xx, n, &mut y, &mut r);
            y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let (mut y, mut r) = (vec![0.0; n * 5], vec![0.0; n]);
        norm.forward(&p, &x, n, &mut y, &mut r);
        // Unit root mean square before the gain.
        let ms: f64 = (0..5).map(|k| (y[k] / p[k]).powi(2)).sum::<f64>() / 5.0;
        assert!((ms - 1.0).abs() < 1e-5, "{ms}");
        let mut grad = vec![0.0; p.len()];
        let mut dx = vec![0.5; x.len()];
        norm.backward(&p, &x, &r, &w, n, &mut grad, &mut dx);
        for v in &mut dx {
            *v -= 0.5; // it accumulates
        }
        let all = |len| gradcheck::sample_indices(len, 1);
        gradcheck::check(
            &p,
            &grad,
            &all(p.len()),
            1e-7,
            |pp| loss(pp, &x),
            "rmsnorm weight",
        );
        gradcheck::check(
            &x,
            &dx,
            &all(x.len()),
            1e-6,
            |xx| loss(&p, xx),
            "rmsnorm input",
        );
    }
}
