//! Optimisers over a flat parameter vector.
//!
//! Adam as Keras 3 implements it: `m = β1 m + (1-β1) g`, `v = β2 v + (1-β2) g²`,
//! `α_t = lr √(1-β2^t) / (1-β1^t)`, `p -= α_t m / (√v + ε)` with Keras's defaults
//! (lr 1e-3, β1 0.9, β2 0.999, ε 1e-7). Optional clipping by global norm.

use serde::{Deserialize, Serialize};

/// Optimiser settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Rescale the gradient so its global L2 norm is at most this.
    pub clip_norm: Option<f64>,
    /// How the learning rate moves over the run: `constant` (Keras) or `warmup-cosine` (linear
    /// warm-up over the first `warmup` fraction of `train.epochs`, then cosine decay to
    /// `min_lr_fraction` of `lr` at the last epoch; plateau reductions still scale it).
    pub schedule: Schedule,
    pub warmup: f64,
    pub min_lr_fraction: f64,
}

/// The learning-rate schedule.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    Constant,
    WarmupCosine,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            clip_norm: None,
            schedule: Schedule::Constant,
            warmup: 0.02,
            min_lr_fraction: 0.05,
        }
    }
}

impl OptimConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("learning rate {} must be positive", self.lr));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err("beta1 and beta2 must be in [0, 1)".into());
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(format!("eps {} must be a finite positive number", self.eps));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(format!("clip_norm {c} must be a finite positive number"));
            }
        }
        if !(0.0..1.0).contains(&self.warmup) || !(0.0..=1.0).contains(&self.min_lr_fraction) {
            return Err("warmup must be in [0, 1) and min_lr_fraction in [0, 1]".into());
        }
        Ok(())
    }

    /// The factor the schedule applies to the learning rate at `progress` (0 at the first step,
    /// 1 at the end of the last epoch).
    pub fn schedule_factor(&self, progress: f64) -> f64 {
        match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::WarmupCosine => {
                // The first step of a warm-up is not a zero step.
                warmup_cosine(progress, 1.0, self.warmup, self.min_lr_fraction).max(1e-3)
            }
        }
    }
}

/// Adam state: first and second moments and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub cfg: OptimConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: u64,
    /// Multiplies `cfg.lr` in the next steps (the schedule's factor; 1 by default).
    pub lr_factor: f64,
}

/// Parameters per parallel chunk: the update is elementwise, so the split never changes a bit.
const CHUNK: usize = 16 * 1024;

impl Adam {
    pub fn new(cfg: OptimConfig, n: usize) -> Adam {
        Adam {
            cfg,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            lr_factor: 1.0,
        }
    }

    /// One update of `params` with `grad`, in parallel chunks (bit-identical to a serial loop).
    /// Returns `Err(())` without a meaningful update when the gradient holds NaN or infinity.
    #[allow(clippy::result_unit_err)]
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) -> Result<(), ()> {
        self.step_parts(params, &[grad])
    }

    /// [`Adam::step`] with the gradient `parts[0] + parts[1] + ...`, summed element by element
    /// in that order inside the update pass: the bits of summing the parts first (as
    /// `sum_in_worker_order` does) and then stepping, without writing the sum out and reading it
    /// back. Runs on the current rayon pool.
    #[allow(clippy::result_unit_err)]
    pub fn step_parts(&mut self, params: &mut [f32], parts: &[&[f32]]) -> Result<(), ()> {
        use rayon::prelude::*;
        assert!(!parts.is_empty(), "a gradient of no parts");
        for g in parts {
            assert_eq!(params.len(), g.len());
        }
        let clip = match self.cfg.clip_norm {
            Some(c) => {
                let norm = global_norm_parts(parts);
                if !norm.is_finite() {
                    return Err(());
                }
                if norm > c {
                    (c / norm) as f32
                } else {
                    1.0
                }
            }
            None => 1.0,
        };
        self.t += 1;
        let t = self.t as f64;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let k = AdamConsts {
            alpha: (self.cfg.lr * self.lr_factor * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t)))
                as f32,
            b1: b1 as f32,
            b2: b2 as f32,
            eps: self.cfg.eps as f32,
            clip,
        };
        let bad = params
            .par_chunks_mut(CHUNK)
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(ci, ((p, m), v))| adam_chunk(p, parts, ci * CHUNK, m, v, k))
            .reduce(|| 0, |a, b| a | b);
        if bad != 0 {
            Err(())
        } else {
            Ok(())
        }
    }
}

/// The L2 norm of `grad`, summed in f64 over fixed chunks (the same bits on any thread count).
pub fn global_norm(grad: &[f32]) -> f64 {
    global_norm_parts(&[grad])
}

/// The L2 norm of the gradient `parts[0] + parts[1] + ...` (summed in that order, as
/// [`Adam::step_parts`] does), without writing the sum out.
fn global_norm_parts(parts: &[&[f32]]) -> f64 {
    use rayon::prelude::*;
    let n = parts[0].len();
    let sq: f64 = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|ci| {
            let r = ci * CHUNK..(ci * CHUNK + CHUNK).min(n);
            let mut acc = 0.0f64;
            for_blocks(parts, r, |g| {
                for &x in g {
                    acc += (x as f64) * (x as f64);
                }
            });
            acc
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    sq.sqrt()
}

/// Calls `f` on consecutive blocks of `parts[0][r] + parts[1][r] + ...` (a stack buffer of the
/// sums; a single part is passed as it is).
#[inline(always)]
fn for_blocks(parts: &[&[f32]], r: std::ops::Range<usize>, mut f: impl FnMut(&[f32])) {
    const BLOCK: usize = 1024;
    if let [only] = parts {
        return f(&only[r]);
    }
    let mut buf = [0.0f32; BLOCK];
    let mut i = r.start;
    while i < r.end {
        let e = (i + BLOCK).min(r.end);
        let g = &mut buf[..e - i];
        for ((o, a), b) in g.iter_mut().zip(&parts[0][i..e]).zip(&parts[1][i..e]) {
            *o = *a + *b;
        }
        for part in &parts[2..] {
            for (o, a) in g.iter_mut().zip(&part[i..e]) {
                *o += *a;
            }
        }
        f(g);
        i = e;
    }
}

/// AdamW as PyTorch implements it (Loshchilov & Hutter): decoupled weight decay
/// `p -= lr wd p` on the chosen ranges, then `m = β1 m + (1-β1) g`, `v = β2 v + (1-β2) g²`,
/// `p -= lr (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)`. The learning rate is given at each step
/// (schedules live with the caller, see [`warmup_cosine`]); gradients are first clipped to a
/// global norm of at most `clip_norm`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub clip_norm: Option<f64>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: u64,
}

impl AdamW {
    pub fn new(
        n: usize,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        clip_norm: Option<f64>,
    ) -> AdamW {
        AdamW {
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay,
            clip_norm,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update at learning rate `lr`; weight decay applies to `decay` ranges only. Returns
    /// the gradient's global norm before clipping, or `Err(())` (no update) when it is not finite.
    #[allow(clippy::result_unit_err)]
    pub fn step(
        &mut self,
        params: &mut [f32],
        grad: &[f32],
        lr: f64,
        decay: &[std::ops::Range<usize>],
    ) -> Result<f64, ()> {
        assert_eq!(params.len(), grad.len());
        let norm = global_norm(grad);
        if !norm.is_finite() {
            return Err(());
        }
        let clip = match self.clip_norm {
            Some(c) if norm > c => (c / norm) as f32,
            _ => 1.0,
        };
        if self.weight_decay > 0.0 {
            let f = (1.0 - lr * self.weight_decay) as f32;
            for r in decay {
                for x in &mut params[r.clone()] {
                    *x *= f;
                }
            }
        }
        self.t += 1;
        let t = self.t as f64;
        let (b1, b2) = (self.beta1, self.beta2);
        // lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) = alpha m / (sqrt(v) + eps sqrt(1-b2^t)).
        let bc2 = (1.0 - b2.powf(t)).sqrt();
        let k = AdamConsts {
            alpha: (lr * bc2 / (1.0 - b1.powf(t))) as f32,
            b1: b1 as f32,
            b2: b2 as f32,
            eps: (self.eps * bc2) as f32,
            clip,
        };
        use rayon::prelude::*;
        params
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                adam_block(p, g, m, v, k);
            });
        Ok(norm)
    }
}

/// Linear warm-up over the first `warmup` fraction, then cosine decay from `peak` to
/// `floor * peak` at `progress` 1 (the schedule of the length-generalisation references).
pub fn warmup_cosine(progress: f64, peak: f64, warmup: f64, floor: f64) -> f64 {
    let progress = progress.clamp(0.0, 1.0);
    if progress < warmup {
        return peak * progress / warmup;
    }
    let f = ((progress - warmup) / (1.0 - warmup).max(1e-12)).min(1.0);
    peak * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * f).cos()))
}

#[derive(Clone, Copy)]
struct AdamConsts {
    alpha: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    clip: f32,
}

/// The update of one chunk of `p` (and `m`, `v`), whose gradient is the sum of `parts` from
/// `offset` on, block by block; returns non-zero if any summed gradient is NaN or infinite.
fn adam_chunk(
    p: &mut [f32],
    parts: &[&[f32]],
    offset: usize,
    m: &mut [f32],
    v: &mut [f32],
    k: AdamConsts,
) -> u32 {
    let mut bad = 0u32;
    let mut i = 0;
    for_blocks(parts, offset..offset + p.len(), |g| {
        let n = g.len();
        bad |= adam_block(&mut p[i..i + n], g, &mut m[i..i + n], &mut v[i..i + n], k);
        i += n;
    });
    bad
}

/// The update of `p`, `m` and `v` with the gradient `g`; returns non-zero if any of `g` is NaN
/// or infinite.
fn adam_block(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamConsts) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available, checked just above.
            return unsafe { adam_block_avx2(p, g, m, v, k) };
        }
    }
    adam_block_generic(p, g, m, v, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_block_avx2(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: AdamConsts,
) -> u32 {
    adam_block_generic(p, g, m, v, k)
}

#[inline(always)]
fn adam_block_generic(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: AdamConsts,
) -> u32 {
    let n = g.len();
    let (p, m, v) = (&mut p[..n], &mut m[..n], &mut v[..n]);
    let mut bad = 0u32;
    for i in 0..n {
        // An all-ones exponent marks NaN or infinity; an integer OR vectorises, a float test may not.
        bad |= u32::from(g[i].to_bits() & 0x7f80_0000 == 0x7f80_0000);
        let gi = g[i] * k.clip;
        m[i] = k.b1 * m[i] + (1.0 - k.b1) * gi;
        v[i] = k.b2 * v[i] + (1.0 - k.b2) * gi * gi;
        p[i] -= k.alpha * m[i] / (v[i].sqrt() + k.eps);
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_about_lr() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps') ≈ lr * sign(g).
        let mut adam = Adam::new(OptimConfig::default(), 3);
        let mut p = vec![1.0f32, 1.0, 1.0];
        adam.step(&mut p, &[0.5, -2.0, 0.0]).unwrap();
        assert!((p[0] - (1.0 - 1e-3)).abs() < 1e-6);
        assert!((p[1] - (1.0 + 1e-3)).abs() < 1e-6);
        assert_eq!(p[2], 1.0);
    }

    /// Adam by the module doc's formula in f64, from zero moments: the parameters after each
    /// of `grads`' steps.
    fn adam_reference(cfg: &OptimConfig, p0: &[f64], grads: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let mut p = p0.to_vec();
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        let mut after = Vec::new();
        for (step, g) in grads.iter().enumerate() {
            let t = (step + 1) as f64;
            let alpha = cfg.lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] -= alpha * m[i] / (v[i].sqrt() + cfg.eps);
            }
            after.push(p.clone());
        }
        after
    }

    #[test]
    fn adam_follows_its_formula_over_several_steps() {
        // The bias corrections 1-β^t change at every step: from step 2 on, a correction stuck
        // at its first value moves each parameter by about a third more than it should, far
        // beyond the tolerance. Gradients change sign and size so that m and v differ from g.
        let cfg = OptimConfig {
            lr: 0.01,
            ..OptimConfig::default()
        };
        let p0 = [1.0f64, -0.5, 0.25, 2.0];
        let grads: Vec<Vec<f64>> = (1..=5)
            .map(|t| {
                let t = t as f64;
                vec![0.5 * t, -2.0 / t, 0.3 * (-1f64).powf(t), 1e-3 * t * t]
            })
            .collect();
        let want = adam_reference(&cfg, &p0, &grads);
        let mut adam = Adam::new(cfg, p0.len());
        let mut p: Vec<f32> = p0.iter().map(|&x| x as f32).collect();
        for (t, (g, want)) in grads.iter().zip(&want).enumerate() {
            let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            adam.step(&mut p, &g).unwrap();
            for (i, (&got, &w)) in p.iter().zip(want).enumerate() {
                assert!(
                    (got as f64 - w).abs() < 2e-6,
                    "step {}, parameter {i}: {got} against {w}",
                    t + 1
                );
            }
        }
        assert_eq!(adam.t, 5);
    }

    #[test]
    fn the_schedule_scales_the_step() {
        let cfg = OptimConfig {
            schedule: Schedule::WarmupCosine,
            warmup: 0.1,
            min_lr_fraction: 0.1,
            ..Default::default()
        };
        // Warm-up, peak, halfway down the cosine, the floor.
        assert!((cfg.schedule_factor(0.05) - 0.5).abs() < 1e-12);
        assert!((cfg.schedule_factor(0.1) - 1.0).abs() < 1e-12);
        assert!((cfg.schedule_factor(0.55) - 0.55).abs() < 1e-12);
        assert!((cfg.schedule_factor(1.0) - 0.1).abs() < 1e-12);
        assert_eq!(OptimConfig::default().schedule_factor(0.7), 1.0);
        // Adam's first step moves by about lr x factor.
        let mut adam = Adam::new(cfg, 1);
        adam.lr_factor = 0.25;
        let mut p = vec![1.0f32];
        adam.step(&mut p, &[3.0]).unwrap();
        assert!((p[0] - (1.0 - 0.25e-3)).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut adam = Adam::new(
            OptimConfig {
                lr: 0.05,
                ..Default::default()
            },
            2,
        );
        let mut p = vec![3.0f32, -2.0];
        for _ in 0..2000 {
            let g = [2.0 * (p[0] - 1.0), 2.0 * (p[1] + 0.5)];
            adam.step(&mut p, &g).unwrap();
        }
        assert!(
            (p[0] - 1.0).abs() < 1e-3 && (p[1] + 0.5).abs() < 1e-3,
            "{p:?}"
        );
    }

    #[test]
    fn non_finite_gradients_are_reported() {
        let mut a = Adam::new(OptimConfig::default(), 40_000);
        let mut p = vec![0.0f32; 40_000];
        let mut g = vec![0.1f32; 40_000];
        assert!(a.step(&mut p, &g).is_ok());
        g[33_333] = f32::NAN;
        assert!(a.step(&mut p, &g).is_err());
        g[33_333] = f32::NEG_INFINITY;
        assert!(a.step(&mut p, &g).is_err());
    }

    #[test]
    fn adamw_matches_pytorch_formulas_and_decays_only_chosen_ranges() {
        let mut a = AdamW::new(3, 0.9, 0.95, 0.1, Some(1.0));
        let mut p = vec![1.0f32, 1.0, 1.0];
        // Norm 5 > 1: clipped to (0.6, 0.8, 0). First step: m_hat = g, v_hat = g², so each
        // parameter moves by lr * g / (|g| + eps) = lr * sign(g).
        let first = std::iter::once(0..1).collect::<Vec<_>>();
        let norm = a.step(&mut p, &[3.0, 4.0, 0.0], 0.01, &first).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        assert!((p[0] - (1.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6, "{p:?}");
        assert!((p[1] - (1.0 - 0.01)).abs() < 1e-6, "{p:?}");
        assert_eq!(p[2], 1.0);
        assert!(a.step(&mut p, &[f32::NAN, 0.0, 0.0], 0.01, &[]).is_err());
    }

    #[test]
    fn warmup_cosine_schedule_shape() {
        assert_eq!(warmup_cosine(0.0, 1e-3, 0.02, 0.1), 0.0);
        assert!((warmup_cosine(0.01, 1e-3, 0.02, 0.1) - 5e-4).abs() < 1e-12);
        assert!((warmup_cosine(0.02, 1e-3, 0.02, 0.1) - 1e-3).abs() < 1e-12);
        assert!((warmup_cosine(0.51, 1e-3, 0.02, 0.1) - 5.5e-4).abs() < 1e-9);
        assert!((warmup_cosine(1.0, 1e-3, 0.02, 0.1) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn a_gradient_in_parts_gives_the_bits_of_its_sum() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // Over two parallel chunks and a partial block, so chunk and block edges are crossed.
        let n = CHUNK + 1500;
        let mut gen =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() - 0.5).collect() };
        let parts: Vec<Vec<f32>> = (0..3).map(|_| gen(n)).collect();
        let p0 = gen(n);
        for k in 1..=3 {
            for clip_norm in [None, Some(1.0)] {
                let cfg = OptimConfig {
                    clip_norm,
                    ..Default::default()
                };
                // The sum in part order, as the engine's `sum_in_worker_order` forms it.
                let mut sum = parts[0].clone();
                for part in &parts[1..k] {
                    for (s, g) in sum.iter_mut().zip(part) {
                        *s += *g;
                    }
                }
                let (mut a, mut b) = (Adam::new(cfg.clone(), n), Adam::new(cfg, n));
                let (mut pa, mut pb) = (p0.clone(), p0.clone());
                let refs: Vec<&[f32]> = parts[..k].iter().map(|g| &g[..]).collect();
                for _ in 0..2 {
                    a.step(&mut pa, &sum).unwrap();
                    b.step_parts(&mut pb, &refs).unwrap();
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&pa), bits(&pb));
                assert_eq!((bits(&a.m), bits(&a.v)), (bits(&b.m), bits(&b.v)));
                assert_ne!(pa, p0);
            }
        }
        // A NaN in one part is caught in the sum, by the update and by the clipping norm.
        let mut bad = parts[1].clone();
        bad[CHUNK + 7] = f32::NAN;
        for clip_norm in [None, Some(1.0)] {
            let cfg = OptimConfig {
                clip_norm,
                ..Default::default()
            };
            let mut p = p0.clone();
            assert!(Adam::new(cfg, n)
                .step_parts(&mut p, &[&parts[0], &bad])
                .is_err());
        }
    }

    #[test]
    fn clipping_bounds_the_update_direction() {
        let mut a = Adam::new(
            OptimConfig {
                clip_norm: Some(1.0),
                ..Default::default()
            },
            2,
        );
        let mut p = vec![0.0f32; 2];
        a.step(&mut p, &[30.0, 40.0]).unwrap();
        assert!((a.m[0] - 0.1 * 0.6).abs() < 1e-7 && (a.m[1] - 0.1 * 0.8).abs() < 1e-7);
    }
}
