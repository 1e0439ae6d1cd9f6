//! Finite-difference gradient checking in f64 (tests only).

/// Central differences of `loss` at `params` for the listed indices, compared with `analytic`.
/// Fails with the worst entry when the relative error exceeds `tol`.
pub fn check(
    params: &[f64],
    analytic: &[f64],
    indices: &[usize],
    tol: f64,
    mut loss: impl FnMut(&[f64]) -> f64,
    what: &str,
) {
    let eps = 1e-5;
    let mut p = params.to_vec();
    for &i in indices {
        let orig = p[i];
        p[i] = orig + eps;
        let lp = loss(&p);
        p[i] = orig - eps;
        let lm = loss(&p);
        p[i] = orig;
        let fd = (lp - lm) / (2.0 * eps);
        let a = analytic[i];
        let err = (fd - a).abs() / (fd.abs() + a.abs()).max(1e-6);
        assert!(
            err < tol,
            "{what}: parameter {i}: analytic {a:e}, numeric {fd:e}, rel err {err:e}"
        );
    }
}

/// Every `stride`-th index of `0..n` plus the last, so checks cover all tensors cheaply.
pub fn sample_indices(n: usize, stride: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).step_by(stride.max(1)).collect();
    if n > 0 && v.last() != Some(&(n - 1)) {
        v.push(n - 1);
    }
    v
}
