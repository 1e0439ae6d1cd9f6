//! Softmax cross-entropy over symbol classes, fused with its gradient and accuracy counts.
//!
//! `logits` `[N, V]`, `targets` `[N]` symbol indices. Loss = Σ_rows -log softmax(logits)[target]
//! (the caller divides by the number of rows in the whole batch: Keras averages over samples and
//! steps). The gradient written in place of the logits is `scale * (softmax - onehot)`.

use super::Real;

/// Sums over the rows of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSums {
    /// Σ -log p(target), in f64.
    pub loss: f64,
    /// Rows whose argmax equals the target.
    pub correct: usize,
    /// Rows scored (all, or the active ones).
    pub positions: usize,
}

/// Softmax in place over each row of `[N, V]` (max-subtracted, exact exp).
pub fn softmax_rows<R: Real>(x: &mut [R], v: usize) {
    for row in x.chunks_exact_mut(v) {
        let m = row
            .iter()
            .copied()
            .fold(row[0], |a, b| if b > a { b } else { a });
        let mut s = R::ZERO;
        for e in row.iter_mut() {
            *e = (*e - m).exp();
            s += *e;
        }
        let inv = R::ONE / s;
        for e in row.iter_mut() {
            *e *= inv;
        }
    }
}

/// Index of the largest value (first on ties).
pub fn argmax<R: Real>(row: &[R]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Turns `logits` into `scale * (softmax - onehot(target))` in place and returns the summed loss
/// and the number of rows predicted right. `argmax_out` (`[N]`) receives each row's argmax.
/// Rows where `active` (`[N]`) is 0 are left out: zero gradient, no loss, not counted.
pub fn softmax_xent_forward_backward<R: Real>(
    logits: &mut [R],
    targets: &[u8],
    active: Option<&[u8]>,
    v: usize,
    scale: R,
    argmax_out: &mut [u8],
) -> LossSums {
    let mut sums = LossSums::default();
    softmax_rows(logits, v);
    for (i, ((row, &t), am)) in logits
        .chunks_exact_mut(v)
        .zip(targets)
        .zip(argmax_out.iter_mut())
        .enumerate()
    {
        let t = t as usize;
        let best = argmax(row);
        *am = best as u8;
        if active.is_some_and(|a| a[i] == 0) {
            row.fill(R::ZERO);
            continue;
        }
        sums.positions += 1;
        if best == t {
            sums.correct += 1;
        }
        // Keras clips probabilities to [eps, 1 - eps] with eps 1e-7 before the log.
        sums.loss -= row[t].to_f64().max(1e-7).ln();
        for e in row.iter_mut() {
            *e *= scale;
        }
        row[t] -= scale;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let v = 5;
        let logits: Vec<f64> = vec![0.3, -1.2, 2.0, 0.0, 0.7, 1.0, 1.0, -0.5, 0.2, 0.1];
        let targets = [2u8, 4];
        let loss_of = |l: &[f64]| {
            let mut x = l.to_vec();
            let mut am = [0u8; 2];
            softmax_xent_forward_backward(&mut x, &targets, None, v, 1.0, &mut am).loss
        };
        let mut g = logits.clone();
        let mut am = [0u8; 2];
        let sums = softmax_xent_forward_backward(&mut g, &targets, None, v, 1.0, &mut am);
        assert_eq!(am, [2, 0]);
        assert_eq!(sums.correct, 1);
        for i in 0..logits.len() {
            let (mut p, mut m) = (logits.clone(), logits.clone());
            p[i] += 1e-6;
            m[i] -= 1e-6;
            let fd = (loss_of(&p) - loss_of(&m)) / 2e-6;
            assert!((fd - g[i]).abs() < 1e-7, "{i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn inactive_rows_get_no_loss_and_no_gradient() {
        let v = 3;
        let logits = vec![0.5f64, -0.5, 1.0, 2.0, 0.0, -1.0, 0.1, 0.2, 0.3];
        let targets = [2u8, 1, 0];
        let (mut all, mut part) = (logits.clone(), logits.clone());
        let mut am = [0u8; 3];
        let a = softmax_xent_forward_backward(&mut all, &targets, None, v, 1.0, &mut am);
        let p =
            softmax_xent_forward_backward(&mut part, &targets, Some(&[1, 0, 1]), v, 1.0, &mut am);
        assert_eq!((a.positions, p.positions), (3, 2));
        assert_eq!(am, [2, 0, 2]);
        assert_eq!((a.correct, p.correct), (1, 1));
        let row_loss = |l: &[f64], t: usize| {
            let mut x = l.to_vec();
            softmax_rows(&mut x, v);
            -x[t].ln()
        };
        assert!((p.loss - row_loss(&logits[0..3], 2) - row_loss(&logits[6..9], 0)).abs() < 1e-12);
        assert!(part[3..6].iter().all(|&g| g == 0.0));
        assert_eq!(part[0..3], all[0..3]);
        assert_eq!(part[6..9], all[6..9]);
    }
}
