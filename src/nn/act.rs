//! Activations. `tanh_rational` is Eigen's rational approximation of tanh for f32 (a 13/6
//! odd/even polynomial ratio on [-7.9, 7.9], clamped outside, evaluated with fused
//! multiply-adds), branch-free so loops over it vectorise; its reference twin is `f32::tanh`
//! and a test bounds the difference.

/// Fast f32 tanh: |tanh_rational(x) - tanh(x)| < 2e-6 for all finite x (tested).
#[inline(always)]
pub fn tanh_rational(x: f32) -> f32 {
    let (p, q) = tanh_ratio(x);
    p / q
}

/// Four tanh at once with one division instead of four: with each `tanh = p / q`,
/// `r = 1 / (q0 q1 q2 q3)` and `p0 / q0 = p0 (q1 (q2 q3)) r`, and so on. A division costs
/// 10-16 cycles per vector and the multiplies a half each, and an LSTM step's four gates are
/// four such tanh (the sigmoids through `0.5 tanh(x / 2) + 0.5`); the result is within a few
/// ulps of four `tanh_rational` (tested). Each q lies in [4.9e-3, 0.91], so their product
/// neither underflows nor overflows. Only IEEE multiplies and one division: the same bits on
/// every CPU. A NaN in one input makes all four NaN (an LSTM's cell is NaN then anyway).
#[inline(always)]
pub fn tanh_rational4(x: [f32; 4]) -> [f32; 4] {
    let [(p0, q0), (p1, q1), (p2, q2), (p3, q3)] = x.map(tanh_ratio);
    let (q01, q23) = (q0 * q1, q2 * q3);
    let r = 1.0 / (q01 * q23);
    let (r01, r23) = (r * q01, r * q23);
    [
        p0 * (q1 * r23),
        p1 * (q0 * r23),
        p2 * (q3 * r01),
        p3 * (q2 * r01),
    ]
}

/// The numerator and denominator of `tanh_rational(x)`.
#[inline(always)]
fn tanh_ratio(x: f32) -> (f32, f32) {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_5e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    // Horner with fused multiply-adds: half the instructions and half the dependency chain of
    // separate multiplies and adds (1.7x faster over an array with AVX-512). `f32::mul_add`
    // rounds once on every target: an FMA instruction in the AVX2 and AVX-512 kernels, Rust's
    // correctly rounded software `fmaf` (compiler-builtins) in baseline code, which is slow,
    // so hot loops call this only from `simd_dispatch!` kernels. The bits never depend on the
    // CPU.
    let mut p = x2.mul_add(A13, A11);
    p = p.mul_add(x2, A9);
    p = p.mul_add(x2, A7);
    p = p.mul_add(x2, A5);
    p = p.mul_add(x2, A3);
    p = p.mul_add(x2, A1);
    p *= x;
    let mut q = x2.mul_add(B6, B4);
    q = q.mul_add(x2, B2);
    q = q.mul_add(x2, B0);
    (p, q)
}

/// Fast f32 exp (Cephes' `expf`: a Cody-Waite reduction to `[-ln 2 / 2, ln 2 / 2]`, a degree-6
/// polynomial, the power of two put into the exponent bits), branch-free so loops over it
/// vectorise: relative error below 3e-7 against `f32::exp` (tested), and exactly 0 below
/// -87.3 (`f32::exp` turns subnormal near -87.34), so masked logits still get weight 0. Above
/// 88.3 it returns about 2.2e38 rather than infinity (a softmax never gets there).
#[inline(always)]
pub fn exp_poly(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const LO: f32 = -87.3;
    let xc = x.clamp(LO, 88.3);
    let fx = (xc * LOG2E + 0.5).floor();
    let r = xc - fx * C1 - fx * C2;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_2e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5;
    y = y * r * r + r + 1.0;
    let scale = f32::from_bits(((fx as i32 + 127) as u32) << 23);
    if x < LO {
        0.0
    } else {
        y * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Real;

    #[test]
    fn polynomial_exp_matches_std_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.2f32;
        while x <= 88.0 {
            let (got, want) = (exp_poly(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.000_91;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_poly(0.0), 1.0);
        assert_eq!(exp_poly(-1e30), 0.0);
        assert_eq!(exp_poly(-87.5), 0.0);
    }

    #[test]
    fn rational_tanh_matches_std_tanh() {
        let mut worst = 0.0f32;
        let mut x = -20.0f32;
        while x <= 20.0 {
            let d = (tanh_rational(x) - x.tanh()).abs();
            worst = worst.max(d);
            x += 0.000_37;
        }
        assert!(worst < 2e-6, "worst error {worst}");
        assert_eq!(tanh_rational(f32::INFINITY), tanh_rational(1e30));
        assert!(tanh_rational(1e30) <= 1.0 && tanh_rational(-1e30) >= -1.0);
    }

    #[test]
    fn four_tanh_with_one_division_match_four_divisions() {
        let mut worst = 0.0f32;
        let mut x = -9.0f32;
        while x <= 9.0 {
            let xs = [x, -0.37 * x, 0.011 * x, 3.0 * x];
            for (got, &x) in tanh_rational4(xs).iter().zip(&xs) {
                let want = tanh_rational(x);
                worst = worst.max((got - want).abs() / want.abs().max(1e-30));
                assert!((got - x.tanh()).abs() < 2.5e-6, "tanh({x}) = {got}");
            }
            x += 0.000_93;
        }
        // A few ulps (an ulp is 6e-8 relative).
        assert!(worst < 5e-7, "worst relative difference {worst}");
        assert_eq!(tanh_rational4([0.0; 4]), [0.0; 4]);
        let big = tanh_rational4([1e30, -1e30, f32::INFINITY, 20.0]);
        assert!(
            big.iter().all(|v| v.abs() <= 1.0 && v.abs() > 0.999_99),
            "{big:?}"
        );
    }

    #[test]
    fn fast_sigmoid_matches_exact() {
        for i in -4000..4000 {
            let x = i as f32 * 0.01;
            let exact = 1.0 / (1.0 + (-x as f64).exp());
            assert!((x.sigmoid_fast() as f64 - exact).abs() < 2e-6, "{x}");
        }
    }
}
