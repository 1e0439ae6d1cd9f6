//! Criterion benchmarks of each kernel at the reference model's shapes (one worker's slice of
//! 64 rows, hidden 128): recurrent layers forward and backward, dense + softmax cross-entropy,
//! the Adam update, and a whole training step of the default model on 1 and 2 threads.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use seqcalc::model::{ModelConfig, Seq2Seq, Seq2SeqEngine};
use seqcalc::nn::dense::Dense;
use seqcalc::nn::loss::softmax_xent_forward_backward;
use seqcalc::nn::params::ParamLayout;
use seqcalc::nn::rnn::{CellKind, RnnCache, RnnInput, RnnInputGrad, RnnLayer, RnnPack};
use seqcalc::optim::{Adam, OptimConfig};
use std::hint::black_box;

const B: usize = 64;
const H: usize = 128;

fn recurrent_gemm(c: &mut Criterion) {
    use seqcalc::nn::gemm::{gemm, Op};
    use seqcalc::nn::packed::{gemm_packed, PackedB};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    // Forward: gates [64, 512] += h [64, 128] @ W_hh^T; backward: dh [64, 128] = dz [64, 512] @ W_hh.
    // Forward and backward of a training step's half batch (64 rows); inference's half of a
    // 1,024-row batch (512 rows).
    for (name, m, k, n, op) in [
        ("forward h @ W_hh^T (64x128x512)", B, H, 4 * H, Op::T),
        ("backward dz @ W_hh (64x512x128)", B, 4 * H, H, Op::N),
        ("inference h @ W_hh^T (512x128x512)", 512, H, 4 * H, Op::T),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut out = vec![0.0f32; m * n];
        c.bench_function(&format!("unpacked gemm {name}"), |bch| {
            bch.iter(|| gemm(m, k, n, 1.0, &a, Op::N, &w, op, 0.0, &mut out))
        });
        let mut pb = PackedB::default();
        pb.pack_from(&w, k, n, op);
        c.bench_function(&format!("prepacked kernel {name}"), |bch| {
            bch.iter(|| gemm_packed(m, &a, &pb, &mut out, false))
        });
    }
}

fn rnn_kernels(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn] {
        // Encoder shape: 7 steps of symbols over 12; decoder shape: 4 steps of a repeated input.
        let mut layout = ParamLayout::default();
        let enc = RnnLayer::new(&mut layout, "e", "", cell, 12, H);
        let dec = RnnLayer::new(&mut layout, "d", "", cell, H, H);
        let mut p = vec![0.0f32; layout.total];
        enc.init(&mut p, &mut rng);
        dec.init(&mut p, &mut rng);
        let sym: Vec<u8> = (0..7 * B).map(|_| rng.random_range(0..12)).collect();
        let x: Vec<f32> = (0..B * H).map(|_| rng.random_range(-1.0..1.0)).collect();
        let dseq: Vec<f32> = (0..4 * B * H)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut grad = vec![0.0f32; layout.total];
        let mut dx = vec![0.0f32; B * H];
        let (mut ce, mut cd) = (RnnCache::default(), RnnCache::default());
        let (mut pe, mut pd) = (RnnPack::default(), RnnPack::default());
        enc.pack(&p, &mut pe);
        dec.pack(&p, &mut pd);
        let name = cell.keras_name();
        c.bench_function(
            &format!("{name} encoder forward (7 steps, symbols)"),
            |bch| bch.iter(|| enc.forward(&p, &pe, RnnInput::Symbols(&sym), B, 7, &mut ce)),
        );
        // A backward consumes its forward (an LSTM's writes dz over the gates): each timed
        // backward gets a fresh copy of the forward's cache, made outside the timing.
        c.bench_function(&format!("{name} encoder backward"), |bch| {
            enc.forward(&p, &pe, RnnInput::Symbols(&sym), B, 7, &mut ce);
            bch.iter_batched(
                || ce.clone(),
                |mut cache| {
                    enc.backward(
                        &p,
                        &pe,
                        RnnInput::Symbols(&sym),
                        B,
                        7,
                        &mut cache,
                        None,
                        Some(&x),
                        &mut grad,
                        RnnInputGrad::None,
                    );
                    cache
                },
                BatchSize::LargeInput,
            )
        });
        c.bench_function(
            &format!("{name} decoder forward (4 steps, repeated input)"),
            |bch| bch.iter(|| dec.forward(&p, &pd, RnnInput::Repeat(&x), B, 4, &mut cd)),
        );
        c.bench_function(&format!("{name} decoder backward"), |bch| {
            dec.forward(&p, &pd, RnnInput::Repeat(&x), B, 4, &mut cd);
            bch.iter_batched(
                || cd.clone(),
                |mut cache| {
                    dec.backward(
                        &p,
                        &pd,
                        RnnInput::Repeat(&x),
                        B,
                        4,
                        &mut cache,
                        Some(&dseq),
                        None,
                        &mut grad,
                        RnnInputGrad::Dense(&mut dx),
                    );
                    cache
                },
                BatchSize::LargeInput,
            )
        });
    }
}

fn head_and_adam(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut layout = ParamLayout::default();
    let d = Dense::new(&mut layout, "head", H, 12);
    let mut p = vec![0.0f32; layout.total];
    d.init(&mut p, &mut rng);
    let n = 4 * B;
    let x: Vec<f32> = (0..n * H).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t: Vec<u8> = (0..n).map(|_| rng.random_range(0..12)).collect();
    let mut logits = vec![0.0f32; n * 12];
    let mut am = vec![0u8; n];
    let mut grad = vec![0.0f32; layout.total];
    let mut dx = vec![0.0f32; n * H];
    c.bench_function(
        "dense + softmax cross-entropy, forward and backward (256 rows)",
        |bch| {
            bch.iter(|| {
                d.forward(&p, &x, n, &mut logits);
                let s = softmax_xent_forward_backward(
                    &mut logits,
                    &t,
                    None,
                    12,
                    1.0 / n as f32,
                    &mut am,
                );
                d.backward(&p, &x, &logits, n, &mut grad, Some(&mut dx));
                black_box(s)
            })
        },
    );
    let np = 205_324;
    let mut params: Vec<f32> = (0..np).map(|_| rng.random_range(-0.1..0.1)).collect();
    let g: Vec<f32> = (0..np).map(|_| rng.random_range(-0.01..0.01)).collect();
    let mut adam = Adam::new(OptimConfig::default(), np);
    c.bench_function("Adam update (205,324 parameters)", |bch| {
        bch.iter(|| adam.step(&mut params, &g).unwrap())
    });
}

fn train_step(c: &mut Criterion) {
    let m = Seq2Seq::new(&ModelConfig::default(), 12, 7, 4).unwrap();
    let p: Vec<f32> = m.init_params(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x: Vec<u8> = (0..128 * 7).map(|_| rng.random_range(0..12)).collect();
    let y: Vec<u8> = (0..128 * 4).map(|_| rng.random_range(0..12)).collect();
    for threads in [1, 2] {
        let mut e: Seq2SeqEngine<f32> = Seq2SeqEngine::new(m.clone(), threads);
        c.bench_function(
            &format!("training step, default model, batch 128, {threads} thread(s)"),
            |bch| bch.iter(|| e.train_step(&p, &x, &y, 128)),
        );
    }
}

/// A training step of the length-generalisation transformer (the reference's sizes, no window
/// and window 2) at batch 256 on operands of 10 and 20 digits (tokens/s = 256 (3L + 4) / time).
fn transformer_step(c: &mut Criterion) {
    use seqcalc::codec::coupled as format;
    use seqcalc::model::coupled as engine;
    use seqcalc::nn::transformer::{Transformer, TransformerConfig};
    use seqcalc::task::long_addition::random_questions;
    let mut g = c.benchmark_group("transformer");
    g.sample_size(20);
    for window in [0, 2] {
        let cfg = TransformerConfig {
            local_window: window,
            ..TransformerConfig::default()
        };
        let m = Transformer::new(&cfg, format::VOCAB, format::SEGMENTS).unwrap();
        let p: Vec<f32> = m.init_params(1);
        for l in [10, 20] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let qs = random_questions(&mut rng, l, 256);
            let seqs: Vec<u8> = qs
                .iter()
                .flat_map(|q| format::tokens(q, &q.sum()))
                .collect();
            g.throughput(criterion::Throughput::Elements((256 * (3 * l + 4)) as u64));
            for threads in [1, 2] {
                let mut e = engine::CoupledAdditionEngine::new(m.clone(), threads);
                g.bench_function(
                    format!(
                        "training step, window {window}, L {l}, batch 256, {threads} thread(s)"
                    ),
                    |bch| bch.iter(|| e.train_step(&p, l, 256, &seqs)),
                );
            }
        }
    }
    g.finish();
}

/// seqcalc's sgemm (AVX-512 where the CPU has it) against `matrixmultiply` on the products of
/// the length-generalisation transformer (batch 256, L = 10: 8,704 rows of keys) and of the
/// 3-digit LSTM, plus the 1024^3 product `seqcalc bench` calls the peak.
fn sgemm_shapes(c: &mut Criterion) {
    let shapes = [
        ("qkv forward", 8704, 128, 384, false, false),
        ("dX = dY W^T", 8704, 384, 128, false, true),
        ("dW = X^T dY", 128, 8704, 384, true, false),
        ("FFN up", 3072, 128, 1024, false, false),
        ("FFN down", 3072, 512, 128, false, false),
        ("LSTM input", 448, 12, 512, false, false),
        ("square 1024", 1024, 1024, 1024, false, false),
    ];
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(20);
    for (name, m, k, n, ta, tb) in shapes {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut out = vec![0.0f32; m * n];
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let label = format!("{name} {m}x{k}x{n}");
        both_sgemms(
            &mut g,
            &label,
            (m, k, n),
            (&a, rsa, csa),
            (&b, rsb, csb),
            &mut out,
        );
    }
    // One head's attention scores, as the transformer runs them: Q (34 x 32) and K (34 x 32)
    // read in place from the fused [34, 384] QKV rows, K transposed (`Q K^T`, 34 x 32 x 34).
    let (t, dh, w3) = (34usize, 32usize, 384isize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let qkv: Vec<f32> = (0..t * w3 as usize)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut scores = vec![0.0f32; t * t];
    let label = format!("Q K^T one head {t}x{dh}x{t} (row stride {w3})");
    let (q, keys) = (&qkv[..], &qkv[128..]);
    both_sgemms(
        &mut g,
        &label,
        (t, dh, t),
        (q, w3, 1),
        (keys, 1, w3),
        &mut scores,
    );
    g.finish();
}

/// Times `C = A @ B` (C row-major `[m, n]`, A and B given with their row and column strides)
/// with seqcalc's sgemm and with `matrixmultiply`'s.
fn both_sgemms(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): (&[f32], isize, isize),
    (b, rsb, csb): (&[f32], isize, isize),
    out: &mut [f32],
) {
    g.throughput(criterion::Throughput::Elements((2 * m * k * n) as u64));
    for ours in [true, false] {
        let which = if ours { "seqcalc" } else { "matrixmultiply" };
        g.bench_function(format!("{label}, {which}"), |bch| {
            bch.iter(|| unsafe {
                let f = if ours {
                    seqcalc::nn::sgemm::sgemm
                } else {
                    matrixmultiply::sgemm
                };
                let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
                f(
                    m, k, n, 1.0, ap, rsa, csa, bp, rsb, csb, 0.0, cp, n as isize, 1,
                )
            })
        });
    }
}

criterion_group!(
    benches,
    sgemm_shapes,
    recurrent_gemm,
    rnn_kernels,
    head_and_adam,
    train_step,
    transformer_step
);
criterion_main!(benches);
