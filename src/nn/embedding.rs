//! Embedding (Keras `Embedding`, PyTorch `nn.Embedding`): symbol indices to dense vectors.
//!
//! `weight` is `[V, D]`; `y[n] = weight[sym[n]]`. Backward adds each row of `dy` into the row of
//! its symbol. (A one-hot input into an RNN is the same map fused into `weight_ih`; a separate
//! embedding factorises it through `D` dimensions, Brownlee's "integer encoding".)

use super::params::{ParamLayout, ParamRef};
use super::rnn::add_assign;
use super::Real;
use rand::Rng;

/// An embedding table's handle.
#[derive(Clone, Debug)]
pub struct Embedding {
    pub vocab: usize,
    pub dim: usize,
    pub weight: ParamRef,
}

impl Embedding {
    /// Registers `{prefix}.weight` `[V, D]`.
    pub fn new(layout: &mut ParamLayout, prefix: &str, vocab: usize, dim: usize) -> Embedding {
        let weight = layout.add(format!("{prefix}.weight"), &[vocab, dim]);
        Embedding { vocab, dim, weight }
    }

    /// Keras: uniform in [-0.05, 0.05].
    pub fn init<R: Real>(&self, flat: &mut [R], rng: &mut impl Rng) {
        for v in self.weight.of_mut(flat) {
            *v = R::from_f64(rng.random_range(-0.05..0.05));
        }
    }

    /// `y [N, D]` = the rows of `sym [N]`.
    pub fn forward<R: Real>(&self, p: &[R], sym: &[u8], y: &mut [R]) {
        let (w, d) = (self.weight.of(p), self.dim);
        for (row, &s) in y[..sym.len() * d].chunks_exact_mut(d).zip(sym) {
            let s = s as usize;
            assert!(
                s < self.vocab,
                "symbol {s} outside the embedding's {} rows",
                self.vocab
            );
            row.copy_from_slice(&w[s * d..(s + 1) * d]);
        }
    }

    /// Adds `dy [N, D]` into the gradient rows of the symbols.
    pub fn backward<R: Real>(&self, sym: &[u8], dy: &[R], grad: &mut [R]) {
        let (g, d) = (self.weight.of_mut(grad), self.dim);
        for (row, &s) in dy[..sym.len() * d].chunks_exact(d).zip(sym) {
            let s = s as usize;
            add_assign(&mut g[s * d..(s + 1) * d], row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::SeedableRng;

    #[test]
    fn embedding_gradients_match_finite_differences() {
        let mut layout = ParamLayout::default();
        let e = Embedding::new(&mut layout, "emb", 5, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut p = vec![0.0f64; layout.total];
        e.init(&mut p, &mut rng);
        // Repeated symbols: their gradients must add up.
        let sym = [4u8, 0, 4, 2, 4, 1];
        let w: Vec<f64> = (0..sym.len() * 3)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let loss = |pp: &[f64]| {
            let mut y = vec![0.0; sym.len() * 3];
            e.forward(pp, &sym, &mut y);
            y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut grad = vec![0.0; p.len()];
        e.backward(&sym, &w, &mut grad);
        gradcheck::check(
            &p,
            &grad,
            &gradcheck::sample_indices(p.len(), 1),
            1e-8,
            loss,
            "embedding",
        );
        // Row 3 is never used: no gradient.
        assert!(grad[9..12].iter().all(|&g| g == 0.0));
    }
}
