//! Tests of `sgemm`.

use super::*;
use rand::{Rng, SeedableRng};

/// C = alpha A B + beta C in f64, from the same strided operands.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &[f32],
    rsc: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; c.len()];
    for (idx, o) in out.iter_mut().enumerate() {
        *o = c[idx] as f64;
    }
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|p| a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64)
                .sum();
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * rsc + j] as f64
            };
            out[i * rsc + j] = alpha as f64 * s + old;
        }
    }
    out
}

/// Panels handed to a pool ([`share_panels`]) give the bits of one thread's loop: a general
/// product with A copied panel by panel over two blocks of k, and a prepacked one.
#[cfg(target_arch = "x86_64")]
#[test]
fn shared_panels_give_the_bits_of_one_thread() {
    if !available() {
        return;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut fill =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (m, k, n) = (100, 300, 70);
    // A stored transposed with a stride above FAR: copied panel by panel.
    let (a, b) = (fill(m * k), fill(k * n));
    let general = |c: &mut Vec<f32>| unsafe {
        sgemm(
            m,
            k,
            n,
            0.5,
            a.as_ptr(),
            1,
            m as isize,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    let (pm, pk, pn) = (64, 128, 512);
    let (pa, pb) = (fill(pm * pk), fill(pk * pn));
    let mut packed = AVec::default();
    packed.resize(pk * pn, 0.0);
    unsafe { pack_strips(pb.as_ptr(), pn as isize, 1, pk, pn, &mut packed) };
    let prepacked = |c: &mut Vec<f32>| unsafe {
        sgemm_prepacked(
            pm,
            pk,
            pn,
            pa.as_ptr(),
            pk,
            packed.as_ptr(),
            c.as_mut_ptr(),
            pn,
            false,
        )
    };
    let (mut one_g, mut one_p) = (vec![0.0; m * n], vec![0.0; pm * pn]);
    general(&mut one_g);
    prepacked(&mut one_p);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (mut sh_g, mut sh_p) = (vec![0.0; m * n], vec![0.0; pm * pn]);
    pool.install(|| {
        share_panels(|| {
            general(&mut sh_g);
            prepacked(&mut sh_p);
        })
    });
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one_g), bits(&sh_g));
    assert_eq!(bits(&one_p), bits(&sh_p));
    assert!(one_p.iter().all(|x| x.is_finite() && *x != 0.0));
}

#[test]
fn matches_a_float64_product_for_every_layout_and_edge() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let shapes = [
        (1, 1, 1),
        (14, 256, 32),
        (15, 257, 33),
        (3, 600, 70),
        (29, 31, 17),
        (40, 520, 96),
        (13, 5, 50),
        // Transposed A with more than `FAR` rows is copied panel by panel.
        (70, 300, 40),
        (129, 513, 20),
        // At most 16 columns: one vector per tile row.
        (40, 130, 12),
        (15, 20, 16),
    ];
    for &(m, k, n) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                // C has a wider row stride than n, with NaN in the gap: never touched.
                let rsc = n + 3;
                let mut c: Vec<f32> = (0..m * rsc)
                    .map(|i| {
                        if i % rsc < n {
                            rng.random_range(-1.0..1.0)
                        } else {
                            f32::NAN
                        }
                    })
                    .collect();
                if beta == 0.0 {
                    // beta 0 must not read C: NaN there must not leak.
                    for (i, x) in c.iter_mut().enumerate() {
                        if i % rsc < n {
                            *x = f32::NAN;
                        }
                    }
                }
                let sa = if ta { (1, m) } else { (k, 1) };
                let sb = if tb { (1, k) } else { (n, 1) };
                let want = reference(m, k, n, alpha, &a, sa, &b, sb, beta, &c, rsc);
                unsafe {
                    sgemm(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        sa.0 as isize,
                        sa.1 as isize,
                        b.as_ptr(),
                        sb.0 as isize,
                        sb.1 as isize,
                        beta,
                        c.as_mut_ptr(),
                        rsc as isize,
                        1,
                    );
                }
                for i in 0..m {
                    for j in 0..rsc {
                        let (got, w) = (c[i * rsc + j], want[i * rsc + j]);
                        if j >= n {
                            assert!(got.is_nan(), "gap written at ({i},{j})");
                            continue;
                        }
                        let tol = 1e-5 * (k as f64).sqrt() * (1.0 + w.abs());
                        assert!(
                            (got as f64 - w).abs() <= tol,
                            "{m}x{k}x{n} ta {ta} tb {tb} alpha {alpha} beta {beta} at ({i},{j}): {got} vs {w}"
                        );
                    }
                }
            }
        }
    }
    // The tests also pass where AVX-512 is missing, through matrixmultiply.
    eprintln!("avx512 kernel used: {}", available());
}
