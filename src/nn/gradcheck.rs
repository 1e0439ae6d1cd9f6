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

/// Indices that check every tensor of `layout`: `per_tensor` spread evenly over each tensor
/// (all of a smaller one) and, where the tensor's `analytic` gradient is not zero everywhere,
/// its `per_tensor` largest in magnitude, so that a check never compares only zeros. Panics,
/// naming the tensor, when a tensor's analytic gradient is zero everywhere: the loss then does
/// not reach it, which a gradient check of the whole model should not accept silently.
pub fn sample_per_tensor(
    layout: &super::params::ParamLayout,
    analytic: &[f64],
    per_tensor: usize,
) -> Vec<usize> {
    let mut v = Vec::new();
    for spec in &layout.specs {
        let r = spec.range();
        let n = r.len();
        let k = per_tensor.clamp(1, n.max(1));
        v.extend((0..k).map(|j| r.start + j * (n - 1) / (k - 1).max(1)));
        let mut by_size: Vec<usize> = r.clone().collect();
        by_size.sort_by(|&a, &b| analytic[b].abs().total_cmp(&analytic[a].abs()));
        assert!(
            by_size.first().is_some_and(|&i| analytic[i] != 0.0),
            "tensor {}: the analytic gradient is zero everywhere",
            spec.name
        );
        v.extend(by_size.into_iter().take(per_tensor));
    }
    v.sort_unstable();
    v.dedup();
    v
}
