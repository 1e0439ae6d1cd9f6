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
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            clip_norm: None,
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
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err("eps must be positive".into());
        }
        if let Some(c) = self.clip_norm {
            if c.is_nan() || c <= 0.0 {
                return Err("clip_norm must be positive".into());
            }
        }
        Ok(())
    }
}

/// Adam state: first and second moments and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub cfg: OptimConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: u64,
}

impl Adam {
    pub fn new(cfg: OptimConfig, n: usize) -> Adam {
        Adam {
            cfg,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update of `params` with `grad`; returns the gradient's global norm (before clipping).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) -> f64 {
        assert_eq!(params.len(), grad.len());
        let norm = grad
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt();
        let clip = match self.cfg.clip_norm {
            Some(c) if norm > c => (c / norm) as f32,
            _ => 1.0,
        };
        self.t += 1;
        let t = self.t as f64;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let alpha = (self.cfg.lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t))) as f32;
        let (b1, b2, eps) = (b1 as f32, b2 as f32, self.cfg.eps as f32);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let g = g * clip;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= alpha * *m / (v.sqrt() + eps);
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_about_lr() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps') ≈ lr * sign(g).
        let mut adam = Adam::new(OptimConfig::default(), 3);
        let mut p = vec![1.0f32, 1.0, 1.0];
        adam.step(&mut p, &[0.5, -2.0, 0.0]);
        assert!((p[0] - (1.0 - 1e-3)).abs() < 1e-6);
        assert!((p[1] - (1.0 + 1e-3)).abs() < 1e-6);
        assert_eq!(p[2], 1.0);
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
            adam.step(&mut p, &g);
        }
        assert!(
            (p[0] - 1.0).abs() < 1e-3 && (p[1] + 0.5).abs() < 1e-3,
            "{p:?}"
        );
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
        let norm = a.step(&mut p, &[30.0, 40.0]);
        assert_eq!(norm, 50.0);
        assert!((a.m[0] - 0.1 * 0.6).abs() < 1e-7 && (a.m[1] - 0.1 * 0.8).abs() < 1e-7);
    }
}
