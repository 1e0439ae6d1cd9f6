//! Matrix products against a weight matrix packed once and reused many times.
//!
//! A recurrent layer multiplies by the same `weight_hh` at every time step. A general GEMM
//! (`matrixmultiply`) repacks that matrix on every call, which cost about a fifth of a training
//! step; here it is packed once per training step into column panels of `NR` (32 with AVX-512,
//! 16 otherwise, zero-padded). With AVX-512 the panels are the strips `sgemm`'s tiles stream
//! (14 rows x 32 columns, prefetching), run by [`super::sgemm::sgemm_prepacked`]; with AVX2 a
//! register-tiled micro-kernel here (6 rows x 16 columns, FMA) streams them.
//! `gemm_packed_ref` is the plain reference twin.
//!
//! Shapes: `a` `[M, K]` row-major, the packed matrix is `[K, N]`, `c` `[M, N]` row-major.

use super::avec::AVec;
use super::gemm::Op;
use super::{simd_level, Real, SimdLevel};

/// Rows per register tile.
const MR: usize = 6;

/// A `[K, N]` matrix in column panels of `nr` columns: element (k, j) lives at
/// `data[(j / nr) * K * nr + k * nr + j % nr]`.
#[derive(Clone, Debug, Default)]
pub struct PackedB<R> {
    pub k: usize,
    pub n: usize,
    nr: usize,
    /// On a cache-line boundary: a vector load of B never spans two lines (2% of a training
    /// step, measured against a `Vec`).
    data: AVec<R>,
}

impl<R: Real> PackedB<R> {
    /// Sizes the buffer for the current `k`, `n` and `nr` and returns the panels (contents
    /// unspecified; the packing writes every value).
    fn alloc(&mut self) -> &mut [R] {
        self.data
            .resize(self.n.div_ceil(self.nr) * self.k * self.nr, R::ZERO);
        &mut self.data
    }

    /// The packed panels.
    fn panels(&self) -> &[R] {
        &self.data
    }

    /// Packs `op(b)` (`b` holds `[k, n]` for `Op::N`, `[n, k]` for `Op::T`), reusing the buffer.
    pub fn pack_from(&mut self, b: &[R], k: usize, n: usize, op: Op) {
        let nr = if std::mem::size_of::<R>() == 4 && simd_level() == SimdLevel::Avx512 {
            super::sgemm::NR
        } else {
            16
        };
        self.pack_with_panel_width(b, k, n, op, nr);
    }

    /// Packs with a given panel width (32 for the AVX-512 kernel, 16 for the others).
    fn pack_with_panel_width(&mut self, b: &[R], k: usize, n: usize, op: Op, nr: usize) {
        assert!(b.len() >= k * n);
        self.k = k;
        self.n = n;
        self.nr = nr;
        #[cfg(target_arch = "x86_64")]
        if std::mem::size_of::<R>() == 4
            && nr == super::sgemm::NR
            && k > 0
            && simd_level() == SimdLevel::Avx512
        {
            // The GEMM's own packing (vector copies, 16 x 16 transposes), which writes every
            // value, padding included: no zeroing pass first (repacked every training step,
            // the scalar loops below and their memset were 3% of an LSTM step).
            let (rs, cs) = match op {
                Op::N => (n as isize, 1),
                Op::T => (1, k as isize),
            };
            let panels = self.alloc();
            // SAFETY: R is f32 (size 4, see gemm_packed); the NR-wide layout is only chosen
            // with AVX-512 (pack_from); `b` holds the `[k, n]` (or `[n, k]`) matrix, asserted above.
            unsafe {
                let out =
                    std::slice::from_raw_parts_mut(panels.as_mut_ptr() as *mut f32, panels.len());
                super::sgemm::pack_strips(b.as_ptr() as *const f32, rs, cs, k, n, out);
            }
            return;
        }
        self.pack_scalar(b, op);
    }

    /// The plain packing loops (any element type and panel width; the twin of the AVX-512
    /// packing above); `k`, `n` and `nr` are already set.
    fn pack_scalar(&mut self, b: &[R], op: Op) {
        let (k, n, nr) = (self.k, self.n, self.nr);
        let panels = self.alloc();
        panels.fill(R::ZERO);
        if k == 0 {
            return;
        }
        // Loops ordered so the reads are contiguous (this ran once per training step per
        // layer, and as an element-by-element loop took 4% of an LSTM training step).
        for (p, panel) in panels.chunks_exact_mut(k * nr).enumerate() {
            let (j0, w) = (p * nr, nr.min(n - p * nr));
            match op {
                Op::N => {
                    for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
                        row[..w].copy_from_slice(&b[kk * n + j0..kk * n + j0 + w]);
                    }
                }
                Op::T => {
                    for jj in 0..w {
                        let col = &b[(j0 + jj) * k..(j0 + jj + 1) * k];
                        for (row, &v) in panel.chunks_exact_mut(nr).zip(col) {
                            row[jj] = v;
                        }
                    }
                }
            }
        }
    }

    fn panel(&self, p: usize) -> &[R] {
        &self.panels()[p * self.k * self.nr..(p + 1) * self.k * self.nr]
    }
}

/// `c [m, n] (+)= a [m, k] @ B` (accumulate when `accumulate`, else overwrite).
pub fn gemm_packed<R: Real>(m: usize, a: &[R], b: &PackedB<R>, c: &mut [R], accumulate: bool) {
    let (k, n) = (b.k, b.n);
    assert!(a.len() >= m * k && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if std::mem::size_of::<R>() == 4 {
            // SAFETY: R is f32 (Real is implemented only for f32 and f64, and only f32 has size 4).
            let (a32, c32) = unsafe {
                (
                    std::slice::from_raw_parts(a.as_ptr() as *const f32, a.len()),
                    std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut f32, c.len()),
                )
            };
            let panels = b.panels();
            let data =
                unsafe { std::slice::from_raw_parts(panels.as_ptr() as *const f32, panels.len()) };
            // The same instruction set as the elementwise kernels (and the same switches).
            match (simd_level(), b.nr) {
                // SAFETY: the CPU has the features each kernel is compiled for (simd_level
                // reports only those).
                (SimdLevel::Avx512, super::sgemm::NR) => {
                    // The GEMM's 14-row tiles with prefetching: 1.05-1.25x this file's 6-row tile at
                    // the LSTM's shapes (64 or 512 rows, 128 x 512 and 512 x 128).
                    return unsafe {
                        super::sgemm::sgemm_prepacked(
                            m,
                            k,
                            n,
                            a32.as_ptr(),
                            k,
                            data.as_ptr(),
                            c32.as_mut_ptr(),
                            n,
                            accumulate,
                        )
                    };
                }
                (SimdLevel::Avx2, 16) => {
                    return unsafe { x86::gemm_avx2(m, k, n, a32, data, c32, accumulate) }
                }
                _ => {}
            }
        }
    }
    gemm_packed_ref(m, a, b, c, accumulate)
}

/// Reference twin: the same panels, plain scalar loops.
pub fn gemm_packed_ref<R: Real>(m: usize, a: &[R], b: &PackedB<R>, c: &mut [R], accumulate: bool) {
    let (k, n, nr) = (b.k, b.n, b.nr);
    for p in 0..n.div_ceil(nr) {
        let panel = b.panel(p);
        for i in 0..m {
            for jj in 0..nr.min(n - p * nr) {
                let mut s = R::ZERO;
                for kk in 0..k {
                    s += a[i * k + kk] * panel[kk * nr + jj];
                }
                let cij = &mut c[i * n + p * nr + jj];
                *cij = if accumulate { *cij + s } else { s };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MR;
    use std::arch::x86_64::*;

    /// Writes a finished tile: full panels straight to `c`, the last partial one column by column.
    #[inline(always)]
    unsafe fn store_row(c: *mut f32, vals: &[f32], ncols: usize, accumulate: bool) {
        for (j, &v) in vals.iter().enumerate().take(ncols) {
            let p = c.add(j);
            *p = if accumulate { *p + v } else { v };
        }
    }

    /// Columns per panel: two vectors of 8.
    const NR: usize = 16;

    /// A `ROWS x NR` register tile: `c (+)= a @ panel`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const ROWS: usize>(
        k: usize,
        a: *const f32,
        lda: usize,
        panel: *const f32,
        c: *mut f32,
        ldc: usize,
        ncols: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for kk in 0..k {
            let w0 = _mm256_loadu_ps(panel.add(kk * NR));
            let w1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r * lda + kk));
                row[0] = _mm256_fmadd_ps(av, w0, row[0]);
                row[1] = _mm256_fmadd_ps(av, w1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            if ncols == NR {
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr.add(8)));
                }
                _mm256_storeu_ps(cr, v0);
                _mm256_storeu_ps(cr.add(8), v1);
            } else {
                let mut tmp = [0.0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), row[0]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), row[1]);
                store_row(cr, &tmp, ncols, accumulate);
            }
        }
    }

    /// `c [m, n] (+)= a [m, k] @ B`, B packed in `NR`-column panels (`data`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_avx2(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        data: &[f32],
        c: &mut [f32],
        accumulate: bool,
    ) {
        let (ap, cp, dp) = (a.as_ptr(), c.as_mut_ptr(), data.as_ptr());
        for p in 0..n.div_ceil(NR) {
            let panel = dp.add(p * k * NR);
            let ncols = NR.min(n - p * NR);
            let mut i = 0;
            while i < m {
                let rows = MR.min(m - i);
                let (ai, ci) = (ap.add(i * k), cp.add(i * n + p * NR));
                match rows {
                    6 => tile::<6>(k, ai, k, panel, ci, n, ncols, accumulate),
                    5 => tile::<5>(k, ai, k, panel, ci, n, ncols, accumulate),
                    4 => tile::<4>(k, ai, k, panel, ci, n, ncols, accumulate),
                    3 => tile::<3>(k, ai, k, panel, ci, n, ncols, accumulate),
                    2 => tile::<2>(k, ai, k, panel, ci, n, ncols, accumulate),
                    _ => tile::<1>(k, ai, k, panel, ci, n, ncols, accumulate),
                }
                i += rows;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gemm::gemm_ref;
    use rand::{Rng, SeedableRng};

    #[test]
    fn packed_kernel_matches_reference_on_odd_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 5, 33),
            (64, 128, 512),
            (13, 512, 128),
            (6, 100, 400),
            (5, 3, 17),
            (64, 128, 384),
        ] {
            for op in [Op::N, Op::T] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut pb = PackedB::default();
                pb.pack_from(&b, k, n, op);
                for accumulate in [false, true] {
                    let mut want = c0.clone();
                    gemm_ref(
                        m,
                        k,
                        n,
                        1.0,
                        &a,
                        Op::N,
                        &b,
                        op,
                        if accumulate { 1.0 } else { 0.0 },
                        &mut want,
                    );
                    let mut fast = c0.clone();
                    gemm_packed(m, &a, &pb, &mut fast, accumulate);
                    let mut plain = c0.clone();
                    gemm_packed_ref(m, &a, &pb, &mut plain, accumulate);
                    // The AVX2 kernel too, when this CPU has it (the dispatch picks AVX-512 here).
                    #[cfg(target_arch = "x86_64")]
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        let mut p16 = PackedB::default();
                        p16.pack_with_panel_width(&b, k, n, op, 16);
                        let mut avx2 = c0.clone();
                        // SAFETY: AVX2 and FMA were detected just above.
                        unsafe { x86::gemm_avx2(m, k, n, &a, p16.panels(), &mut avx2, accumulate) };
                        for (x, w) in avx2.iter().zip(&want) {
                            assert!(
                                (x - w).abs() < 1e-4 * (1.0 + w.abs()),
                                "{m}x{k}x{n} {op:?}: avx2 {x} vs {w}"
                            );
                        }
                    }
                    for ((f, p), w) in fast.iter().zip(&plain).zip(&want) {
                        assert!(
                            (f - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n} {op:?}: fast {f} vs {w}"
                        );
                        assert!(
                            (p - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n} {op:?}: plain {p} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// The AVX-512 packing (the GEMM's vector copies and 16 x 16 transposes, no zeroing pass)
    /// writes exactly what the plain loops write, padding included, also into a buffer left
    /// over from a larger matrix.
    #[test]
    fn vector_packing_matches_the_plain_loops() {
        use rand::{Rng, SeedableRng};
        if simd_level() != SimdLevel::Avx512 {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut fast = PackedB::default();
        for &(k, n) in &[(300, 70), (128, 512), (512, 128), (17, 33), (5, 3), (1, 32)] {
            for op in [Op::N, Op::T] {
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                fast.pack_from(&b, k, n, op);
                let mut plain = PackedB {
                    k,
                    n,
                    nr: super::super::sgemm::NR,
                    ..Default::default()
                };
                plain.pack_scalar(&b, op);
                assert_eq!(fast.nr, plain.nr);
                assert_eq!(fast.panels(), plain.panels(), "{k}x{n} {op:?}");
                assert_eq!(fast.panels().as_ptr() as usize % 64, 0);
            }
        }
    }
}
