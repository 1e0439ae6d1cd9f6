//! Tests of `rnn`.

use super::*;
use crate::nn::gradcheck;
use crate::nn::reference::rnn_forward_ref;
use rand::SeedableRng;

fn packed<R: Real>(layer: &RnnLayer, p: &[R]) -> RnnPack<R> {
    let mut pk = RnnPack::default();
    layer.pack(p, &mut pk);
    pk
}

const CELLS: [CellKind; 3] = [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn];

fn setup(cell: CellKind, input: usize, hidden: usize, seed: u64) -> (RnnLayer, Vec<f64>) {
    let mut layout = ParamLayout::default();
    let layer = RnnLayer::new(&mut layout, "l", "", cell, input, hidden);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0.0f64; layout.total];
    layer.init(&mut p, &mut rng);
    // Non-zero biases so their gradients are exercised.
    for v in layer.b_ih.of_mut(&mut p) {
        *v += rng.random_range(-0.5..0.5);
    }
    if let Some(bh) = layer.b_hh {
        for v in bh.of_mut(&mut p) {
            *v += rng.random_range(-0.5..0.5);
        }
    }
    (layer, p)
}

enum Mode {
    Symbols(Vec<u8>),
    Seq(Vec<f64>),
    Repeat(Vec<f64>),
}

impl Mode {
    fn input(&self) -> RnnInput<'_, f64> {
        match self {
            Mode::Symbols(s) => RnnInput::Symbols(s),
            Mode::Seq(x) => RnnInput::Seq(x),
            Mode::Repeat(x) => RnnInput::Repeat(x),
        }
    }
}

fn modes(input: usize, b: usize, t: usize, seed: u64) -> Vec<Mode> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    vec![
        Mode::Symbols(
            (0..t * b)
                .map(|_| rng.random_range(0..input as u8))
                .collect(),
        ),
        Mode::Seq(
            (0..t * b * input)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
        ),
        Mode::Repeat(
            (0..b * input)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
        ),
    ]
}

/// loss = Σ_t Σ w_seq ⊙ h_t + Σ w_last ⊙ h_T, with fixed random weights.
fn weighted_loss(out: &[f64], last: &[f64], w_seq: &[f64], w_last: &[f64]) -> f64 {
    out.iter().zip(w_seq).map(|(a, b)| a * b).sum::<f64>()
        + last.iter().zip(w_last).map(|(a, b)| a * b).sum::<f64>()
}

#[test]
fn fused_forward_matches_reference() {
    for cell in CELLS {
        let (input, hidden, b, t) = (5, 7, 3, 4);
        let (layer, p) = setup(cell, input, hidden, 11);
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        for mode in modes(input, b, t, 12) {
            let want = rnn_forward_ref(&layer, &p, mode.input(), b, t);
            let mut cache = RnnCache::default();
            layer.forward(&p, &packed(&layer, &p), mode.input(), b, t, &mut cache);
            let got = layer.outputs(&cache, b, t);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{cell:?} f64: {g} vs {w}");
            }
            // The f32 fast path (rational tanh) agrees to f32 precision.
            let m32: Vec<f32>;
            let s;
            let in32 = match &mode {
                Mode::Symbols(sy) => {
                    s = sy.clone();
                    RnnInput::Symbols(&s[..])
                }
                Mode::Seq(x) => {
                    m32 = x.iter().map(|&v| v as f32).collect();
                    RnnInput::Seq(&m32[..])
                }
                Mode::Repeat(x) => {
                    m32 = x.iter().map(|&v| v as f32).collect();
                    RnnInput::Repeat(&m32[..])
                }
            };
            let mut c32 = RnnCache::default();
            layer.forward(&p32, &packed(&layer, &p32), in32, b, t, &mut c32);
            for (g, w) in layer.outputs(&c32, b, t).iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 2e-5, "{cell:?} f32: {g} vs {w}");
            }
            // Inference (no backward to come) keeps fewer activations, same bits.
            let mut c_inf = RnnCache::default();
            c_inf.set_no_backward(true);
            for _ in 0..2 {
                layer.forward(&p32, &packed(&layer, &p32), in32, b, t, &mut c_inf);
                assert!(layer.outputs(&c_inf, b, t) == layer.outputs(&c32, b, t));
                assert!(layer.last_output(&c_inf, b, t) == layer.last_output(&c32, b, t));
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for cell in CELLS {
        let (input, hidden, b, t) = (4, 5, 3, 4);
        let (layer, p) = setup(cell, input, hidden, 21);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
        let w_seq: Vec<f64> = (0..t * b * hidden)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let w_last: Vec<f64> = (0..b * hidden)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        for (mi, mode) in modes(input, b, t, 23).into_iter().enumerate() {
            let loss = |pp: &[f64], x: RnnInput<f64>| {
                let mut cache = RnnCache::default();
                layer.forward(pp, &packed(&layer, pp), x, b, t, &mut cache);
                weighted_loss(
                    layer.outputs(&cache, b, t),
                    layer.last_output(&cache, b, t),
                    &w_seq,
                    &w_last,
                )
            };
            let mut cache = RnnCache::default();
            layer.forward(&p, &packed(&layer, &p), mode.input(), b, t, &mut cache);
            let mut grad = vec![0.0; p.len()];
            let in_len = match &mode {
                Mode::Symbols(_) => 0,
                Mode::Seq(x) | Mode::Repeat(x) => x.len(),
            };
            let mut dx = vec![0.0; in_len];
            let d_in = if in_len > 0 {
                RnnInputGrad::Dense(&mut dx[..])
            } else {
                RnnInputGrad::None
            };
            layer.backward(
                &p,
                &packed(&layer, &p),
                mode.input(),
                b,
                t,
                &mut cache,
                Some(&w_seq),
                Some(&w_last),
                &mut grad,
                d_in,
            );
            let what = format!("{cell:?} mode {mi}");
            gradcheck::check(
                &p,
                &grad,
                &gradcheck::sample_indices(p.len(), 3),
                1e-6,
                |pp| loss(pp, mode.input()),
                &what,
            );
            // Input gradients.
            match &mode {
                Mode::Seq(x) => gradcheck::check(
                    x,
                    &dx,
                    &gradcheck::sample_indices(x.len(), 1),
                    1e-6,
                    |xx| loss(&p, RnnInput::Seq(xx)),
                    &what,
                ),
                Mode::Repeat(x) => gradcheck::check(
                    x,
                    &dx,
                    &gradcheck::sample_indices(x.len(), 1),
                    1e-6,
                    |xx| loss(&p, RnnInput::Repeat(xx)),
                    &what,
                ),
                Mode::Symbols(_) => {}
            }
        }
    }
}

#[test]
fn initial_state_and_cell_gradients_match_finite_differences() {
    for cell in CELLS {
        let (input, hidden, b, t) = (4, 5, 3, 3);
        let (layer, p) = setup(cell, input, hidden, 31);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(32);
        let mut rand_vec =
            |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (w_seq, w_last, w_cell) = (
            rand_vec(t * b * hidden),
            rand_vec(b * hidden),
            rand_vec(b * hidden),
        );
        let x = rand_vec(t * b * input);
        let lstm = cell == CellKind::Lstm;
        // state = [h0; c0] (c0 only for the LSTM).
        let state = rand_vec(b * hidden * if lstm { 2 } else { 1 });
        let loss = |pp: &[f64], st: &[f64]| {
            let mut cache = RnnCache::default();
            let (h0, c0) = st.split_at(b * hidden);
            cache.set_initial_state(h0, lstm.then_some(c0));
            layer.forward(pp, &packed(&layer, pp), RnnInput::Seq(&x), b, t, &mut cache);
            let mut l = weighted_loss(
                layer.outputs(&cache, b, t),
                layer.last_output(&cache, b, t),
                &w_seq,
                &w_last,
            );
            if lstm {
                l += layer
                    .last_cell(&cache, b, t)
                    .iter()
                    .zip(&w_cell)
                    .map(|(a, w)| a * w)
                    .sum::<f64>();
            }
            l
        };
        let mut cache = RnnCache::default();
        let (h0, c0) = state.split_at(b * hidden);
        cache.set_initial_state(h0, lstm.then_some(c0));
        layer.forward(&p, &packed(&layer, &p), RnnInput::Seq(&x), b, t, &mut cache);
        cache.set_last_cell_grad(lstm.then_some(&w_cell[..]));
        let mut grad = vec![0.0; p.len()];
        layer.backward(
            &p,
            &packed(&layer, &p),
            RnnInput::Seq(&x),
            b,
            t,
            &mut cache,
            Some(&w_seq),
            Some(&w_last),
            &mut grad,
            RnnInputGrad::None,
        );
        let what = format!("{cell:?} with initial state");
        gradcheck::check(
            &p,
            &grad,
            &gradcheck::sample_indices(p.len(), 3),
            1e-6,
            |pp| loss(pp, &state),
            &what,
        );
        let (dh0, dc0) = cache.initial_state_grad(b, hidden);
        let mut dstate = dh0.to_vec();
        if lstm {
            dstate.extend_from_slice(dc0);
        }
        gradcheck::check(
            &state,
            &dstate,
            &(0..state.len()).collect::<Vec<_>>(),
            1e-6,
            |st| loss(&p, st),
            &what,
        );
    }
}

/// Rows of 3 steps: all real, padding at the end, padding at the start, a gap.
const MASK_ROWS: [[u8; 3]; 4] = [[1, 1, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]];

fn time_major_mask(t: usize) -> Vec<u8> {
    let b = MASK_ROWS.len();
    let mut m = vec![0u8; t * b];
    for (r, row) in MASK_ROWS.iter().enumerate() {
        for s in 0..t {
            m[s * b + r] = row[s % 3];
        }
    }
    m
}

/// The fused LSTM (symbols: the projection added in the step kernel) gives the bits of the
/// unfused path (one-hot rows through the input product, copied under the recurrent one),
/// with and without an initial state and a mask, training and inference.
#[test]
fn fused_symbol_input_gives_the_bits_of_one_hot_rows() {
    let (v, hidden, t) = (6, 9, 3);
    let b = MASK_ROWS.len();
    let (layer, p) = setup(CellKind::Lstm, v, hidden, 17);
    let p: Vec<f32> = p.iter().map(|&x| x as f32).collect();
    let pk = packed(&layer, &p);
    let sym: Vec<u8> = (0..t * b).map(|i| ((i * 5 + 1) % v) as u8).collect();
    let mut onehot = vec![0.0f32; t * b * v];
    for (i, &s) in sym.iter().enumerate() {
        onehot[i * v + s as usize] = 1.0;
    }
    let mask = time_major_mask(t);
    let h0: Vec<f32> = (0..b * hidden)
        .map(|i| (i % 7) as f32 * 0.1 - 0.3)
        .collect();
    for (init, masked, no_backward) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
        (false, false, true),
    ] {
        let run = |input: RnnInput<f32>| {
            let mut cache = RnnCache::default();
            if init {
                cache.set_initial_state(&h0, Some(&h0));
            }
            cache.set_mask(masked.then_some(&mask[..]));
            cache.set_no_backward(no_backward);
            layer.forward(&p, &pk, input, b, t, &mut cache);
            let out = layer.outputs(&cache, b, t).to_vec();
            let c = layer.last_cell(&cache, b, t).to_vec();
            (out, c)
        };
        let (fused, unfused) = (run(RnnInput::Symbols(&sym)), run(RnnInput::Seq(&onehot)));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&fused.0) == bits(&unfused.0) && bits(&fused.1) == bits(&unfused.1),
            "init {init}, mask {masked}, no backward {no_backward}"
        );
    }
}

/// The symbol table lives in the pack: built by the first forward after a packing, reused by
/// later forwards (the same bits), and built again after the pack is repacked from other
/// weights (a stale table would keep the old input kernel).
#[test]
fn the_symbol_table_follows_the_packed_weights() {
    for cell in CELLS {
        let (layer, p) = setup(cell, 5, 7, 11);
        let (b, t) = (3, 4);
        let sym: Vec<u8> = (0..b * t).map(|i| (i * 3 % 5) as u8).collect();
        let run = |p: &[f64], pk: &RnnPack<f64>| {
            let mut cache = RnnCache::default();
            layer.forward(p, pk, RnnInput::Symbols(&sym), b, t, &mut cache);
            layer.outputs(&cache, b, t).to_vec()
        };
        let mut pk = packed(&layer, &p);
        let first = run(&p, &pk);
        assert!(
            pk.table.get().is_some(),
            "{cell:?}: the forward left no table"
        );
        assert_eq!(run(&p, &pk), first, "{cell:?}: the reused table");
        let mut q = p.clone();
        for v in layer.w_ih.of_mut(&mut q) {
            *v *= -1.5;
        }
        for v in layer.b_ih.of_mut(&mut q) {
            *v += 0.25;
        }
        layer.pack(&q, &mut pk);
        assert!(
            pk.table.get().is_none(),
            "{cell:?}: repacking kept the old table"
        );
        let changed = run(&q, &pk);
        assert_ne!(changed, first, "{cell:?}");
        assert_eq!(changed, run(&q, &packed(&layer, &q)), "{cell:?}");
    }
}

/// An LSTM forward (`no_backward` as given) followed by `backwards` backward passes.
fn lstm_forward_then_backwards(no_backward: bool, backwards: usize) {
    let (layer, p) = setup(CellKind::Lstm, 5, 7, 3);
    let (b, t) = (2, 3);
    let sym: Vec<u8> = (0..b * t).map(|i| (i % 5) as u8).collect();
    let (pk, mut cache) = (packed(&layer, &p), RnnCache::default());
    cache.set_no_backward(no_backward);
    layer.forward(&p, &pk, RnnInput::Symbols(&sym), b, t, &mut cache);
    let mut grad = vec![0.0; p.len()];
    let d_seq = vec![1.0; t * b * 7];
    for _ in 0..backwards {
        layer.backward(
            &p,
            &pk,
            RnnInput::Symbols(&sym),
            b,
            t,
            &mut cache,
            Some(&d_seq),
            None,
            &mut grad,
            RnnInputGrad::None,
        );
    }
}

#[test]
#[should_panic(expected = "set_no_backward")]
fn backward_after_an_inference_forward_is_refused() {
    lstm_forward_then_backwards(true, 1);
}

/// An LSTM's backward writes its gradients over the gates: a second backward of the same
/// forward is refused instead of reading gradients as gates.
#[test]
#[should_panic(expected = "LSTM backward already ran")]
fn a_second_lstm_backward_of_one_forward_is_refused() {
    lstm_forward_then_backwards(false, 2);
}

#[test]
fn masked_steps_are_skipped_as_if_absent() {
    // Each row's outputs equal a run over its real steps alone, the state carried over pads.
    for cell in CELLS {
        let (input, hidden, t) = (4, 5, 3);
        let b = MASK_ROWS.len();
        let (layer, p) = setup(cell, input, hidden, 41);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        let x: Vec<f64> = (0..t * b * input)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mask = time_major_mask(t);
        let mut cache = RnnCache::default();
        cache.set_mask(Some(&mask));
        layer.forward(&p, &packed(&layer, &p), RnnInput::Seq(&x), b, t, &mut cache);
        let out = layer.outputs(&cache, b, t);
        for (r, row) in MASK_ROWS.iter().enumerate() {
            let real: Vec<usize> = (0..t).filter(|&s| row[s] == 1).collect();
            let xr: Vec<f64> = real
                .iter()
                .flat_map(|&s| x[(s * b + r) * input..(s * b + r + 1) * input].to_vec())
                .collect();
            let alone = rnn_forward_ref(&layer, &p, RnnInput::Seq(&xr), 1, real.len());
            let mut seen = 0;
            for s in 0..t {
                seen += usize::from(row[s] == 1);
                let got = &out[(s * b + r) * hidden..(s * b + r + 1) * hidden];
                for (j, g) in got.iter().enumerate() {
                    let want = if seen == 0 {
                        0.0
                    } else {
                        alone[(seen - 1) * hidden + j]
                    };
                    assert!((g - want).abs() < 1e-12, "{cell:?} row {r} step {s}");
                }
            }
        }
    }
}

#[test]
fn masked_gradients_match_finite_differences() {
    for cell in CELLS {
        let (input, hidden, t) = (4, 5, 3);
        let b = MASK_ROWS.len();
        let (layer, p) = setup(cell, input, hidden, 51);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(52);
        let mut rand_vec =
            |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (w_seq, w_last) = (rand_vec(t * b * hidden), rand_vec(b * hidden));
        let mask = time_major_mask(t);
        for (mi, mode) in modes(input, b, t, 53).into_iter().enumerate() {
            if matches!(mode, Mode::Repeat(_)) {
                continue;
            }
            let loss = |pp: &[f64], x: RnnInput<f64>| {
                let mut cache = RnnCache::default();
                cache.set_mask(Some(&mask));
                layer.forward(pp, &packed(&layer, pp), x, b, t, &mut cache);
                weighted_loss(
                    layer.outputs(&cache, b, t),
                    layer.last_output(&cache, b, t),
                    &w_seq,
                    &w_last,
                )
            };
            let mut cache = RnnCache::default();
            cache.set_mask(Some(&mask));
            layer.forward(&p, &packed(&layer, &p), mode.input(), b, t, &mut cache);
            let mut grad = vec![0.0; p.len()];
            let mut dx = vec![0.0; if let Mode::Seq(x) = &mode { x.len() } else { 0 }];
            let d_in = if dx.is_empty() {
                RnnInputGrad::None
            } else {
                RnnInputGrad::Dense(&mut dx[..])
            };
            layer.backward(
                &p,
                &packed(&layer, &p),
                mode.input(),
                b,
                t,
                &mut cache,
                Some(&w_seq),
                Some(&w_last),
                &mut grad,
                d_in,
            );
            let what = format!("{cell:?} masked, mode {mi}");
            gradcheck::check(
                &p,
                &grad,
                &gradcheck::sample_indices(p.len(), 2),
                1e-6,
                |pp| loss(pp, mode.input()),
                &what,
            );
            if let Mode::Seq(x) = &mode {
                gradcheck::check(
                    x,
                    &dx,
                    &(0..x.len()).collect::<Vec<_>>(),
                    1e-6,
                    |xx| loss(&p, RnnInput::Seq(xx)),
                    &what,
                );
                // Padding steps get no input gradient.
                for (i, &m) in mask.iter().enumerate() {
                    if m == 0 {
                        assert!(dx[i * input..(i + 1) * input].iter().all(|&d| d == 0.0));
                    }
                }
            }
        }
    }
}

#[test]
fn keras_parameter_counts() {
    let mut layout = ParamLayout::default();
    RnnLayer::new(&mut layout, "e", "", CellKind::Lstm, 12, 128);
    assert_eq!(layout.total, 72_192);
    let mut layout = ParamLayout::default();
    RnnLayer::new(&mut layout, "d", "", CellKind::Lstm, 128, 128);
    assert_eq!(layout.total, 131_584);
    let mut layout = ParamLayout::default();
    RnnLayer::new(&mut layout, "g", "", CellKind::Gru, 12, 128);
    // Keras 3 GRU(reset_after=True): 3 * (12*128 + 128*128 + 2*128).
    assert_eq!(layout.total, 3 * (12 * 128 + 128 * 128 + 2 * 128));
}

#[test]
fn lstm_forget_bias_is_one_and_recurrent_kernel_orthogonal() {
    let (layer, p) = setup(CellKind::Lstm, 3, 8, 5);
    let mut layout = ParamLayout::default();
    let fresh = RnnLayer::new(&mut layout, "l", "", CellKind::Lstm, 3, 8);
    let mut q = vec![0.0f64; layout.total];
    fresh.init(&mut q, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    let b = fresh.b_ih.of(&q);
    assert!(
        b[..8].iter().all(|&v| v == 0.0)
            && b[8..16].iter().all(|&v| v == 1.0)
            && b[16..].iter().all(|&v| v == 0.0)
    );
    let w = layer.w_hh.of(&p);
    // [4H, H] with orthonormal columns: W^T W = I.
    for a in 0..8 {
        for c in 0..8 {
            let d: f64 = (0..32).map(|r| w[r * 8 + a] * w[r * 8 + c]).sum();
            assert!((d - if a == c { 1.0 } else { 0.0 }).abs() < 1e-9);
        }
    }
}

/// The step kernels compiled for the baseline, AVX2 and AVX-512 give the same bits (the
/// promise `simd_dispatch!` makes: a run's numbers do not depend on the CPU's vector width).
#[test]
#[cfg(target_arch = "x86_64")]
fn step_kernels_give_the_same_bits_at_every_simd_level() {
    use crate::nn::{wider_levels, SimdLevel};
    use rand::Rng;
    let (b, h) = (5, 37); // odd sizes: vector bodies and scalar tails both run
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    };
    let (a4, a3, cp, dh, hp) = (
        rand(b * 4 * h, 12.0),
        rand(b * 3 * h, 12.0),
        rand(b * h, 3.0),
        rand(b * h, 1.0),
        rand(b * 3 * h, 4.0),
    );
    let (bhh, dc0, dh4) = (rand(3 * h, 1.0), rand(b * h, 1.0), rand(b * 4 * h, 1.0));
    // An input projection table of 3 rows, added to the rows in this order (repeats too).
    let (table, rows) = (rand(3 * 4 * h, 3.0), [2u32, 0, 2, 1, 0]);
    let bits = |parts: &[&Vec<f32>]| -> Vec<u32> {
        parts
            .iter()
            .flat_map(|p| p.iter().map(|v| v.to_bits()))
            .collect()
    };
    // Each kernel family's outputs, forward then backward, as bits.
    let lstm = |level: SimdLevel| {
        let (mut a, mut cn, mut hn) = (a4.clone(), vec![0.0; b * h], vec![0.0; b * h]);
        let mut dc = dc0.clone();
        at_level!(
            level,
            lstm_step_forward_generic,
            lstm_step_forward_avx2,
            lstm_step_forward_avx512,
            (&mut a, &[], &[], &cp, &mut cn, &mut hn, h)
        );
        // The backward overwrites the gates with dz.
        let mut dz = a.clone();
        at_level!(
            level,
            lstm_step_backward_generic,
            lstm_step_backward_avx2,
            lstm_step_backward_avx512,
            (&mut dz, &cp, &cn, &dh, &mut dc, h)
        );
        bits(&[&a, &cn, &hn, &dc, &dz])
    };
    let gru = |level: SimdLevel| {
        let (mut a, mut p) = (a3.clone(), hp.clone());
        let (mut hpn, mut hn) = (vec![0.0; b * h], vec![0.0; b * h]);
        at_level!(
            level,
            gru_step_forward_generic,
            gru_step_forward_avx2,
            gru_step_forward_avx512,
            (&mut a, &mut p, &bhh, &cp, &mut hpn, &mut hn, h)
        );
        let (mut d, mut dz, mut dzh) = (dh.clone(), vec![0.0; b * 3 * h], vec![0.0; b * 3 * h]);
        at_level!(
            level,
            gru_step_backward_generic,
            gru_step_backward_avx2,
            gru_step_backward_avx512,
            (&a, &hpn, &cp, &mut d, &mut dz, &mut dzh, h)
        );
        bits(&[&a, &p, &hpn, &hn, &d, &dz, &dzh])
    };
    let simple = |level: SimdLevel| {
        let (mut a, mut hn, mut dz) = (a4.clone(), vec![0.0; b * 4 * h], vec![0.0; b * 4 * h]);
        at_level!(
            level,
            tanh_step_forward_generic,
            tanh_step_forward_avx2,
            tanh_step_forward_avx512,
            (&mut a, &mut hn)
        );
        at_level!(
            level,
            tanh_step_backward_generic,
            tanh_step_backward_avx2,
            tanh_step_backward_avx512,
            (&a, &dh4, &mut dz)
        );
        bits(&[&a, &hn, &dz])
    };
    let lstm_x = |level: SimdLevel| {
        let (mut a, mut cn, mut hn) = (a4.clone(), vec![0.0; b * h], vec![0.0; b * h]);
        at_level!(
            level,
            lstm_step_forward_generic,
            lstm_step_forward_avx2,
            lstm_step_forward_avx512,
            (&mut a, &table, &rows, &cp, &mut cn, &mut hn, h)
        );
        bits(&[&a, &cn, &hn])
    };
    assert!(
        lstm_x(SimdLevel::Baseline) != lstm(SimdLevel::Baseline),
        "the projection rows were not added"
    );
    for kernel in [
        &lstm as &dyn Fn(SimdLevel) -> Vec<u32>,
        &lstm_x,
        &gru,
        &simple,
    ] {
        let base = kernel(SimdLevel::Baseline);
        assert!(base.iter().any(|&v| v != 0));
        for level in wider_levels() {
            assert!(
                kernel(level) == base,
                "level {level:?} differs from the baseline"
            );
        }
    }
}
