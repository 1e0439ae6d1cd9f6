//! A model's parameters as one flat vector with named, shaped ranges.
//!
//! One flat vector makes the optimiser a single loop, gradient summation across worker threads a
//! single add, and saving a loop over names. Layers keep the `ParamRef` of each tensor.

use super::Real;
use rand::Rng;

/// Where one named tensor lives in the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// PyTorch-style name, e.g. `encoder.weight_ih`.
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// A handle to a tensor: its range in the flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamRef {
    pub offset: usize,
    pub len: usize,
}

impl ParamRef {
    #[inline]
    pub fn of<'a, R>(&self, flat: &'a [R]) -> &'a [R] {
        &flat[self.offset..self.offset + self.len]
    }
    #[inline]
    pub fn of_mut<'a, R>(&self, flat: &'a mut [R]) -> &'a mut [R] {
        &mut flat[self.offset..self.offset + self.len]
    }
}

/// The layout of all parameters of a model: names, shapes, offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamLayout {
    pub specs: Vec<ParamSpec>,
    pub total: usize,
}

impl ParamLayout {
    /// Appends a tensor and returns its handle.
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize]) -> ParamRef {
        let spec = ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            offset: self.total,
        };
        let r = ParamRef {
            offset: self.total,
            len: spec.len(),
        };
        self.total += spec.len();
        self.specs.push(spec);
        r
    }
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// Keras's Glorot-uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
pub fn glorot_uniform<R: Real>(rng: &mut impl Rng, out: &mut [R], fan_in: usize, fan_out: usize) {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    for v in out {
        *v = R::from_f64(rng.random_range(-limit..limit));
    }
}

/// A standard normal sample (Box-Muller).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    loop {
        let u1: f64 = rng.random();
        let u2: f64 = rng.random();
        if u1 > 1e-300 {
            return (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        }
    }
}

/// Keras's orthogonal initialiser for a recurrent kernel, written in PyTorch layout.
///
/// Keras draws the `[H, G*H]` kernel as the transpose of a `[G*H, H]` matrix with orthonormal
/// columns (QR of a Gaussian matrix, signs fixed so R has a positive diagonal). PyTorch's layout
/// `[G*H, H]` is exactly that matrix: `out` (rows `rows`, cols `cols`, rows >= cols) gets
/// orthonormal columns. Modified Gram-Schmidt in f64 gives the same Q as Householder QR with
/// the sign fix.
pub fn orthogonal<R: Real>(rng: &mut impl Rng, out: &mut [R], rows: usize, cols: usize) {
    assert_eq!(out.len(), rows * cols);
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // q: `short` column vectors of length `tall`.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..tall).map(|_| standard_normal(rng)).collect())
        .collect();
    for j in 0..short {
        for i in 0..j {
            let (qi, qj) = {
                let (a, b) = q.split_at_mut(j);
                (&a[i], &mut b[0])
            };
            let d: f64 = qi.iter().zip(qj.iter()).map(|(x, y)| x * y).sum();
            for (y, x) in qj.iter_mut().zip(qi) {
                *y -= d * x;
            }
        }
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        for y in &mut q[j] {
            *y /= norm;
        }
    }
    for r in 0..rows {
        for c in 0..cols {
            // rows >= cols: column c of the matrix is q[c]; otherwise row r is q[r].
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = R::from_f64(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (rows, cols) = (512, 128);
        let mut w = vec![0.0f64; rows * cols];
        orthogonal(&mut rng, &mut w, rows, cols);
        for a in 0..cols {
            for b in 0..cols {
                let d: f64 = (0..rows).map(|r| w[r * cols + a] * w[r * cols + b]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-9, "({a},{b}) = {d}");
            }
        }
    }

    #[test]
    fn glorot_respects_bounds_and_spreads() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut w = vec![0.0f32; 12 * 512];
        glorot_uniform(&mut rng, &mut w, 12, 512);
        let limit = (6.0f32 / 524.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        let mean: f32 = w.iter().sum::<f32>() / w.len() as f32;
        let var: f32 = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w.len() as f32;
        // Uniform(-l, l) has variance l^2 / 3.
        assert!(
            (var - limit * limit / 3.0).abs() < 0.05 * limit * limit / 3.0,
            "var {var}"
        );
    }
}
