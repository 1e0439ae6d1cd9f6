//! An f32 GEMM for CPUs with AVX-512, picked at run time (the binary stays portable).
//!
//! `matrixmultiply` packs both operands into 16 x 16 tiles on every call. The products seqcalc
//! runs are tall and thin (thousands of rows, 128-1024 columns, inner sizes 32-1024), so this
//! kernel packs only B, one block of `KC` rows at a time, into strips of 32 columns (each strip
//! one contiguous `KC x 32` block a tile streams through), and reads A in place, broadcasting
//! its elements: stored transposed (a panel's 14 values of one k adjacent) or row-major (each
//! row walked along k). Transposed A with a long stride, and other strides, are copied panel
//! by panel first. Each register tile is 14 rows x 32
//! columns of C (28 of the 32 vector registers), so one step of the inner loop does 28 fused
//! multiply-adds for two vector loads of B and 14 broadcasts of A, and prefetches B eight steps
//! ahead (a tile's panel of A stays in L1; the strip of B streams from L2). Column tails use
//! masked loads and stores; a tile of at most 16 columns (a softmax head's C) takes one vector
//! per row. Within [`share_panels`], a product's row panels become tasks of the rayon pool.
//!
//! Every element of C is summed over k in increasing order, the same order for any shape or
//! thread count, so results are deterministic (a panel is computed whole by one thread). Other
//! CPUs and C that is not row-major go to `matrixmultiply`. With the prefetches this kernel also
//! beats it on large cubes (1024^3: 82 against 67 GFLOP/s on one core), which used to go there.

use super::avec::AVec;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// Rows of C per register tile.
const MR: usize = 14;
/// Columns of C per register tile (two 16-lane vectors).
pub const NR: usize = 32;
/// Rows of B packed at a time. A `KC x NR` strip is 32 KiB: it streams from L2 with the
/// prefetches below, while the tile's panel of A (14 KiB) stays in L1 ([`sgemm_prepacked`]
/// does not block k: with a recurrent layer's k of 128-512 its panels are 7-28 KiB). 256 measured 1.1-1.2x
/// 128 where k is 512 or more (fewer passes over C), the same elsewhere.
const KC: usize = 256;
/// How far ahead in a B strip (in floats: eight steps of k) the tile prefetches into L1.
/// Prefetching measured 1.1-1.2x on the transformer's and LSTM's shapes.
const PF: usize = NR * 8;
/// A stored transposed with a column stride above this is copied panel by panel: each of its
/// `KC` steps of k would otherwise touch a new cache line (and, from a stride of 1024, a new
/// page), for every strip of B.
const FAR: isize = 64;

thread_local! {
    /// Whether this thread's products hand their row panels to the pool ([`share_panels`]).
    static SHARE_PANELS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's products ([`sgemm`] and [`sgemm_prepacked`]) splitting their
/// row panels into tasks of the current rayon pool, so that a thread which has finished its own
/// work takes some of them (every worker of `parallel::run_on_slices` runs in it). A training
/// step's two halves take the same work but often not the same time (one core slowed by the
/// machine); this evens them out. Each panel of C (within a block of k) is computed whole, by
/// one thread, in the same order, and each block waits for all its panels: the same bits
/// whichever thread computes them. Only for work that holds no lock and needs no particular
/// thread while it waits for its panels (a waiting thread may run other tasks of the pool).
pub fn share_panels<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the flag however `f` ends (a pool thread outlives a panicking task).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SHARE_PANELS.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SHARE_PANELS.with(|s| s.replace(true)));
    f()
}

thread_local! {
    /// Per thread: the packed block of B of its current product.
    static PACK: RefCell<AVec<f32>> = RefCell::new(AVec::default());
    /// Per thread: the copied panel of A, taken by whichever thread computes a panel.
    static PACK_A: RefCell<AVec<f32>> = RefCell::new(AVec::default());
}

/// Whether this CPU runs the AVX-512 kernel (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::env::var_os("SEQCALC_NO_AVX512").is_none() && is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// C = alpha * A @ B + beta * C with arbitrary strides, as `matrixmultiply::sgemm`.
///
/// # Safety
/// The pointers and strides must describe valid matrices; C must not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    #[cfg(target_arch = "x86_64")]
    if available() && csc == 1 && m > 0 && n > 0 && k > 0 {
        PACK.with(|p| {
            // (A thread waiting for its panels runs other tasks of the pool: with more threads
            // than halves of a batch, another half's whole slice, whose products then find this
            // buffer taken and pack into a fresh one.)
            let mut fresh = AVec::default();
            let mut held = p.try_borrow_mut();
            let pack_b = match &mut held {
                Ok(pb) => &mut **pb,
                Err(_) => &mut fresh,
            };
            sgemm_avx512(
                m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, pack_b,
            )
        });
        return;
    }
    matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
}

/// `C (+)= A @ B` (accumulate when `accumulate`, else overwrite) for a B packed once and reused
/// (a recurrent layer's weights, `packed::PackedB`): `NR`-column strips of all `k` rows, strip
/// `s` at `packed + s k NR`, the last zero-padded. A is row-major `[m, k]` (row stride `lda`),
/// C row-major `[m, n]` (row stride `ldc`). The same tiles and prefetches as [`sgemm`], with `k`
/// in one block; each element of C is summed over k in increasing order.
///
/// # Safety
/// The CPU must have AVX-512 ([`available`]); the pointers must describe valid matrices of
/// those shapes (`packed` holds `n.div_ceil(NR) * k * NR` values); C must not overlap A or B.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn sgemm_prepacked(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    lda: usize,
    packed: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                std::ptr::write_bytes(c.add(i * ldc), 0, n);
            }
        }
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    // (As addresses, for the pool's tasks.)
    let (a, packed, c) = (a as usize, packed as usize, c as usize);
    let panel = |pi: usize| {
        let i = pi * MR;
        let (a, c) = (a as *const f32, c as *mut f32);
        // SAFETY: as the caller's (each panel writes its own rows of C).
        unsafe {
            panel_times_strips(
                true,
                MR.min(m - i),
                k,
                1.0,
                a.add(i * lda),
                lda as isize,
                packed as *const f32,
                n,
                true,
                beta,
                c.add(i * ldc),
                ldc as isize,
            )
        }
    };
    let panels = m.div_ceil(MR);
    if panels > 1 && SHARE_PANELS.with(|s| s.get()) {
        use rayon::prelude::*;
        (0..panels).into_par_iter().with_max_len(1).for_each(panel);
    } else {
        (0..panels).for_each(panel);
    }
}

/// The tiles of one panel of C (`rows` rows): that panel of A (see [`tile`] for `ka` and
/// `ROWS`, here `a_rows`) times every strip of a block of B packed in strips of `kc` rows of k
/// (strip `s` at `strips + s kc NR`), `n` columns in all.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn panel_times_strips(
    a_rows: bool,
    rows: usize,
    kc: usize,
    alpha: f32,
    a_panel: *const f32,
    ka: isize,
    strips: *const f32,
    n: usize,
    first: bool,
    beta: f32,
    c_panel: *mut f32,
    rsc: isize,
) {
    let mut j = 0;
    while j < n {
        let (cols, b_strip, c_tile) = (NR.min(n - j), strips.add(j * kc), c_panel.add(j));
        if a_rows {
            any_tile::<true>(
                rows, kc, alpha, a_panel, ka, b_strip, first, beta, c_tile, rsc, cols,
            );
        } else {
            any_tile::<false>(
                rows, kc, alpha, a_panel, ka, b_strip, first, beta, c_tile, rsc, cols,
            );
        }
        j += NR;
    }
}

/// Blocks over k; packs each `KC`-row block of B into `NR`-column strips (the last padded with
/// zeros), then runs the register tiles over C.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn sgemm_avx512(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    pack: &mut AVec<f32>,
) {
    let np = n.div_ceil(NR) * NR;
    // A is read in place when it is row-major (each row's values adjacent over k) or stored
    // transposed with a short stride (a panel's values of one k adjacent); transposed with a
    // stride above `FAR`, and other strides, it is copied panel by panel, k-major, `MR` values
    // per k.
    let a_rows = csa == 1 && rsa != 1;
    let a_copied = !(a_rows || (rsa == 1 && csa <= FAR));
    grow(pack, KC.min(k) * np);
    let panels = m.div_ceil(MR);
    let shared = panels > 1 && SHARE_PANELS.with(|s| s.get());
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        pack_block(
            b.offset(k0 as isize * rsb),
            rsb,
            csb,
            kc,
            n,
            &mut pack[..kc * np],
        );
        let blk = Block {
            m,
            kc,
            n,
            alpha,
            a: a.offset(k0 as isize * csa),
            rsa,
            csa,
            a_rows,
            a_copied,
            strips: pack.as_ptr(),
            // The first block applies beta; later ones add to C.
            first: k0 == 0,
            beta,
            c,
            rsc,
        };
        if shared {
            use rayon::prelude::*;
            (0..panels).into_par_iter().with_max_len(1).for_each(|pi| {
                PACK_A.with(|pa| blk.panel(pi * MR, &mut pa.borrow_mut()));
            });
        } else {
            PACK_A.with(|pa| {
                let pa = &mut pa.borrow_mut();
                for pi in 0..panels {
                    blk.panel(pi * MR, pa);
                }
            });
        }
        k0 += kc;
    }
}

/// One block of k of a general product, its B packed: each row panel of C is computed by
/// [`Block::panel`], on any thread.
#[cfg(target_arch = "x86_64")]
struct Block {
    m: usize,
    kc: usize,
    n: usize,
    alpha: f32,
    /// A's first value of this block of k.
    a: *const f32,
    rsa: isize,
    csa: isize,
    a_rows: bool,
    a_copied: bool,
    strips: *const f32,
    first: bool,
    beta: f32,
    c: *mut f32,
    rsc: isize,
}

// SAFETY: a Block is shared only while the call that made it waits for its panels; each
// panel writes its own rows of C and reads A and the packed B.
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Block {}

#[cfg(target_arch = "x86_64")]
impl Block {
    /// The row panel of C from row `i`, A copied into `pack_a` first where it must be.
    #[target_feature(enable = "avx512f")]
    unsafe fn panel(&self, i: usize, pack_a: &mut AVec<f32>) {
        let (kc, rsa, csa) = (self.kc, self.rsa, self.csa);
        let rows = MR.min(self.m - i);
        let mut a_panel = self.a.offset(i as isize * rsa);
        // The tile's step through A: along k (A transposed), or between rows (row-major).
        let mut ka = if self.a_rows { rsa } else { csa };
        if self.a_copied {
            grow(pack_a, KC * MR);
            if rsa == 1 {
                // Each k's `rows` values are adjacent: one masked copy per k.
                let mask = masks(rows).0;
                for kk in 0..kc {
                    let v = _mm512_maskz_loadu_ps(mask, a_panel.offset(kk as isize * csa));
                    _mm512_mask_storeu_ps(pack_a.as_mut_ptr().add(kk * MR), mask, v);
                }
            } else {
                for r in 0..rows {
                    let src = a_panel.offset(r as isize * rsa);
                    for kk in 0..kc {
                        pack_a[kk * MR + r] = *src.offset(kk as isize * csa);
                    }
                }
            }
            (a_panel, ka) = (pack_a.as_ptr(), MR as isize);
        }
        panel_times_strips(
            self.a_rows,
            rows,
            kc,
            self.alpha,
            a_panel,
            ka,
            self.strips,
            self.n,
            self.first,
            self.beta,
            self.c.offset(i as isize * self.rsc),
            self.rsc,
        );
    }
}

/// Makes `buf` at least `len` long. It never shrinks: calls of other shapes alternate on
/// one thread, and `resize` down then up zeroed the buffer again each time (a memset per
/// call, 1% of an LSTM step); the packing overwrites what it uses.
fn grow(buf: &mut AVec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// Packs `kc` rows of B (`b` points at the first; strides `rsb`, `csb`) into `NR`-column
/// strips: strip `s` holds its `kc` rows of `NR` values one after the other, so a tile streams
/// one contiguous block; the last strip's columns past `n` are zeros. Every value of `out`
/// (`kc * n.div_ceil(NR) * NR`) is written.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_block(b: *const f32, rsb: isize, csb: isize, kc: usize, n: usize, out: &mut [f32]) {
    let np = n.div_ceil(NR) * NR;
    assert!(out.len() >= kc * np);
    for (s, strip) in out[..kc * np].chunks_exact_mut(kc * NR).enumerate() {
        let (j0, w) = (s * NR, NR.min(n - s * NR));
        let src = b.offset(j0 as isize * csb);
        if csb == 1 {
            // Two masked vector copies per row (a call to memmove per 128 bytes cost 4% of a
            // transformer step); the padding columns load as zeros.
            let (m0, m1) = masks(w);
            for (kk, row) in strip.chunks_exact_mut(NR).enumerate() {
                let from = src.offset(kk as isize * rsb);
                let to = row.as_mut_ptr();
                _mm512_storeu_ps(to, _mm512_maskz_loadu_ps(m0, from));
                let hi = if m1 == 0 {
                    _mm512_setzero_ps()
                } else {
                    _mm512_maskz_loadu_ps(m1, from.add(16))
                };
                _mm512_storeu_ps(to.add(16), hi);
            }
        } else if rsb == 1 {
            pack_transposed(src, csb, w, kc, strip);
        } else {
            for jj in 0..w {
                let col = src.offset(jj as isize * csb);
                for (kk, row) in strip.chunks_exact_mut(NR).enumerate() {
                    row[jj] = *col.offset(kk as isize * rsb);
                }
            }
            if w < NR {
                for row in strip.chunks_exact_mut(NR) {
                    row[w..].fill(0.0);
                }
            }
        }
    }
}

/// `B` (`[k, n]`, strides `rsb`, `csb`) packed the way [`sgemm_prepacked`] reads it: `NR`-column
/// strips of all `k` rows, the last zero-padded; `out` holds `k * n.div_ceil(NR) * NR` values,
/// all of which are written.
///
/// # Safety
/// The CPU must have AVX-512 ([`available`]); `b` and the strides must describe a valid matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn pack_strips(
    b: *const f32,
    rsb: isize,
    csb: isize,
    k: usize,
    n: usize,
    out: &mut [f32],
) {
    pack_block(b, rsb, csb, k, n, out)
}

/// Packs one strip from B stored transposed (`rsb == 1`: each column of B, a row of B^T, has
/// its values of consecutive k adjacent) in 16 x 16 blocks transposed in registers: `w`
/// columns from `src` (column `j` at `src + j csb`), `kc` values of k. Columns past `w` pack
/// as zeros. A scalar copy made the attention's `Q K^T` run at a quarter of the kernel's speed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_transposed(src: *const f32, csb: isize, w: usize, kc: usize, strip: &mut [f32]) {
    assert!(strip.len() >= kc * NR && w <= NR);
    let mut kk0 = 0;
    while kk0 < kc {
        let kw = 16.min(kc - kk0);
        let kmask = ((1u32 << kw) - 1) as __mmask16;
        for jj0 in [0, 16] {
            let mut r = [_mm512_setzero_ps(); 16];
            for (jj, v) in r.iter_mut().enumerate().take(w.saturating_sub(jj0)) {
                *v = _mm512_maskz_loadu_ps(
                    kmask,
                    src.offset((jj0 + jj) as isize * csb + kk0 as isize),
                );
            }
            transpose16(&mut r);
            for (kk, v) in r.iter().take(kw).enumerate() {
                _mm512_storeu_ps(strip.as_mut_ptr().add((kk0 + kk) * NR + jj0), *v);
            }
        }
        kk0 += 16;
    }
}

/// Transposes a 16 x 16 block held as 16 row vectors: afterwards `r[c]` holds column `c`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: &mut [__m512; 16]) {
    // Pairs of rows interleaved by element, then by pairs of elements (within 128-bit lanes),
    // then 128-bit lanes exchanged twice.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut v = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        v[j] = _mm512_shuffle_f32x4::<0x88>(u[j], u[j + 4]);
        v[j + 4] = _mm512_shuffle_f32x4::<0xDD>(u[j], u[j + 4]);
        v[j + 8] = _mm512_shuffle_f32x4::<0x88>(u[j + 8], u[j + 12]);
        v[j + 12] = _mm512_shuffle_f32x4::<0xDD>(u[j + 8], u[j + 12]);
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(v[j], v[j + 8]);
        r[j + 8] = _mm512_shuffle_f32x4::<0xDD>(v[j], v[j + 8]);
    }
}

/// Lane masks of the two vectors of a tile with `cols` valid columns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(cols: usize) -> (__mmask16, __mmask16) {
    let lo = if cols >= 16 {
        0xffff
    } else {
        ((1u32 << cols) - 1) as u16
    };
    let hi = if cols >= 32 {
        0xffff
    } else if cols > 16 {
        ((1u32 << (cols - 16)) - 1) as u16
    } else {
        0
    };
    (lo, hi)
}

/// One `R x 32` tile of C over `kc` steps of k (`R x 16` without `WIDE`, for a tile of at most
/// 16 columns: a narrow C, or the last strip of a wider one), B a packed strip (`NR` values per k). Without `ROWS`, A's `R` values of one k are
/// adjacent and the next k's are `ka` further on (A stored transposed, or packed); with `ROWS`,
/// each row's values are adjacent over k and the next row is `ka` further on (A row-major).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize, const ROWS: bool, const WIDE: bool>(
    kc: usize,
    alpha: f32,
    a: *const f32,
    ka: isize,
    b: *const f32,
    first: bool,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    cols: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut bp = b;
    if ROWS {
        let mut rows = [a; R];
        for (r, p) in rows.iter_mut().enumerate() {
            *p = a.offset(r as isize * ka);
        }
        for kk in 0..kc {
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PF) as *const i8);
            if WIDE {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PF + 16) as *const i8);
            }
            let b0 = _mm512_loadu_ps(bp);
            let b1 = if WIDE {
                _mm512_loadu_ps(bp.add(16))
            } else {
                b0
            };
            for (acc_r, p) in acc.iter_mut().zip(&rows) {
                let av = _mm512_set1_ps(*p.add(kk));
                acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                if WIDE {
                    acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
                }
            }
            bp = bp.add(NR);
        }
    } else {
        let mut ap = a;
        for _ in 0..kc {
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PF) as *const i8);
            if WIDE {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PF + 16) as *const i8);
            }
            let b0 = _mm512_loadu_ps(bp);
            let b1 = if WIDE {
                _mm512_loadu_ps(bp.add(16))
            } else {
                b0
            };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
                if WIDE {
                    acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
                }
            }
            bp = bp.add(NR);
            ap = ap.offset(ka);
        }
    }
    store::<R>(&acc, alpha, first, beta, c, rsc, cols);
}

/// Writes a tile back: `C = alpha * acc + beta * C` on the first k block, `C += alpha * acc`
/// after it. Never reads C when beta is 0 on the first block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const R: usize>(
    acc: &[[__m512; 2]; R],
    alpha: f32,
    first: bool,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    cols: usize,
) {
    let (m0, m1) = masks(cols);
    let av = _mm512_set1_ps(alpha);
    let scale = if first { beta } else { 1.0 };
    let bv = _mm512_set1_ps(scale);
    for (r, acc_r) in acc.iter().enumerate() {
        let row = c.offset(r as isize * rsc);
        for (h, (&mask, &x)) in [m0, m1].iter().zip(acc_r).enumerate() {
            if mask == 0 {
                continue;
            }
            let p = row.add(16 * h);
            let v = if scale == 0.0 {
                _mm512_mul_ps(av, x)
            } else {
                let old = _mm512_maskz_loadu_ps(mask, p);
                _mm512_fmadd_ps(av, x, _mm512_mul_ps(bv, old))
            };
            _mm512_mask_storeu_ps(p, mask, v);
        }
    }
}

/// A tile of `rows` (1..=`MR`) rows of C: [`tile`] for that row count (the last panel of C may
/// have fewer than `MR`). B is a packed strip, `NR` values per k.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn any_tile<const ROWS: bool>(
    rows: usize,
    kc: usize,
    alpha: f32,
    a: *const f32,
    ka: isize,
    b: *const f32,
    first: bool,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    cols: usize,
) {
    // A tile of at most 16 columns (a softmax head's few classes) runs one vector's
    // multiply-adds per row instead of two, half of them on masked-off columns.
    macro_rules! go {
        ($($r:literal)*) => {
            match (rows, cols > 16) {
                $(($r, true) => tile::<$r, ROWS, true>(kc, alpha, a, ka, b, first, beta, c, rsc, cols),)*
                $(($r, false) => tile::<$r, ROWS, false>(kc, alpha, a, ka, b, first, beta, c, rsc, cols),)*
                _ => unreachable!("a tile has 1..={MR} rows"),
            }
        };
    }
    const _: () = assert!(MR == 14, "any_tile lists the row counts 1..=MR");
    go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
}

#[cfg(test)]
mod tests;
