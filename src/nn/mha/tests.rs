//! Tests of `mha`.

use super::*;
use crate::nn::gradcheck;
use rand::SeedableRng;

/// The attention's score/softmax kernels, forward and backward, compiled for the baseline,
/// AVX2 and AVX-512, give the same bits.
#[test]
#[cfg(target_arch = "x86_64")]
fn score_kernels_give_the_same_bits_at_every_simd_level() {
    use crate::nn::{wider_levels, SimdLevel};
    use rand::Rng;
    let t = 19; // odd: vector bodies and scalar tails both run
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-3.0..3.0)).collect() };
    let (pre0, dp0, hb, ln_k) = (rand(t * t), rand(t * t), rand(BUCKETS), rand(t));
    let kinds: Vec<u8> = (0..t * t)
        .map(|i| {
            let (r, j) = (i / t, i % t);
            if j > r {
                FUTURE
            } else if j != r && (r + j) % 7 == 3 {
                MASKED
            } else {
                ((r * 3 + j) % BUCKETS) as u8
            }
        })
        .collect();
    let c_h = 0.7f32;
    let run = |level: SimdLevel| -> Vec<u32> {
        let (mut pre, mut probs, mut dp) = (pre0.clone(), vec![0.0; t * t], dp0.clone());
        let (mut dbias, mut dc) = ([0.0f32; BUCKETS], 0.0f32);
        at_level!(
            level,
            scores_to_probs_generic,
            scores_to_probs_avx2,
            scores_to_probs_avx512,
            (&mut pre, &mut probs, &kinds, &hb, &ln_k, c_h, t, 0)
        );
        at_level!(
            level,
            probs_backward_generic,
            probs_backward_avx2,
            probs_backward_avx512,
            (&mut dp, &probs, &pre, &kinds, &ln_k, c_h, t, 0, &mut dbias, &mut dc)
        );
        let mut all = [pre, probs, dp, dbias.to_vec()].concat();
        all.push(dc);
        all.iter().map(|v| v.to_bits()).collect()
    };
    let base = run(SimdLevel::Baseline);
    assert!(base.iter().any(|&v| v != 0));
    for level in wider_levels() {
        assert!(run(level) == base, "{level:?} differs from the baseline");
    }
}

fn setup(seed: u64) -> (RelSelfAttention, Vec<f64>, rand_chacha::ChaCha8Rng) {
    let mut layout = ParamLayout::default();
    let a = RelSelfAttention::new(&mut layout, "blocks.0", 6, 2);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0.0f64; layout.total];
    a.init(&mut p, &mut rng, 0.5);
    for r in [a.bias, a.c] {
        for v in r.of_mut(&mut p) {
            *v = rng.random_range(-1.0..1.0);
        }
    }
    (a, p, rng)
}

#[test]
fn windows_see_near_keys_and_unpositioned_tokens() {
    assert!(sees(None, 10, 900));
    assert!(sees(Some(2), 10, 12) && sees(Some(2), 10, 8) && !sees(Some(2), 10, 13));
    assert!(sees(Some(2), 10, NO_POSITION) && sees(Some(2), NO_POSITION, 900));
    let ps = [NO_POSITION, 5, 1, 6, 9, 6];
    assert_eq!(ln_keys::<f64>(None, &ps, 4), 5f64.ln());
    // Row 5 (position 6) sees BOS, 5, 6 and itself: not 1 or 9.
    assert_eq!(ln_keys::<f64>(Some(1), &ps, 5), 4f64.ln());
}

#[test]
fn buckets_clip_and_separate_unpositioned_tokens() {
    assert_eq!(bucket(10, 3), 0);
    assert_eq!(bucket(10, 9), 1);
    assert_eq!(bucket(10, 10), 2);
    assert_eq!(bucket(10, 11), 3);
    assert_eq!(bucket(10, 900), 4);
    assert_eq!(bucket(10, NO_POSITION), SPECIAL_BUCKET);
    assert_eq!(bucket(NO_POSITION, 3), SPECIAL_BUCKET);
}

#[test]
fn attention_gradients_match_finite_differences() {
    let (a, p, mut rng) = setup(21);
    let (n, t) = (2, 7);
    for (q_from, window, levels) in [
        (0, None, false),
        (3, None, false),
        (0, Some(1), false),
        (3, Some(1), false),
        (0, Some(1), true),
        (2, Some(1), true),
    ] {
        let a = RelSelfAttention {
            window,
            ..a.clone()
        };
        let tq = t - q_from;
        let h: Vec<f64> = (0..n * t * 6)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let pos: Vec<u32> = (0..n * t)
            .map(|k| {
                if k % t == 0 {
                    NO_POSITION
                } else if levels {
                    two_level(k)
                } else {
                    (k % 5) as u32
                }
            })
            .collect();
        let w: Vec<f64> = (0..n * tq * 6)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let loss = |pp: &[f64], hh: &[f64]| {
            let mut out = vec![0.0; n * tq * 6];
            a.forward(
                pp,
                hh,
                &pos,
                n,
                t,
                q_from,
                &mut MhaCache::default(),
                &mut out,
            );
            out.iter().zip(&w).map(|(x, y)| x * y).sum::<f64>()
        };
        let mut c = MhaCache::default();
        let mut out = vec![0.0; n * tq * 6];
        a.forward(&p, &h, &pos, n, t, q_from, &mut c, &mut out);
        let mut grad = vec![0.0; p.len()];
        let mut dh = vec![0.0; h.len()];
        a.backward(&p, &h, n, t, q_from, &mut c, &w, &mut grad, &mut dh);
        let all = |len| gradcheck::sample_indices(len, 1);
        gradcheck::check(
            &p,
            &grad,
            &all(p.len()),
            // Windowed rows have fewer keys and some gradients near 1e-5, where central
            // differences carry about 1e-10 of rounding.
            if window.is_some() { 1e-5 } else { 1e-6 },
            |pp| loss(pp, &h),
            "mha params",
        );
        gradcheck::check(&h, &dh, &all(h.len()), 1e-6, |hh| loss(&p, hh), "mha input");
        // The causal mask: no weight above the diagonal; the window: none outside it.
        for r in 0..tq {
            let i = q_from + r;
            let row = &c.probs[r * t..(r + 1) * t];
            assert!(row[i + 1..].iter().all(|&x| x == 0.0));
            assert!((row[..=i].iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for (j, &x) in row[..=i].iter().enumerate() {
                assert_eq!(
                    x == 0.0,
                    !sees(window, pos[i], pos[j]),
                    "{window:?} {i} {j}"
                );
            }
        }
    }
}

#[test]
fn fast_attention_matches_its_reference_twin() {
    let (a, p, mut rng) = setup(23);
    let (n, t, d) = (3, 11, 6);
    for (q_from, window, levels) in [
        (0, None, false),
        (4, None, false),
        (4, Some(1), false),
        (7, Some(2), false),
        (0, Some(1), true),
        (5, Some(2), true),
    ] {
        let a = RelSelfAttention {
            window,
            ..a.clone()
        };
        let tq = t - q_from;
        let h: Vec<f64> = (0..n * t * d)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let pos: Vec<u32> = (0..n * t)
            .map(|k| match k % t {
                0 => NO_POSITION,
                j if levels => two_level(k * 3 + j),
                j => (j * 5 % 7) as u32,
            })
            .collect();
        let dout: Vec<f64> = (0..n * tq * d)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let run = |fast: bool| {
            let mut c = MhaCache::default();
            let mut out = vec![0.0; n * tq * d];
            let mut grad = vec![0.0; p.len()];
            // dh accumulates: start from ones.
            let mut dh = vec![1.0; h.len()];
            if fast {
                a.forward(&p, &h, &pos, n, t, q_from, &mut c, &mut out);
                a.backward(&p, &h, n, t, q_from, &mut c, &dout, &mut grad, &mut dh);
            } else {
                a.forward_ref(&p, &h, &pos, n, t, q_from, &mut c, &mut out);
                a.backward_ref(
                    &p, &h, &pos, n, t, q_from, &mut c, &dout, &mut grad, &mut dh,
                );
            }
            (out, grad, dh, c.probs[..n * a.heads * tq * t].to_vec())
        };
        // The f32 fast path (seqcalc's sgemm on strided views) against the f64 reference.
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let single = {
            let mut c = MhaCache::default();
            let mut out = vec![0.0f32; n * tq * d];
            let (p, h) = (f32s(&p), f32s(&h));
            let mut grad = vec![0.0f32; p.len()];
            let mut dh = vec![1.0f32; h.len()];
            a.forward(&p, &h, &pos, n, t, q_from, &mut c, &mut out);
            a.backward(
                &p,
                &h,
                n,
                t,
                q_from,
                &mut c,
                &f32s(&dout),
                &mut grad,
                &mut dh,
            );
            let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let probs = f64s(&c.probs[..n * a.heads * tq * t]);
            (f64s(&out), f64s(&grad), f64s(&dh), probs)
        };
        let (fast, slow) = (run(true), run(false));
        for (tol, got) in [(1e-12, &fast), (1e-4, &single)] {
            for (name, x, y) in [
                ("out", &got.0, &slow.0),
                ("grad", &got.1, &slow.1),
                ("dh", &got.2, &slow.2),
                ("probs", &got.3, &slow.3),
            ] {
                for (k, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                    assert!(
                        (u - v).abs() <= tol * (1.0 + v.abs()),
                        "{name}[{k}] q_from {q_from} {window:?} tol {tol}: {u} vs {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn incremental_steps_match_the_full_forward_pass() {
    let (a, p, mut rng) = setup(22);
    for window in [None, Some(1)] {
        let a = RelSelfAttention {
            window,
            ..a.clone()
        };
        steps_match_forward(&a, &p, &mut rng, false);
        steps_match_forward(&a, &p, &mut rng, true);
    }
}

/// A two-level position for test row `k`: levels 0..4 (sometimes none), digits 0..5
/// (sometimes none).
fn two_level(k: usize) -> u32 {
    let level = if k % 11 == 7 {
        NO_LEVEL
    } else {
        (k * 3 % 4) as u32
    };
    let digit = if k % 7 == 3 { NO_DIGIT } else { (k % 5) as u32 };
    level_position(level, digit)
}

#[test]
fn two_level_positions_see_near_levels_and_bucket_by_digit() {
    let w = Some(2);
    let at = level_position;
    // Same level, digits 1 apart: seen, bucket by the digit difference.
    assert!(sees(w, at(3, 10), at(3, 11)));
    assert_eq!(bucket(at(3, 10), at(3, 11)), 3);
    // One level apart: seen; two: not, whatever the digits.
    assert!(sees(w, at(3, 10), at(2, 10)) && sees(w, at(3, 10), at(4, 8)));
    assert!(!sees(w, at(3, 10), at(1, 10)) && !sees(w, at(5, 10), at(3, 10)));
    assert_eq!(bucket(at(3, 10), at(2, 10)), 2);
    // Digits beyond the window: not seen, on any level.
    assert!(!sees(w, at(3, 10), at(3, 13)));
    // No digit: seen from every digit of near levels, special bucket; no level: from every
    // level, by digit.
    assert!(sees(w, at(3, 500), at(4, NO_DIGIT)) && !sees(w, at(3, 5), at(5, NO_DIGIT)));
    assert_eq!(bucket(at(3, 500), at(4, NO_DIGIT)), SPECIAL_BUCKET);
    assert!(sees(w, at(90, 4), at(NO_LEVEL, 5)) && !sees(w, at(90, 4), at(NO_LEVEL, 7)));
    assert_eq!(bucket(at(90, 4), at(NO_LEVEL, 5)), 3);
    // Without a window every key is seen; BOS and EOS as before.
    assert!(sees(None, at(3, 10), at(90, 900)));
    assert!(sees(w, at(3, 10), NO_POSITION));
    assert_eq!(bucket(NO_POSITION, at(1, 1)), SPECIAL_BUCKET);
    // One-level positions keep their meaning.
    assert_eq!(bucket(10, 12), 4);
    assert!(sees(w, 10, 12) && !sees(w, 10, 13));
}

fn steps_match_forward(
    a: &RelSelfAttention,
    p: &[f64],
    rng: &mut rand_chacha::ChaCha8Rng,
    levels: bool,
) {
    let (n, t) = (3, 9);
    let h: Vec<f64> = (0..n * t * 6)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let pos: Vec<u32> = (0..n * t)
        .map(|k| {
            if k % t == 0 {
                NO_POSITION
            } else if levels {
                two_level(k)
            } else {
                (k * 7 % 4) as u32
            }
        })
        .collect();
    let mut full = vec![0.0; n * t * 6];
    a.forward(p, &h, &pos, n, t, 0, &mut MhaCache::default(), &mut full);
    let mut kv = KvCache::new(n, t, 6);
    let mut c = MhaCache::default();
    for i in 0..t {
        let hs: Vec<f64> = (0..n)
            .flat_map(|b| h[(b * t + i) * 6..(b * t + i + 1) * 6].to_vec())
            .collect();
        let ps: Vec<u32> = (0..n).map(|b| pos[b * t + i]).collect();
        let mut out = vec![0.0; n * 6];
        a.step(p, &hs, &ps, &mut kv, &mut c, &mut out);
        for b in 0..n {
            for e in 0..6 {
                let want = full[(b * t + i) * 6 + e];
                assert!((out[b * 6 + e] - want).abs() < 1e-12, "row {i} of {b}");
            }
        }
    }
}

/// A decoding step that looks its visible rows up by position gives the bits of one that
/// scans every row, for one-level, two-level and mixed sequences with every kind of position
/// (none, no level, no digit), in f32 and f64.
#[test]
fn indexed_steps_have_the_bits_of_a_scan() {
    fn check<R: Real>(a: &RelSelfAttention, p: &[R], seed: u64) -> usize {
        let (n, t, d) = (3, 160, 6);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let h: Vec<R> = (0..n * t * d)
            .map(|_| R::from_f64(rng.random_range(-1.0..1.0)))
            .collect();
        // Sequence 0 one-level, 1 two-level, 2 mixed.
        let pos: Vec<u32> = (0..n * t)
            .map(|k| {
                let (b, r) = (k / t, rng.random_range(0..100));
                let two = b == 1 || (b == 2 && r % 2 == 0);
                if r < 3 {
                    NO_POSITION
                } else if !two {
                    rng.random_range(0..30)
                } else if r < 12 {
                    level_position(NO_LEVEL, rng.random_range(0..20))
                } else if r < 20 {
                    level_position(rng.random_range(0..12), NO_DIGIT)
                } else {
                    level_position(rng.random_range(0..12), rng.random_range(0..20))
                }
            })
            .collect();
        let (mut kv_i, mut kv_s) = (KvCache::new(n, t, d), KvCache::new(n, t, d));
        let (mut c_i, mut c_s) = (MhaCache::default(), MhaCache::default());
        let (mut out_i, mut out_s) = (vec![R::ZERO; n * d], vec![R::ZERO; n * d]);
        let mut looked_up = 0;
        let mut rows = Vec::new();
        for i in 0..t {
            let hs: Vec<R> = (0..n)
                .flat_map(|b| h[(b * t + i) * d..(b * t + i + 1) * d].to_vec())
                .collect();
            let ps: Vec<u32> = (0..n).map(|b| pos[b * t + i]).collect();
            a.step_with(p, &hs, &ps, &mut kv_i, &mut c_i, &mut out_i, true);
            a.step_with(p, &hs, &ps, &mut kv_s, &mut c_s, &mut out_s, false);
            let bits = |o: &[R]| o.iter().map(|v| v.to_f64().to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out_i), bits(&out_s), "row {i}");
            for (b, &pb) in ps.iter().enumerate() {
                if kv_i.visible_rows(b, a.window.unwrap(), pb, &mut rows) {
                    looked_up += 1;
                    let all =
                        (0..=i as u32).filter(|&j| sees(a.window, pb, pos[b * t + j as usize]));
                    assert_eq!(rows, all.collect::<Vec<_>>(), "row {i} of {b}");
                }
            }
        }
        looked_up
    }
    let (a, p, _) = setup(23);
    let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    for w in [1, 2] {
        let a = RelSelfAttention {
            window: Some(w),
            ..a.clone()
        };
        // Most two-level queries and the one-level sequence's are looked up.
        assert!(check(&a, &p, 5 + w as u64) > 160);
        assert!(check(&a, &p32, 9 + w as u64) > 160);
    }
}
