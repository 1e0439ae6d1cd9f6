//! The compute core: layers with forward and backward side by side, on GEMMs (our AVX-512
//! kernel in `sgemm` where the CPU has it, `matrixmultiply` elsewhere and for f64).
//!
//! Shape letters used throughout: `B` batch (rows of one worker's slice), `T` time steps,
//! `I` input features, `H` hidden units, `G` gates per cell (LSTM 4, GRU 3, SimpleRNN 1),
//! `V` vocabulary size. Activations are time-major (`[T, B, ·]`) so one step is contiguous.
//! Weights use PyTorch's layout and names (`weight_ih` is `[G*H, I]`, `weight_hh` is `[G*H, H]`)
//! and Keras's semantics and initialisation.
//!
//! Every kernel is generic over [`Real`] so the same code runs in f32 for speed and in f64 for
//! finite-difference gradient checks.

// Before the modules, which use it.
/// Generates `$name` (run-time dispatch) from the generic kernel `$generic`: compiled three
/// times, for the baseline target, with AVX2 and with AVX-512 (chosen at run time by
/// [`simd_level`]), so all give the same bits: the kernels are elementwise or reduce in a fixed
/// order, which the compiler does not reassociate; it never fuses a multiply and an add on its
/// own, and the fused multiply-adds the code asks for (`mul_add`) round once everywhere (an FMA
/// instruction at the AVX2 and AVX-512 levels, compiler-builtins' correctly rounded software
/// `fmaf` at the baseline, much slower: the baseline level is for CPUs without AVX2 and FMA and
/// for `SEQCALC_KERNEL=generic`). The generic
/// kernel should be `#[inline(always)]` and take each output as its own slice (distinct `&mut`
/// arguments are what let its loops vectorise).
macro_rules! simd_dispatch {
    ($vis:vis $name:ident, $avx512:ident, $avx2:ident, $generic:ident, ($($arg:ident: $ty:ty),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $avx2<R: Real>($($arg: $ty),*) {
            $generic($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $avx512<R: Real>($($arg: $ty),*) {
            $generic($($arg),*)
        }

        #[inline]
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<R: Real>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                match $crate::nn::simd_level() {
                    // SAFETY: `simd_level` reports only instruction sets this CPU has.
                    $crate::nn::SimdLevel::Avx512 => return unsafe { $avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::nn::SimdLevel::Avx2 => return unsafe { $avx2($($arg),*) },
                    $crate::nn::SimdLevel::Baseline => {}
                }
            }
            $generic($($arg),*)
        }
    };
}

/// Tests: runs one compilation of a `simd_dispatch!` kernel, the baseline's, the AVX2 one or
/// the AVX-512 one (`$level`, a [`SimdLevel`] from [`wider_levels`] or `Baseline`).
#[cfg(all(test, target_arch = "x86_64"))]
macro_rules! at_level {
    ($level:expr, $base:ident, $avx2:ident, $avx512:ident, ($($arg:expr),* $(,)?)) => {
        match $level {
            $crate::nn::SimdLevel::Baseline => $base($($arg),*),
            // SAFETY: `wider_levels` lists only what this CPU runs.
            $crate::nn::SimdLevel::Avx2 => unsafe { $avx2($($arg),*) },
            // SAFETY: as above.
            $crate::nn::SimdLevel::Avx512 => unsafe { $avx512($($arg),*) },
        }
    };
}

/// Tests: the SIMD levels this CPU runs besides the baseline, to compare their bits with it.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn wider_levels() -> Vec<SimdLevel> {
    let mut levels = Vec::new();
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        levels.push(SimdLevel::Avx2);
        if is_x86_feature_detected!("avx512f") {
            levels.push(SimdLevel::Avx512);
        }
    }
    levels
}

/// The instruction set the elementwise kernels (`simd_dispatch!`) run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    Avx512,
    Avx2,
    Baseline,
}

/// The widest instruction set this CPU has, checked once, lowered by the same switches as the
/// GEMMs (for benchmarks): `SEQCALC_NO_AVX512` (no AVX-512), `SEQCALC_KERNEL=avx2` or
/// `SEQCALC_KERNEL=generic`. Every level gives the same bits.
pub fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let kernel = std::env::var("SEQCALC_KERNEL");
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if kernel.as_deref() == Ok("generic") || !avx2 {
                return SimdLevel::Baseline;
            }
            if kernel.as_deref() != Ok("avx2") && sgemm::available() {
                return SimdLevel::Avx512;
            }
            SimdLevel::Avx2
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            SimdLevel::Baseline
        }
    })
}

pub mod act;
pub mod attention;
pub mod avec;
pub mod dense;
pub mod embedding;
pub mod ffn;
pub mod gemm;
pub mod loss;
pub mod mha;
pub mod norm;
pub mod packed;
pub mod params;
pub mod reference;
pub mod rnn;
pub mod sgemm;
pub mod transformer;

#[cfg(test)]
pub(crate) mod gradcheck;

/// Makes this thread flush subnormal floats to zero (x86 MXCSR FTZ and DAZ).
///
/// Gradients that fade through hundreds of steps (the pq-system's 2001) end up subnormal, and on
/// this machine a GEMM over subnormal inputs ran 60-100x slower (0.18 s against 10.9 s for the
/// same product): one pq-system epoch took half an hour instead of four minutes. Flushing changes
/// only values below 1.2e-38 (f32) or 2.2e-308 (f64), identically on every run, so results
/// stay deterministic. Every thread that runs kernels calls this (the engine's pools do it in
/// their start handler).
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads and writes this thread's MXCSR; setting FTZ (bit 15) and DAZ (bit 6) is
    // valid on every x86-64 CPU with SSE2 (DAZ on all but the earliest, which x86-64 excludes).
    unsafe {
        let mut csr: u32 = 0;
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr |= 0x8040;
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
    }
}

/// Runs `f` with subnormals flushed on this thread (as [`flush_denormals`]), then puts the
/// thread's floating-point mode back as it was: for a thread the caller owns, such as the one
/// a Python interpreter calls in on.
pub fn with_flushed_denormals<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// Restores the saved MXCSR, however `f` ends.
        struct Restore(u32);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: writes back the value read from this thread's MXCSR below.
                unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack)) };
            }
        }
        let mut csr: u32 = 0;
        // SAFETY: reads this thread's MXCSR.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
        let _restore = Restore(csr);
        flush_denormals();
        f()
    }
    #[cfg(not(target_arch = "x86_64"))]
    f()
}

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar the kernels run on (f32 in training, f64 in gradient checks).
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + Debug
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    /// tanh, allowed to be a fast approximation (f32: a rational approximation, |err| < 1e-6).
    fn tanh_fast(self) -> Self;
    /// exp, allowed to be a fast approximation (f32: a polynomial, relative error < 3e-7, 0
    /// below -87.3 and about 2.2e38 above 88.3, where `f32::exp` is infinite).
    fn exp_fast(self) -> Self;
    /// C = alpha * A @ B + beta * C with arbitrary strides (as `matrixmultiply::sgemm`).
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-overlapping (for C) matrices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// Four `tanh_fast` at once (f32: one division for the four, see
    /// [`act::tanh_rational4`]).
    #[inline(always)]
    fn tanh4_fast(x: [Self; 4]) -> [Self; 4] {
        x.map(Self::tanh_fast)
    }

    /// sigmoid via tanh: 0.5 * tanh(0.5 x) + 0.5 (numerically safe for any x).
    #[inline(always)]
    fn sigmoid_fast(self) -> Self {
        let half = Self::from_f64(0.5);
        half * (half * self).tanh_fast() + half
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> f32 {
        f32::ln(self)
    }
    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn tanh_fast(self) -> f32 {
        act::tanh_rational(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> f32 {
        act::exp_poly(self)
    }
    #[inline(always)]
    fn tanh4_fast(x: [f32; 4]) -> [f32; 4] {
        act::tanh_rational4(x)
    }
    unsafe fn gemm_raw(
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
        sgemm::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> f64 {
        f64::ln(self)
    }
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn tanh_fast(self) -> f64 {
        f64::tanh(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> f64 {
        self.exp()
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnormals_flush_to_zero() {
        super::flush_denormals();
        let tiny = std::hint::black_box(1e-40f32);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(tiny * std::hint::black_box(1.0f32), 0.0);
        let normal = std::hint::black_box(1e-30f32);
        assert!(normal * std::hint::black_box(1.0f32) > 0.0);
    }
}
