//! Safe matrix products over row-major slices: `C = alpha * op(A) @ op(B) + beta * C`.
//!
//! `op(X)` is `X` or its transpose, chosen by a flag; transposes are free (strides only).
//! `gemm_ref` is the plain triple loop the fast path is tested against.

use super::Real;

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Use the matrix as stored.
    N,
    /// Use its transpose.
    T,
}

/// `C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C[m, n]`.
///
/// `a` holds `[m, k]` row-major when `ta == N`, `[k, m]` when `ta == T`; likewise `b` holds
/// `[k, n]` or `[n, k]`; `c` holds `[m, n]`. With `beta == 0`, `c` is overwritten, not read.
#[allow(clippy::too_many_arguments)]
pub fn gemm<R: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: &[R],
    ta: Op,
    b: &[R],
    tb: Op,
    beta: R,
    c: &mut [R],
) {
    assert!(a.len() >= m * k, "gemm: A too small");
    assert!(b.len() >= k * n, "gemm: B too small");
    assert!(c.len() >= m * n, "gemm: C too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // matrixmultiply handles k == 0, but be explicit: C = beta * C.
        for v in &mut c[..m * n] {
            *v = if beta == R::ZERO { R::ZERO } else { *v * beta };
        }
        return;
    }
    let (rsa, csa) = match ta {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match tb {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the asserts above guarantee every index the strides reach is in bounds, and `c`
    // is a unique borrow that cannot alias `a` or `b`.
    unsafe {
        R::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// A strided read-only matrix: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a, R> {
    pub data: &'a [R],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, R> Mat<'a, R> {
    /// Row-major with row stride `rs`.
    pub fn rows(data: &'a [R], rs: usize) -> Self {
        Mat { data, rs, cs: 1 }
    }
    /// The transpose of a row-major matrix with row stride `rs`.
    pub fn cols(data: &'a [R], rs: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: rs,
        }
    }
    /// Whether every element of a `rows x cols` view is inside `data` (overflow counts as no).
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || last_index(rows, cols, self.rs, self.cs).is_some_and(|i| i < self.data.len())
    }
}

/// `(rows - 1) * rs + (cols - 1) * cs` for non-empty views, `None` on overflow or on a stride
/// the raw GEMM (which takes `isize`) cannot hold.
fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rs > isize::MAX as usize || cs > isize::MAX as usize {
        return None;
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)
        .filter(|&i| i <= isize::MAX as usize)
}

/// `C[m, n] = alpha * A[m, k] @ B[k, n] + beta * C[m, n]` on strided views: C is row-major with
/// row stride `rsc >= n` (sub-matrices of wider buffers, such as one head's columns of a
/// `[rows, 3D]` projection, without copies). With `beta == 0`, C is overwritten, not read.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided<R: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: Mat<R>,
    b: Mat<R>,
    beta: R,
    c: &mut [R],
    rsc: usize,
) {
    assert!(a.fits(m, k), "gemm_strided: A too small");
    assert!(b.fits(k, n), "gemm_strided: B too small");
    assert!(
        m == 0 || n == 0 || (rsc >= n && last_index(m, n, rsc, 1).is_some_and(|i| i < c.len())),
        "gemm_strided: C too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            for v in &mut c[r * rsc..r * rsc + n] {
                *v = if beta == R::ZERO { R::ZERO } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: the asserts above bound every index the strides reach; `rsc >= n` keeps C's rows
    // apart, and `c` is a unique borrow that cannot alias `a` or `b`.
    unsafe {
        R::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        )
    }
}

/// The plain reference twin of [`gemm`]: a triple loop in f64 accumulation.
#[allow(clippy::too_many_arguments)]
pub fn gemm_ref<R: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: &[R],
    ta: Op,
    b: &[R],
    tb: Op,
    beta: R,
    c: &mut [R],
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let av = match ta {
                    Op::N => a[i * k + p],
                    Op::T => a[p * m + i],
                };
                let bv = match tb {
                    Op::N => b[p * n + j],
                    Op::T => b[j * k + p],
                };
                s += av.to_f64() * bv.to_f64();
            }
            let old = if beta == R::ZERO {
                0.0
            } else {
                beta.to_f64() * c[i * n + j].to_f64()
            };
            c[i * n + j] = R::from_f64(alpha.to_f64() * s + old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rand_vec(rng: &mut impl Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn fast_gemm_matches_reference_on_odd_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (64, 140, 512),
            (5, 1, 129),
        ] {
            for ta in [Op::N, Op::T] {
                for tb in [Op::N, Op::T] {
                    let a = rand_vec(&mut rng, m * k);
                    let b = rand_vec(&mut rng, k * n);
                    let c0 = rand_vec(&mut rng, m * n);
                    let (mut c1, mut c2) = (c0.clone(), c0.clone());
                    gemm(m, k, n, 0.5, &a, ta, &b, tb, 2.0, &mut c1);
                    gemm_ref(m, k, n, 0.5, &a, ta, &b, tb, 2.0, &mut c2);
                    for (x, y) in c1.iter().zip(&c2) {
                        assert!(
                            (x - y).abs() < 1e-4 * (1.0 + y.abs()),
                            "{m}x{k}x{n} {ta:?}{tb:?}: {x} vs {y}"
                        );
                    }
                    // beta = 0 must ignore whatever C held (even NaN).
                    let mut c3 = vec![f32::NAN; m * n];
                    gemm(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c3);
                    assert!(c3.iter().all(|v| v.is_finite()));
                }
            }
        }
    }

    #[test]
    fn strided_gemm_overwrites_with_beta_zero_over_long_inner_sizes() {
        // k = 200 spans two of sgemm's k blocks; A is row-major with a padded row stride (the
        // attention's layout), then stored transposed; C holds NaN where it is written and
        // outside, and with beta 0 must not read it.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (m, k, n) = (31, 200, 40);
        let abuf = rand_vec(&mut rng, m * 211);
        let at: Vec<f32> = (0..k * m).map(|i| abuf[(i % m) * 211 + i / m]).collect();
        let b = rand_vec(&mut rng, k * n);
        for a in [Mat::rows(&abuf[..], 211), Mat::cols(&at[..], m)] {
            let mut c = vec![f32::NAN; m * 47];
            gemm_strided(m, k, n, 1.0, a, Mat::rows(&b, n), 0.0, &mut c, 47);
            for i in 0..m {
                for j in 0..47 {
                    let got = c[i * 47 + j];
                    if j >= n {
                        assert!(got.is_nan(), "{i},{j} outside C was written");
                        continue;
                    }
                    let want: f64 = (0..k)
                        .map(|p| abuf[i * 211 + p] as f64 * b[p * n + j] as f64)
                        .sum();
                    assert!(
                        (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{i},{j}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn strided_views_that_overflow_do_not_fit() {
        let data = [0.0f32; 4];
        assert!(!Mat {
            data: &data,
            rs: usize::MAX / 2,
            cs: 1
        }
        .fits(3, 1));
        assert!(!Mat {
            data: &data,
            rs: 1,
            cs: usize::MAX
        }
        .fits(1, 2));
        assert!(Mat::rows(&data, 2).fits(2, 2) && !Mat::rows(&data, 2).fits(3, 2));
    }

    #[test]
    fn strided_gemm_reads_and_writes_sub_matrices() {
        // A: columns 2..2+k of a [m, 11] buffer; B: the transpose of columns 1..1+k of an
        // [n, 9] buffer; C: columns 3..3+n of an [m, 13] buffer, the rest left untouched.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (m, k, n) = (17, 5, 6);
        let abuf = rand_vec(&mut rng, m * 11);
        let bbuf = rand_vec(&mut rng, n * 9);
        let cbuf = rand_vec(&mut rng, m * 13);
        let mut c = cbuf.clone();
        gemm_strided(
            m,
            k,
            n,
            0.5,
            Mat::rows(&abuf[2..], 11),
            Mat::cols(&bbuf[1..], 9),
            2.0,
            &mut c[3..],
            13,
        );
        for i in 0..m {
            for j in 0..13 {
                let want = if (3..3 + n).contains(&j) {
                    let jj = j - 3;
                    let s: f32 = (0..k)
                        .map(|p| abuf[i * 11 + 2 + p] * bbuf[jj * 9 + 1 + p])
                        .sum();
                    0.5 * s + 2.0 * cbuf[i * 13 + j]
                } else {
                    cbuf[i * 13 + j]
                };
                let got = c[i * 13 + j];
                assert!(
                    (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{i},{j}: {got} vs {want}"
                );
            }
        }
    }
}
