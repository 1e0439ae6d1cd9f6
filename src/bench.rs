//! `seqcalc bench`: times the training step and batched inference of a model, and the
//! machine's GEMM peak and FMA ceiling in the same process, so the fractions of peak are
//! measured side by side.
//!
//! FLOPs are counted as in shared/FRAMEWORKS.md: matrix products only, the nominal (Keras)
//! forward work of the model — every step's input and recurrent product, the decoder's
//! repeated input projected at every step, the output Dense at every step — and a training step
//! as 3 x forward. seqcalc does less work than that (no recurrent product at t=0, the repeated
//! input projected once, a gather instead of the one-hot product), so the GFLOP/s it reports
//! are "effective": the rate a framework doing the nominal work would need to match it.

use crate::model::{Network, Seq2Seq, Seq2SeqEngine};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Instant;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub batch: usize,
    pub threads: usize,
    /// Minimum seconds of timed training steps, and again of timed inference.
    pub seconds: f64,
    /// Examples per epoch for the s/epoch figure.
    pub epoch_examples: usize,
}

/// What `seqcalc bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub params: usize,
    pub batch: usize,
    pub threads: usize,
    pub steps_timed: usize,
    pub ms_per_step_median: f64,
    pub ms_per_step_p10: f64,
    pub ms_per_step_p90: f64,
    pub examples_per_sec: f64,
    pub secs_per_epoch: f64,
    pub epoch_examples: usize,
    pub nominal_gflop_per_step: f64,
    pub effective_gflops: f64,
    pub gemm_peak_gflops: f64,
    pub fraction_of_peak: f64,
    pub inference_answers_per_sec: f64,
    pub inference_batch: usize,
    /// Peak resident memory after the training steps (before inference).
    pub peak_memory_mib: Option<f64>,
    /// The up-front estimate `train` checks against the machine's memory.
    pub memory_estimate_mib: f64,
    /// Matrix-product work seqcalc really does per step (3 x its forward products).
    pub real_gflop_per_step: f64,
    /// The cores' fused multiply-add ceiling: one register-only FMA loop per thread, at the
    /// widest vectors the GEMMs use (None without AVX2/FMA). No GEMM reaches it.
    pub fma_peak_gflops: Option<f64>,
}

/// Forward FLOPs of a transformer over `T_in + T_out` tokens: projections and FFN on every row,
/// causal attention scores and mixing, the head on the scored rows.
fn transformer_forward_flops(
    tr: &crate::nn::transformer::Transformer,
    t_in: usize,
    t_out: usize,
    b: usize,
) -> f64 {
    let (d, f, l) = (tr.cfg.dim as f64, tr.cfg.ffn as f64, tr.cfg.layers as f64);
    let t = (t_in + t_out) as f64;
    let b = b as f64;
    let dense = l * 2.0 * b * t * (4.0 * d * d + 3.0 * d * f);
    let attn = l * 2.0 * b * t * (t + 1.0) * d;
    dense + attn + 2.0 * b * t_out as f64 * d * tr.vocab as f64
}

/// Nominal forward FLOPs of the model for `b` examples (see the module doc).
pub fn nominal_forward_flops(m: &Seq2Seq, b: usize) -> f64 {
    let rnn = match &m.net {
        Network::Transformer(tr) => return transformer_forward_flops(tr, m.t_in, m.t_out, b),
        Network::Recurrent(rnn) => rnn,
    };
    let h = m.cfg.hidden as f64;
    let g = m.cfg.cell.gates() as f64;
    let b = b as f64;
    let enc = m.t_in as f64 * 2.0 * b * (m.vocab as f64 + h) * g * h;
    let dec = rnn.decoders.len() as f64 * m.t_out as f64 * 2.0 * b * (h + h) * g * h;
    let head = m.t_out as f64 * 2.0 * b * h * m.vocab as f64;
    enc + dec + head
}

/// Forward FLOPs of the products seqcalc really runs: no recurrent product at t=0 (h0 = 0), the
/// repeated decoder input projected once, a gather instead of the one-hot input product.
pub fn real_forward_flops(m: &Seq2Seq, b: usize) -> f64 {
    let rnn = match &m.net {
        Network::Transformer(tr) => return transformer_forward_flops(tr, m.t_in, m.t_out, b),
        Network::Recurrent(rnn) => rnn,
    };
    let h = m.cfg.hidden as f64;
    let gh = m.cfg.cell.gates() as f64 * h;
    let b = b as f64;
    let rec = |t: usize| (t.saturating_sub(1)) as f64 * 2.0 * b * h * gh;
    let mut f = rec(m.t_in);
    for l in 0..rnn.decoders.len() {
        let input = if l == 0 {
            2.0 * b * h * gh
        } else {
            m.t_out as f64 * 2.0 * b * h * gh
        };
        f += input + rec(m.t_out);
    }
    f + m.t_out as f64 * 2.0 * b * h * m.vocab as f64
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// GEMM peak: `threads` independent 1024x1024x1024 sgemm calls at once (one per core, the way
/// seqcalc uses the cores), median aggregate GFLOP/s over a few rounds.
pub fn gemm_peak_gflops(threads: usize) -> f64 {
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| crate::nn::flush_denormals())
        .build()
        .expect("pool");
    let mut cs: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0f32; n * n]).collect();
    let mut rates = Vec::new();
    for round in 0..6 {
        let t0 = Instant::now();
        pool.scope(|s| {
            for c in cs.iter_mut() {
                let (a, b) = (&a, &b);
                s.spawn(move |_| {
                    crate::nn::gemm::gemm(
                        n,
                        n,
                        n,
                        1.0,
                        a,
                        crate::nn::gemm::Op::N,
                        b,
                        crate::nn::gemm::Op::N,
                        0.0,
                        c,
                    )
                });
            }
        });
        if round > 0 {
            rates
                .push(threads as f64 * 2.0 * (n * n * n) as f64 / t0.elapsed().as_secs_f64() / 1e9);
        }
    }
    rates.sort_by(|x, y| x.total_cmp(y));
    percentile(&rates, 0.5)
}

/// The FMA ceiling: `threads` register-only loops of independent fused multiply-adds at once,
/// one on each pool thread, with the vectors the GEMM runs (AVX-512 where its AVX-512 kernel
/// runs, else AVX2 with FMA), median aggregate GFLOP/s over a few rounds; `None` where the CPU
/// has neither.
pub fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = fma_vectors()?;
        let iters = std::hint::black_box(2_000_000usize);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let mut rates = Vec::new();
        for round in 0..6 {
            let t0 = Instant::now();
            let flops: f64 = pool
                .broadcast(|_| {
                    if avx512 {
                        // SAFETY: the AVX-512 GEMM runs only where the CPU has AVX-512F.
                        unsafe { fma_loop_avx512(iters) }
                    } else {
                        // SAFETY: AVX2 and FMA were detected above.
                        unsafe { fma_loop_avx2(iters) }
                    }
                })
                .iter()
                .sum();
            if round > 0 {
                rates.push(flops / t0.elapsed().as_secs_f64() / 1e9);
            }
        }
        rates.sort_by(|x, y| x.total_cmp(y));
        Some(percentile(&rates, 0.5))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// The vectors the FMA ceiling is measured with, those the GEMM runs: `Some(true)` for
/// AVX-512 (where its AVX-512 kernel runs), `Some(false)` for AVX2 with FMA, `None` without.
#[cfg(target_arch = "x86_64")]
fn fma_vectors() -> Option<bool> {
    if crate::nn::sgemm::available() {
        Some(true)
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Some(false)
    } else {
        None
    }
}

/// 24 independent accumulators (enough to cover the FMA latency on two ports); returns the
/// FLOPs done, after a reduction the optimiser cannot drop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iters: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 24];
    for (i, x) in acc.iter_mut().enumerate() {
        *x = _mm512_set1_ps(std::hint::black_box(i as f32 * 1e-3));
    }
    let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
    std::hint::black_box(_mm512_reduce_add_ps(sum));
    iters as f64 * 24.0 * 32.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iters: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 12];
    for (i, x) in acc.iter_mut().enumerate() {
        *x = _mm256_set1_ps(std::hint::black_box(i as f32 * 1e-3));
    }
    let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let b = _mm256_set1_ps(std::hint::black_box(1e-7));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
    let mut out = [0.0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    std::hint::black_box(out);
    iters as f64 * 12.0 * 16.0
}

/// Peak resident memory of this process (VmHWM), if the OS tells.
pub fn peak_memory_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Times training steps and inference of `model` on random symbols.
pub fn run(model: Seq2Seq, name: &str, cfg: &BenchConfig) -> BenchReport {
    let (t_in, t_out, v) = (model.t_in, model.t_out, model.vocab);
    let params: Vec<f32> = model.init_params(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let b = cfg.batch;
    let x: Vec<u8> = (0..b * t_in)
        .map(|_| rng.random_range(0..v as u8))
        .collect();
    let y: Vec<u8> = (0..b * t_out)
        .map(|_| rng.random_range(0..v as u8))
        .collect();
    let mut engine: Seq2SeqEngine<f32> = Seq2SeqEngine::new(model.clone(), cfg.threads);
    let mut adam = crate::optim::Adam::new(Default::default(), model.param_count());
    let mut p = params.clone();
    let mut step = |engine: &mut Seq2SeqEngine<f32>, p: &mut Vec<f32>| {
        engine
            .train_step_adam(p, &x, &y, b, &mut adam)
            .expect("finite gradients");
    };
    let warm = Instant::now();
    let mut warm_steps = 0;
    while warm_steps < 5 || (warm.elapsed().as_secs_f64() < 0.3 && warm_steps < 50) {
        step(&mut engine, &mut p);
        warm_steps += 1;
    }
    let mut times = Vec::new();
    let t0 = Instant::now();
    while times.len() < 10 || (t0.elapsed().as_secs_f64() < cfg.seconds && times.len() < 100_000) {
        let s = Instant::now();
        step(&mut engine, &mut p);
        times.push(s.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let med = percentile(&times, 0.5);
    let steps_per_epoch = cfg.epoch_examples.div_ceil(b) as f64;
    let nominal = 3.0 * nominal_forward_flops(&model, b) / 1e9;
    let train_peak = peak_memory_mib();
    // Inference in the batches eval and predict use (1024 rows, fewer for long sequences).
    let nb = model
        .inference_rows(crate::model::INFERENCE_BUDGET_BYTES)
        .min(cfg.epoch_examples.max(1));
    let xi: Vec<u8> = (0..nb * t_in)
        .map(|_| rng.random_range(0..v as u8))
        .collect();
    let mut probs = Vec::new();
    engine.predict(&params, &xi, nb, &mut probs);
    let ti = Instant::now();
    let mut answered = 0;
    // As long as the training steps: a third of it (one second in `bench/compare`, whose PyTorch
    // inference runs three) swung 1.5x between runs on this shared machine.
    while answered < 4 * nb || ti.elapsed().as_secs_f64() < cfg.seconds {
        engine.predict(&params, &xi, nb, &mut probs);
        answered += nb;
    }
    let inference = answered as f64 / ti.elapsed().as_secs_f64();
    let peak = gemm_peak_gflops(cfg.threads);
    let fma_peak = fma_peak_gflops(cfg.threads);
    let effective = nominal / (med / 1e3);
    BenchReport {
        model: name.to_string(),
        params: model.param_count(),
        batch: b,
        threads: cfg.threads,
        steps_timed: times.len(),
        ms_per_step_median: med,
        ms_per_step_p10: percentile(&times, 0.1),
        ms_per_step_p90: percentile(&times, 0.9),
        examples_per_sec: b as f64 / (med / 1e3),
        secs_per_epoch: med / 1e3 * steps_per_epoch,
        epoch_examples: cfg.epoch_examples,
        nominal_gflop_per_step: nominal,
        effective_gflops: effective,
        gemm_peak_gflops: peak,
        fraction_of_peak: effective / peak,
        inference_answers_per_sec: inference,
        peak_memory_mib: train_peak,
        inference_batch: nb,
        memory_estimate_mib: model.memory_estimate_bytes(b, cfg.threads) as f64 / (1 << 20) as f64,
        real_gflop_per_step: 3.0 * real_forward_flops(&model, b) / 1e9,
        fma_peak_gflops: fma_peak,
    }
}

impl BenchReport {
    /// A table for people.
    pub fn to_table(&self) -> String {
        format!(
            "model {} ({} parameters), batch {}, {} thread(s)\n\
             training step: median {:.2} ms (p10 {:.2}, p90 {:.2}) over {} steps\n\
             examples/s: {:.0}    s/epoch ({} examples): {:.2}\n\
             nominal work: {:.3} GFLOP/step (Keras's matrix products, 3 x forward) -> {:.1} GFLOP/s effective\n\
             real work: {:.3} GFLOP/step (the products seqcalc runs) -> {:.1} GFLOP/s\n\
             GEMM peak (seqcalc sgemm 1024^3, one per thread, same process): {:.1} GFLOP/s\n\
             fraction of peak: {:.0}% effective, {:.0}% real\n\
             FMA ceiling (register-only multiply-adds, one loop per thread): {}\n\
             inference (batches of {}): {:.0} answers/s\n\
             peak memory while training: {} (up-front estimate {:.0} MiB)\n",
            self.model,
            self.params,
            self.batch,
            self.threads,
            self.ms_per_step_median,
            self.ms_per_step_p10,
            self.ms_per_step_p90,
            self.steps_timed,
            self.examples_per_sec,
            self.epoch_examples,
            self.secs_per_epoch,
            self.nominal_gflop_per_step,
            self.effective_gflops,
            self.real_gflop_per_step,
            self.real_gflop_per_step / (self.ms_per_step_median / 1e3),
            self.gemm_peak_gflops,
            100.0 * self.fraction_of_peak,
            100.0 * self.real_gflop_per_step / (self.ms_per_step_median / 1e3) / self.gemm_peak_gflops,
            self.fma_peak_gflops.map_or("not measured (no AVX2/FMA)".to_string(), |f| format!(
                "{f:.1} GFLOP/s; real work at {:.0}% of it, the 1024^3 GEMM at {:.0}%",
                100.0 * self.real_gflop_per_step / (self.ms_per_step_median / 1e3) / f,
                100.0 * self.gemm_peak_gflops / f
            )),
            self.inference_batch,
            self.inference_answers_per_sec,
            self.peak_memory_mib.map_or("unknown".to_string(), |m| format!("{m:.0} MiB")),
            self.memory_estimate_mib,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FMA ceiling is measured where the CPU has vector FMAs (a finite, positive rate; no
    /// test asserts a speed) and reported as absent elsewhere.
    #[test]
    fn fma_ceiling_is_measured_where_there_are_vector_fmas() {
        #[cfg(target_arch = "x86_64")]
        if fma_vectors().is_some() {
            let fma = fma_peak_gflops(1).expect("measured with AVX2 or AVX-512");
            assert!(fma.is_finite() && fma > 0.0, "{fma}");
            return;
        }
        assert_eq!(fma_peak_gflops(1), None);
    }
}
