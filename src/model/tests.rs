//! Tests of the whole model layer: gradients, decoding, chunking, prefix sharing, threads.

use super::*;
use crate::nn::gradcheck;
use crate::nn::rnn::CellKind;
use crate::optim::Adam;
use rand::{Rng, SeedableRng};

#[test]
fn default_model_has_keras_parameter_count() {
    let m = Seq2Seq::new(&ModelConfig::default(), 12, 7, 4).unwrap();
    assert_eq!(m.param_count(), 205_324);
    let s = m.summary();
    assert!(
        s.contains("205,324")
            && s.contains("72,192")
            && s.contains("131,584")
            && s.contains("1,548"),
        "{s}"
    );
}

/// Every `stride`-th parameter and several of every tensor (a stride alone can miss a small
/// tensor, such as a SimpleRNN's biases, as a whole), including each tensor's largest
/// gradients.
fn whole_model_indices(m: &Seq2Seq, grad: &[f64], stride: usize) -> Vec<usize> {
    let mut v = gradcheck::sample_indices(grad.len(), stride);
    v.extend(gradcheck::sample_per_tensor(&m.layout, grad, 4));
    v.sort_unstable();
    v.dedup();
    v
}

fn tiny(cell: CellKind, layers: usize) -> (Seq2Seq, Vec<u8>, Vec<u8>, usize) {
    let cfg = ModelConfig {
        cell,
        hidden: 4,
        layers,
        ..Default::default()
    };
    let m = Seq2Seq::new(&cfg, 5, 3, 2).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let n = 5;
    let x: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
    let y: Vec<u8> = (0..n * 2).map(|_| rng.random_range(0..5)).collect();
    (m, x, y, n)
}

#[test]
fn whole_model_gradient_check_f64() {
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn] {
        for layers in [1, 2] {
            let (m, x, y, n) = tiny(cell, layers);
            let p: Vec<f64> = m.init_params(3);
            let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
            let st = eng.train_step(&p, &x, &y, n);
            let grad = eng.grad.clone();
            let mut e2 = Seq2SeqEngine::<f64>::new(m.clone(), 1);
            let loss = |pp: &[f64]| e2.evaluate(pp, &x, &y, n).loss_sum / (n * 2) as f64;
            assert!(st.loss_sum > 0.0);
            gradcheck::check(
                &p,
                &grad,
                &whole_model_indices(&m, &grad, 7),
                1e-4,
                loss,
                &format!("{cell:?} x{layers}"),
            );
        }
    }
}

#[test]
fn teacher_forced_attention_and_embedding_gradient_check_f64() {
    use crate::nn::gradcheck;
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn] {
        for (decoder, attention, input, layers, mask) in [
            (
                DecoderKind::TeacherForced,
                false,
                InputKind::OneHot,
                1,
                false,
            ),
            (
                DecoderKind::TeacherForced,
                true,
                InputKind::Embedding,
                2,
                false,
            ),
            (DecoderKind::Repeat, true, InputKind::OneHot, 1, false),
            (DecoderKind::Repeat, false, InputKind::Embedding, 1, false),
            (DecoderKind::Repeat, false, InputKind::OneHot, 2, true),
            (DecoderKind::TeacherForced, true, InputKind::OneHot, 1, true),
            (DecoderKind::Repeat, true, InputKind::Embedding, 1, true),
        ] {
            let cfg = ModelConfig {
                cell,
                hidden: 4,
                layers,
                decoder,
                attention,
                input,
                embed_dim: 3,
                mask,
                ..Default::default()
            };
            let mut m = Seq2Seq::new(&cfg, 5, 3, 3).unwrap();
            m.eos = Some(1);
            m.pad = 0;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
            let n = 5;
            let x: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
            let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
            let p: Vec<f64> = m.init_params(3);
            let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
            eng.train_step(&p, &x, &y, n);
            let grad = eng.grad.clone();
            let mut e1 = Seq2SeqEngine::<f64>::new(m.clone(), 1);
            let loss = |pp: &[f64]| e1.evaluate(pp, &x, &y, n).mean_loss();
            if mask {
                // The data has padding in the question and answers ending early.
                assert!(x.contains(&0) && y.iter().position(|&s| s == 1).is_some());
            }
            gradcheck::check(
                &p,
                &grad,
                &whole_model_indices(&m, &grad, 3),
                1e-4,
                loss,
                &format!(
                    "{cell:?} {decoder:?} attention {attention} {input:?} x{layers} mask {mask}"
                ),
            );
        }
    }
}

#[test]
fn greedy_decoding_feeds_back_its_own_symbols() {
    // Greedy decoding (one step at a time, each step reading the symbol it chose at the step
    // before) against an independent reference: the teacher-forced pass of training run on the
    // greedy answer's first s + 1 symbols alone, in a model with T_out = s + 1 (the recurrent
    // layout does not depend on the answer length). Its loss grows at step s by
    // -ln p(answer_s | answer_<s), which must be the probability greedy decoding gave that
    // symbol, and its argmax there must be the greedy choice. A teacher-forced input shifted
    // by one step too few or too many changes both.
    let (v, t_in, t_out, n) = (5, 4, 3, 6);
    for (attention, layers) in [(false, 1), (true, 2)] {
        let cfg = ModelConfig {
            hidden: 6,
            decoder: DecoderKind::TeacherForced,
            attention,
            layers,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, v, t_in, t_out).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x: Vec<u8> = (0..n * t_in).map(|_| rng.random_range(0..5)).collect();
        let p: Vec<f64> = m.init_params(4);
        let mut probs = Vec::new();
        Seq2SeqEngine::<f64>::new(m.clone(), 2).predict(&p, &x, n, &mut probs);
        let greedy: Vec<u8> = probs
            .chunks_exact(v)
            .map(|row| crate::nn::loss::argmax(row) as u8)
            .collect();
        for r in 0..n {
            let question = &x[r * t_in..(r + 1) * t_in];
            let mut loss_before = 0.0;
            for s in 0..t_out {
                let prefix = Seq2Seq::new(&cfg, v, t_in, s + 1).unwrap();
                assert_eq!(prefix.layout, m.layout);
                let answer = &greedy[r * t_out..r * t_out + s + 1];
                let st = Seq2SeqEngine::<f64>::new(prefix, 1).train_step(&p, question, answer, 1);
                let p_greedy = probs[(r * t_out + s) * v + answer[s] as usize];
                let step_loss = st.loss_sum - loss_before;
                assert!(
                    (step_loss + p_greedy.ln()).abs() < 1e-9,
                    "row {r} step {s}: teacher-forced -ln p {step_loss}, greedy {}",
                    -p_greedy.ln()
                );
                assert_eq!(st.correct_chars, s + 1, "row {r} step {s}: argmax differs");
                loss_before = st.loss_sum;
            }
        }
    }
}

#[test]
fn attention_weights_are_distributions_per_answer_step() {
    for decoder in [DecoderKind::Repeat, DecoderKind::TeacherForced] {
        let cfg = ModelConfig {
            hidden: 6,
            decoder,
            attention: true,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, 5, 4, 3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let x: Vec<u8> = (0..5 * 4).map(|_| rng.random_range(0..5)).collect();
        let p: Vec<f32> = m.init_params(1);
        let mut eng = Seq2SeqEngine::<f32>::new(m.clone(), 2);
        let w = eng.attention_weights(&p, &x, 5).unwrap();
        assert_eq!(w.len(), 5 * 3 * 4);
        for row in w.chunks_exact(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        // One question alone gets the weights it got within the batch.
        let one = eng.attention_weights(&p, &x[8..12], 1).unwrap();
        for (a, b) in one.iter().zip(&w[2 * 12..3 * 12]) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    let plain = Seq2Seq::new(&ModelConfig::default(), 5, 4, 3).unwrap();
    let p: Vec<f32> = plain.init_params(1);
    assert!(Seq2SeqEngine::<f32>::new(plain, 1)
        .attention_weights(&p, &[0; 4], 1)
        .is_none());
}

#[test]
fn a_forward_in_chunks_gives_the_bits_of_one_pass() {
    // Every cell and decoder, with attention and masking: answers, attention weights and
    // evaluation sums must not depend on how many rows a worker runs at once.
    let cases = [
        (CellKind::Lstm, DecoderKind::Repeat, false, false),
        (CellKind::Gru, DecoderKind::Repeat, false, true),
        (
            CellKind::SimpleRnn,
            DecoderKind::TeacherForced,
            false,
            false,
        ),
        (CellKind::Lstm, DecoderKind::TeacherForced, true, true),
        (CellKind::Lstm, DecoderKind::Repeat, true, false),
        (CellKind::Gru, DecoderKind::TeacherForced, true, false),
    ];
    for (i, (cell, decoder, attention, mask)) in cases.into_iter().enumerate() {
        // Two decoder layers in every other case, and then a wider encoder where the decoder
        // allows it (a teacher-forced one starts from the encoder's state).
        let cfg = ModelConfig {
            cell,
            hidden: 6,
            layers: 1 + i % 2,
            encoder_hidden: (i % 2 == 1 && decoder == DecoderKind::Repeat).then_some(7),
            decoder,
            attention,
            mask,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, 6, 4, 3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 23;
        let x: Vec<u8> = (0..n * 4).map(|_| rng.random_range(0..6)).collect();
        let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..6)).collect();
        let p: Vec<f32> = m.init_params(2);
        let run = |chunk: usize| {
            let mut e = Seq2SeqEngine::<f32>::new(m.clone(), 2);
            e.forward_chunk = Some(chunk);
            let mut probs = Vec::new();
            // A larger batch first: the buffers it leaves behind must not leak into the next.
            e.predict(&p, &[x.clone(), x.clone()].concat(), 2 * n, &mut probs);
            e.predict(&p, &x, n, &mut probs);
            let att = e.attention_weights(&p, &x, n);
            (probs, att, e.evaluate(&p, &x, &y, n))
        };
        let (probs, att, st) = run(1024);
        assert_eq!(probs.len(), n * 3 * 6);
        for chunk in [1, 5] {
            let (p2, a2, s2) = run(chunk);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p2), bits(&probs), "{cfg:?} chunk {chunk}");
            assert_eq!(a2.map(|a| bits(&a)), att.as_ref().map(|a| bits(a)));
            assert_eq!(
                (s2.exact, s2.correct_chars, s2.rows, s2.positions),
                (st.exact, st.correct_chars, st.rows, st.positions)
            );
            // The loss is summed chunk by chunk: the same up to summation order.
            assert!((s2.loss_sum - st.loss_sum).abs() < 1e-9 * st.loss_sum.abs().max(1.0));
        }
    }
}

#[test]
fn shared_prefixes_give_the_bits_of_a_full_forward() {
    // Questions over three symbols share their first steps; answers and evaluation must
    // come out as without sharing, for every cell and decoder, in chunks or not.
    for (i, cell) in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn]
        .into_iter()
        .enumerate()
    {
        for decoder in [DecoderKind::Repeat, DecoderKind::TeacherForced] {
            let cfg = ModelConfig {
                cell,
                hidden: 6,
                layers: 1 + i % 2,
                decoder,
                ..Default::default()
            };
            let m = Seq2Seq::new(&cfg, 6, 5, 3).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let n = 41;
            let x: Vec<u8> = (0..n * 5).map(|_| rng.random_range(0..3)).collect();
            let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..6)).collect();
            let p: Vec<f32> = m.init_params(4);
            // The same questions again, each twice: every prefix is shared by two rows or
            // more, up to the last step.
            let twice: Vec<u8> = x
                .chunks(5)
                .flat_map(|q| [q, q])
                .flatten()
                .copied()
                .collect();
            let run = |x: &[u8], share: bool, chunk: usize| {
                let n = x.len() / 5;
                let mut e = Seq2SeqEngine::<f32>::new(m.clone(), 2);
                e.share_prefixes = share;
                e.forward_chunk = Some(chunk);
                let mut probs = Vec::new();
                e.predict(&p, x, n, &mut probs);
                let shared: Vec<usize> = e.prefixes.iter().map(|pf| pf.shared).collect();
                let y = &[y.clone(), y.clone()].concat()[..n * 3];
                (probs, e.evaluate(&p, x, y, n), shared)
            };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            // 21 and 20 rows over 3 symbols share 3 and 9 prefixes, then 18-19 (more than
            // half); doubled, 41 distinct questions in 82 rows share all four steps.
            for (x, levels) in [(&x, [2, 2]), (&twice, [4, 4])] {
                for chunk in [1024, 4] {
                    // (The loss sums chunk by chunk: compare the same chunks.)
                    let (probs, st, _) = run(x, false, chunk);
                    let (p2, s2, shared) = run(x, true, chunk);
                    assert_eq!(shared, levels, "{cfg:?}");
                    assert_eq!(bits(&p2), bits(&probs), "{cfg:?} chunk {chunk}");
                    assert_eq!(
                        (s2.exact, s2.correct_chars, s2.loss_sum.to_bits()),
                        (st.exact, st.correct_chars, st.loss_sum.to_bits()),
                        "{cfg:?} chunk {chunk}"
                    );
                }
            }
        }
    }
}

#[test]
fn encoder_and_decoder_sizes_can_differ() {
    // Brownlee's model: LSTM(100) encoder, LSTM(50) decoder, here scaled down.
    let cfg = ModelConfig {
        hidden: 3,
        encoder_hidden: Some(5),
        layers: 2,
        ..Default::default()
    };
    let m = Seq2Seq::new(&cfg, 6, 4, 2).unwrap();
    assert_eq!(
        m.layout.get("decoder.weight_ih_l0").unwrap().shape,
        vec![12, 5]
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let n = 4;
    let x: Vec<u8> = (0..n * 4).map(|_| rng.random_range(0..6)).collect();
    let y: Vec<u8> = (0..n * 2).map(|_| rng.random_range(0..6)).collect();
    let p: Vec<f64> = m.init_params(2);
    let mut eng = Seq2SeqEngine::<f64>::new(m.clone(), 2);
    eng.train_step(&p, &x, &y, n);
    let grad = eng.grad.clone();
    let mut e1 = Seq2SeqEngine::<f64>::new(m, 1);
    let loss = |pp: &[f64]| e1.evaluate(pp, &x, &y, n).loss_sum / (n * 2) as f64;
    gradcheck::check(
        &p,
        &grad,
        &gradcheck::sample_indices(p.len(), 5),
        1e-4,
        loss,
        "encoder 5, decoder 3",
    );
}

#[test]
fn thread_counts_agree_up_to_summation_order() {
    let (m, x, y, n) = tiny(CellKind::Lstm, 1);
    let p: Vec<f32> = m.init_params(3);
    let mut e1 = Seq2SeqEngine::<f32>::new(m.clone(), 1);
    let mut e3 = Seq2SeqEngine::<f32>::new(m.clone(), 3);
    let s1 = e1.train_step(&p, &x, &y, n);
    let s3 = e3.train_step(&p, &x, &y, n);
    assert!((s1.loss_sum - s3.loss_sum).abs() < 1e-5);
    for (a, b) in e1.grad.iter().zip(&e3.grad) {
        assert!((a - b).abs() < 1e-6);
    }
    // Same thread count: bit-identical.
    let mut e3b = Seq2SeqEngine::<f32>::new(m, 3);
    e3b.train_step(&p, &x, &y, n);
    assert_eq!(e3.grad, e3b.grad);
}

/// `train_step_adam` against `train_step` then `adam.step` on `engine.grad`, bit for bit.
pub(crate) fn assert_fused_update_is_step_then_adam(m: &Seq2Seq, x: &[u8], y: &[u8], n: usize) {
    for threads in [1, 2, 3] {
        for clip_norm in [None, Some(0.01)] {
            let cfg = crate::optim::OptimConfig {
                clip_norm,
                ..Default::default()
            };
            let mut pa: Vec<f32> = m.init_params(3);
            let mut pb = pa.clone();
            let mut ea = Seq2SeqEngine::<f32>::new(m.clone(), threads);
            let mut eb = Seq2SeqEngine::<f32>::new(m.clone(), threads);
            let mut aa = Adam::new(cfg.clone(), pa.len());
            let mut ab = Adam::new(cfg, pa.len());
            // The reference update on a thread that flushes subnormals, as the engine's do.
            let pool = math_pool(1);
            for _ in 0..3 {
                let sa = ea.train_step(&pa, x, y, n);
                pool.install(|| aa.step(&mut pa, &ea.grad)).unwrap();
                let sb = eb.train_step_adam(&mut pb, x, y, n, &mut ab).unwrap();
                assert_eq!(sa.loss_sum.to_bits(), sb.loss_sum.to_bits());
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&pa), bits(&pb));
            assert_eq!(
                (bits(&aa.m), bits(&aa.v), aa.t),
                (bits(&ab.m), bits(&ab.v), ab.t)
            );
            // The update moved the weights.
            assert_ne!(pa, m.init_params::<f32>(3));
        }
    }
}

#[test]
fn the_fused_update_gives_the_bits_of_a_step_then_adam() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let (m, x, y, n) = tiny(cell, 2);
        assert_fused_update_is_step_then_adam(&m, &x, &y, n);
    }
}

#[test]
fn predict_returns_row_major_probabilities() {
    let (m, x, _, n) = tiny(CellKind::Gru, 2);
    let p: Vec<f32> = m.init_params(1);
    let mut e2 = Seq2SeqEngine::<f32>::new(m.clone(), 2);
    let mut probs = Vec::new();
    e2.predict(&p, &x, n, &mut probs);
    assert_eq!(probs.len(), n * 2 * 5);
    for row in probs.chunks_exact(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // One row alone gives the same probabilities as within the batch.
    let mut e1 = Seq2SeqEngine::<f32>::new(m, 1);
    let mut one = Vec::new();
    e1.predict(&p, &x[3 * 3..4 * 3], 1, &mut one);
    for (a, b) in one.iter().zip(&probs[3 * 10..4 * 10]) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn f32_training_steps_track_the_f64_path() {
    // The training path (f32 products at this CPU's SIMD level, the workers' gradients summed
    // inside the fused Adam update) against the reference path (f64 products, `train_step`,
    // Adam by its formula in f64), whole steps at a time from the same parameters: the losses
    // and the parameters' moves agree to f32 rounding. A wrong f32 kernel, dispatch or fused
    // sum drives them apart at the first step.
    let (v, t_in, t_out, n) = (7, 5, 4, 24);
    let cases = [
        (CellKind::Lstm, DecoderKind::Repeat, false, 2),
        (CellKind::Gru, DecoderKind::TeacherForced, true, 1),
        (CellKind::SimpleRnn, DecoderKind::Repeat, true, 1),
    ];
    for (cell, decoder, attention, layers) in cases {
        let cfg = ModelConfig {
            cell,
            decoder,
            attention,
            layers,
            hidden: 16,
            ..Default::default()
        };
        let what = format!("{cell:?} {decoder:?} attention {attention} x{layers}");
        let m = Seq2Seq::new(&cfg, v, t_in, t_out).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let x: Vec<u8> = (0..n * t_in)
            .map(|_| rng.random_range(0..v as u8))
            .collect();
        let y: Vec<u8> = (0..n * t_out)
            .map(|_| rng.random_range(0..v as u8))
            .collect();
        let mut p32: Vec<f32> = m.init_params(8);
        let start: Vec<f64> = p32.iter().map(|&a| a as f64).collect();
        let mut p64 = start.clone();
        let opt = crate::optim::OptimConfig {
            lr: 1e-2,
            ..Default::default()
        };
        let (b1, b2) = (opt.beta1, opt.beta2);
        let mut adam = Adam::new(opt.clone(), p32.len());
        let (mut m64, mut v64) = (vec![0.0; p64.len()], vec![0.0; p64.len()]);
        let mut e32 = Seq2SeqEngine::<f32>::new(m.clone(), 2);
        let mut e64 = Seq2SeqEngine::<f64>::new(m.clone(), 2);
        for step in 1..=4 {
            let s32 = e32.train_step_adam(&mut p32, &x, &y, n, &mut adam).unwrap();
            let s64 = e64.train_step(&p64, &x, &y, n);
            let t = step as f64;
            let alpha = opt.lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
            for (i, g) in e64.grad.iter().enumerate() {
                m64[i] = b1 * m64[i] + (1.0 - b1) * g;
                v64[i] = b2 * v64[i] + (1.0 - b2) * g * g;
                p64[i] -= alpha * m64[i] / (v64[i].sqrt() + opt.eps);
            }
            let loss_err = (s32.loss_sum - s64.loss_sum).abs() / s64.loss_sum;
            assert!(
                loss_err < 1e-5,
                "{what}, step {step}: loss {loss_err:e} apart"
            );
            assert_eq!(s32.correct_chars, s64.correct_chars, "{what}, step {step}");
            // How far the two paths' parameters are apart, against how far they moved.
            let apart = p32
                .iter()
                .zip(&p64)
                .map(|(&a, &b)| (a as f64 - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let moved = p64
                .iter()
                .zip(&start)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                apart < 1e-4 * moved,
                "{what}, step {step}: parameters {apart:e} apart after moving {moved:e}"
            );
        }
    }
}
