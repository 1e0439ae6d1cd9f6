//! Dense (Keras `Dense`, applied to every time step like `TimeDistributed`).
//!
//! `y = x @ weight^T + bias`; `x` is `[N, I]`, `weight` `[O, I]` (PyTorch layout), `bias` `[O]`,
//! `y` `[N, O]`. Backward: `dW += dy^T @ x`, `db += Σ_rows dy`, `dx = dy @ W`.

use super::gemm::{gemm, Op};
use super::params::{glorot_uniform, ParamLayout, ParamRef};
use super::rnn::{add_assign, col_sum_add};
use super::Real;
use rand::Rng;

/// A dense layer's parameter handles.
#[derive(Clone, Debug)]
pub struct Dense {
    pub input: usize,
    pub output: usize,
    pub weight: ParamRef,
    pub bias: ParamRef,
}

impl Dense {
    /// Registers `{prefix}.weight` `[O, I]` and `{prefix}.bias` `[O]`.
    pub fn new(layout: &mut ParamLayout, prefix: &str, input: usize, output: usize) -> Dense {
        let weight = layout.add(format!("{prefix}.weight"), &[output, input]);
        let bias = layout.add(format!("{prefix}.bias"), &[output]);
        Dense {
            input,
            output,
            weight,
            bias,
        }
    }

    /// Keras: Glorot-uniform kernel, zero bias.
    pub fn init<R: Real>(&self, flat: &mut [R], rng: &mut impl Rng) {
        glorot_uniform(rng, self.weight.of_mut(flat), self.input, self.output);
        self.bias.of_mut(flat).fill(R::ZERO);
    }

    /// `y [N, O] = x [N, I] @ W^T + b`.
    pub fn forward<R: Real>(&self, p: &[R], x: &[R], n: usize, y: &mut [R]) {
        let y = &mut y[..n * self.output];
        gemm(
            n,
            self.input,
            self.output,
            R::ONE,
            x,
            Op::N,
            self.weight.of(p),
            Op::T,
            R::ZERO,
            y,
        );
        let b = self.bias.of(p);
        for row in y.chunks_exact_mut(self.output) {
            add_assign(row, b);
        }
    }

    /// Adds weight and bias gradients into `grad`; writes `dx [N, I]` when asked.
    pub fn backward<R: Real>(
        &self,
        p: &[R],
        x: &[R],
        dy: &[R],
        n: usize,
        grad: &mut [R],
        dx: Option<&mut [R]>,
    ) {
        let dy = &dy[..n * self.output];
        gemm(
            self.output,
            n,
            self.input,
            R::ONE,
            dy,
            Op::T,
            x,
            Op::N,
            R::ONE,
            self.weight.of_mut(grad),
        );
        col_sum_add(dy, self.output, self.bias.of_mut(grad));
        if let Some(dx) = dx {
            gemm(
                n,
                self.output,
                self.input,
                R::ONE,
                dy,
                Op::N,
                self.weight.of(p),
                Op::N,
                R::ZERO,
                dx,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::SeedableRng;

    #[test]
    fn dense_gradients_match_finite_differences() {
        let mut layout = ParamLayout::default();
        let d = Dense::new(&mut layout, "head", 4, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut p = vec![0.0f64; layout.total];
        d.init(&mut p, &mut rng);
        for v in d.bias.of_mut(&mut p) {
            *v = rng.random_range(-1.0..1.0);
        }
        let n = 5;
        let x: Vec<f64> = (0..n * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w: Vec<f64> = (0..n * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let loss = |pp: &[f64], xx: &[f64]| {
            let mut y = vec![0.0; n * 3];
            d.forward(pp, xx, n, &mut y);
            y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut grad = vec![0.0; p.len()];
        let mut dx = vec![0.0; x.len()];
        d.backward(&p, &x, &w, n, &mut grad, Some(&mut dx));
        gradcheck::check(
            &p,
            &grad,
            &gradcheck::sample_indices(p.len(), 1),
            1e-7,
            |pp| loss(pp, &x),
            "dense params",
        );
        gradcheck::check(
            &x,
            &dx,
            &gradcheck::sample_indices(x.len(), 1),
            1e-7,
            |xx| loss(&p, xx),
            "dense input",
        );
    }
}
