//! The coupled-position transformer for long additions (`nn::transformer` over the format of
//! `codec::coupled`), run on both cores: training steps on batches split into one contiguous
//! slice per worker (gradients summed in worker order, so a given thread count always gives the
//! same bits), and greedy decoding with key/value caches, questions split across workers.

use crate::codec::coupled::{self as format, Operands, EOS};
use crate::codec::levels;
use crate::nn::loss::argmax;
use crate::nn::transformer::{DecodeState, Transformer, Workspace};

/// Sums over one training batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Σ -log p(target) over scored tokens.
    pub loss_sum: f64,
    /// Scored tokens (`n * (L + 2)`).
    pub tokens: usize,
    /// Scored tokens predicted right (teacher-forced argmax).
    pub correct: usize,
}

struct Worker {
    ws: Workspace<f32>,
    grad: Vec<f32>,
    tokens: Vec<u8>,
    segs: Vec<u8>,
    pos: Vec<u32>,
    targets: Vec<u8>,
}

/// The transformer with a thread pool and per-worker buffers.
pub struct CoupledAdditionEngine {
    pub model: Transformer,
    pool: rayon::ThreadPool,
    workers: Vec<Worker>,
    /// The summed gradient of the last `train_step` (mean over scored tokens).
    pub grad: Vec<f32>,
}

/// Key/value cache bytes one worker may hold while decoding.
const DECODE_BUDGET_BYTES: usize = 256 << 20;

impl CoupledAdditionEngine {
    pub fn new(model: Transformer, threads: usize) -> CoupledAdditionEngine {
        let threads = threads.max(1);
        let pool = crate::parallel::math_pool(threads);
        let n = model.param_count();
        let workers = (0..threads)
            .map(|_| Worker {
                ws: Workspace::default(),
                grad: vec![0.0; n],
                tokens: Vec::new(),
                segs: Vec::new(),
                pos: Vec::new(),
                targets: Vec::new(),
            })
            .collect();
        CoupledAdditionEngine {
            model,
            pool,
            workers,
            grad: vec![0.0; n],
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    fn slices(&self, n: usize) -> Vec<(usize, usize)> {
        crate::parallel::worker_slices(n, self.workers.len())
    }

    /// Forward and backward on `n` sequences of operand length `l`: `seqs` holds each one's
    /// `3L + 5` tokens (see `format::tokens`). The mean-loss gradient is left in `self.grad`.
    pub fn train_step(&mut self, p: &[f32], l: usize, n: usize, seqs: &[u8]) -> StepStats {
        let (seg_row, pos_row) = format::layout(l);
        self.train_rows(p, n, seqs, &seg_row, &pos_row, format::first_scored_row(l))
    }

    /// Forward and backward on `n` sequences that share one layout: `seqs` holds each one's
    /// `T + 1` tokens (the last is only a target), `seg_row` and `pos_row` their segments and
    /// coupled positions; rows `q_from..T` are scored. The mean-loss gradient is left in
    /// `self.grad`.
    pub fn train_rows(
        &mut self,
        p: &[f32],
        n: usize,
        seqs: &[u8],
        seg_row: &[u8],
        pos_row: &[u32],
        q_from: usize,
    ) -> StepStats {
        let full = seg_row.len();
        let t = full - 1;
        let tq = t - q_from;
        assert_eq!(seqs.len(), n * full);
        let scale = 1.0 / (n * tq) as f32;
        let slices = self.slices(n);
        let model = &self.model;
        let stats = crate::parallel::run_on_slices(
            &self.pool,
            &mut self.workers,
            &slices,
            |w, a, b| {
                let m = b - a;
                w.tokens.clear();
                w.targets.clear();
                w.segs.clear();
                w.pos.clear();
                for s in seqs[a * full..b * full].chunks_exact(full) {
                    w.tokens.extend_from_slice(&s[..t]);
                    w.targets.extend_from_slice(&s[q_from + 1..]);
                    w.segs.extend_from_slice(&seg_row[..t]);
                    w.pos.extend_from_slice(&pos_row[..t]);
                }
                w.grad.fill(0.0);
                model.forward(p, &mut w.ws, &w.tokens, &w.segs, &w.pos, m, t, q_from);
                let sums = model.loss_backward(
                    p,
                    &mut w.ws,
                    &w.tokens,
                    &w.segs,
                    &w.targets,
                    scale,
                    &mut w.grad,
                );
                StepStats {
                    loss_sum: sums.loss,
                    tokens: m * tq,
                    correct: sums.correct,
                }
            },
            Some((&mut self.grad[..], |w: &Worker| &w.grad[..])),
        );
        let mut total = StepStats::default();
        for s in &stats {
            total.loss_sum += s.loss_sum;
            total.tokens += s.tokens;
            total.correct += s.correct;
        }
        total
    }

    /// Greedy answers with key/value caches, one [`Answer`] per question: the sum's `L + 1`
    /// digits, least significant first, each fed back as the next input, and whether the model
    /// would have written exactly those digits and then EOS had it been free to write any
    /// token. Linear work per generated token.
    pub fn greedy(&mut self, p: &[f32], questions: &[Operands]) -> Vec<Answer> {
        let slices = self.slices(questions.len());
        let model = &self.model;
        let mut out: Vec<Vec<Answer>> = vec![Vec::new(); slices.len()];
        self.pool.scope(|sc| {
            for (o, &(a, b)) in out.iter_mut().zip(&slices) {
                sc.spawn(move |_| {
                    let qs = &questions[a..b];
                    let mut i = 0;
                    while i < qs.len() {
                        let l = qs[i].len();
                        let cap = 3 * l + 4;
                        let per_seq =
                            DecodeState::bytes_per_sequence(model.cfg.dim, model.cfg.layers, cap);
                        let max_n = (DECODE_BUDGET_BYTES / per_seq).clamp(1, 64);
                        let mut j = i;
                        while j < qs.len() && j - i < max_n && qs[j].len() == l {
                            j += 1;
                        }
                        o.extend(greedy_chunk(model, p, &qs[i..j]));
                        i = j;
                    }
                });
            }
        });
        out.into_iter().flatten().collect()
    }
}

impl CoupledAdditionEngine {
    /// Greedy decoding of sequences that share one layout (`layout`'s segments, positions and
    /// which rows are digits): each prompt is `layout.prompt` tokens; at every later row the
    /// model's most likely digit is taken where the layout has a digit, the layout's token
    /// elsewhere. Returns each whole written sequence and whether free greedy decoding (any
    /// token) would have written exactly it.
    pub fn greedy_layout(
        &mut self,
        p: &[f32],
        layout: &levels::Sequence,
        prompts: &[Vec<u8>],
    ) -> Vec<(Vec<u8>, bool)> {
        let slices = self.slices(prompts.len());
        let model = &self.model;
        let mut out: Vec<Vec<(Vec<u8>, bool)>> = vec![Vec::new(); slices.len()];
        let cap = layout.tokens.len();
        let per_seq = DecodeState::bytes_per_sequence(model.cfg.dim, model.cfg.layers, cap);
        let max_n = (DECODE_BUDGET_BYTES / per_seq).clamp(1, 64);
        self.pool.scope(|sc| {
            for (o, &(a, b)) in out.iter_mut().zip(&slices) {
                sc.spawn(move |_| {
                    for chunk in prompts[a..b].chunks(max_n) {
                        o.extend(greedy_layout_chunk(model, p, layout, chunk));
                    }
                });
            }
        });
        out.into_iter().flatten().collect()
    }
}

fn greedy_layout_chunk(
    model: &Transformer,
    p: &[f32],
    layout: &levels::Sequence,
    prompts: &[Vec<u8>],
) -> Vec<(Vec<u8>, bool)> {
    let n = prompts.len();
    let t = layout.tokens.len();
    let mut st = model.decode_start::<f32>(n, t - 1);
    let v = model.vocab;
    let mut logits = vec![0.0f32; n * v];
    let mut col = vec![0u8; n];
    let mut written: Vec<(Vec<u8>, bool)> = prompts
        .iter()
        .map(|pr| {
            let mut w = Vec::with_capacity(t);
            w.extend_from_slice(&pr[..layout.prompt]);
            (w, true)
        })
        .collect();
    for i in 0..t - 1 {
        if i >= layout.prompt {
            for (k, (w, free)) in written.iter_mut().enumerate() {
                let row = &logits[k * v..(k + 1) * v];
                let token = if layout.is_digit_row(i) {
                    argmax(&row[..10]) as u8
                } else {
                    layout.tokens[i]
                };
                *free &= argmax(row) as u8 == token;
                w.push(token);
            }
        }
        for (c, (w, _)) in col.iter_mut().zip(&written) {
            *c = w[i];
        }
        model.decode_step(
            p,
            &mut st,
            &col,
            &vec![layout.seg[i]; n],
            &vec![layout.pos[i]; n],
            &mut logits,
        );
    }
    for (k, (w, free)) in written.iter_mut().enumerate() {
        let last = layout.tokens[t - 1];
        *free &= argmax(&logits[k * v..(k + 1) * v]) as u8 == last;
        w.push(last);
    }
    written
}

/// A greedy answer in the format's fixed length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The sum's `L + 1` digits, least significant first: at each step the most likely digit.
    pub digits: Vec<u8>,
    /// Whether every step's most likely token of all was that digit and the step after the last
    /// digit's was EOS: what free greedy decoding (any token, stop at EOS) would have written.
    pub ends: bool,
}

/// Greedy decoding of questions that all have operand length `L`.
///
/// The format fixes the answer at `L + 1` digits, so each step takes the most likely *digit*
/// and feeds it back. Free decoding would take the most likely token of all; where that is a
/// digit the two agree, so one pass tells both: [`Answer::ends`] records whether they agreed at
/// every step and the model then chose EOS.
fn greedy_chunk(model: &Transformer, p: &[f32], qs: &[Operands]) -> Vec<Answer> {
    let n = qs.len();
    let l = qs[0].len();
    let (seg, pos) = format::layout(l);
    let prompts: Vec<Vec<u8>> = qs
        .iter()
        .map(|q| {
            let mut t = format::tokens(q, &vec![0; l + 1]);
            t.truncate(format::prompt_len(l));
            t
        })
        .collect();
    let mut st = model.decode_start::<f32>(n, 3 * l + 4);
    let v = model.vocab;
    let mut logits = vec![0.0f32; n * v];
    let mut col = vec![0u8; n];
    for i in 0..format::prompt_len(l) {
        for (c, pr) in col.iter_mut().zip(&prompts) {
            *c = pr[i];
        }
        model.decode_step(
            p,
            &mut st,
            &col,
            &vec![seg[i]; n],
            &vec![pos[i]; n],
            &mut logits,
        );
    }
    let mut answers: Vec<Answer> = (0..n)
        .map(|_| Answer {
            digits: Vec::with_capacity(l + 1),
            ends: true,
        })
        .collect();
    for j in 0..=l {
        for (k, ans) in answers.iter_mut().enumerate() {
            let row = &logits[k * v..(k + 1) * v];
            let digit = argmax(&row[..10]) as u8;
            ans.ends &= argmax(row) as u8 == digit;
            ans.digits.push(digit);
            col[k] = digit;
        }
        let row = 2 * l + 3 + j;
        model.decode_step(
            p,
            &mut st,
            &col,
            &vec![seg[row]; n],
            &vec![pos[row]; n],
            &mut logits,
        );
    }
    // After the last digit, free decoding should stop.
    for (k, ans) in answers.iter_mut().enumerate() {
        ans.ends &= argmax(&logits[k * v..(k + 1) * v]) as u8 == EOS;
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::lengths::check_answer;
    use crate::nn::transformer::Workspace;
    use rand::SeedableRng;

    #[test]
    fn greedy_digits_and_ends_agree_with_a_full_forward_over_the_answer() {
        let mut cfg = crate::config::long_addition::LengthGenRunConfig::default();
        cfg.lengthgen.model.dim = 16;
        cfg.lengthgen.model.heads = 2;
        cfg.lengthgen.model.ffn = 32;
        let model = cfg.build().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let l = 4;
        let qs = crate::task::long_addition::random_questions(&mut rng, l, 12);
        let mut saw_no_end = false;
        for seed in 0..6 {
            let p = model.init_params(seed);
            let mut engine = CoupledAdditionEngine::new(model.clone(), 2);
            let answers = engine.greedy(&p, &qs);
            let (seg, pos) = format::layout(l);
            let t = 3 * l + 4;
            let q_from = format::first_scored_row(l);
            let v = model.vocab;
            for (q, ans) in qs.iter().zip(&answers) {
                assert_eq!(ans.digits.len(), l + 1);
                let full = format::tokens(q, &ans.digits);
                let mut ws = Workspace::default();
                model.forward(&p, &mut ws, &full[..t], &seg[..t], &pos[..t], 1, t, q_from);
                let rows: Vec<&[f32]> = ws.logits.chunks_exact(v).collect();
                assert_eq!(rows.len(), l + 2);
                let mut free_agrees = true;
                for (j, row) in rows.iter().enumerate().take(l + 1) {
                    assert_eq!(argmax(&row[..10]) as u8, ans.digits[j]);
                    free_agrees &= argmax(row) as u8 == ans.digits[j];
                }
                let ends = free_agrees && argmax(rows[l + 1]) as u8 == EOS;
                assert_eq!(ans.ends, ends);
                saw_no_end |= !ends;
                let c = check_answer(q, ans);
                assert_eq!(c.exact, ans.digits == q.sum());
                assert_eq!(c.exact_eos, c.exact && ends);
            }
        }
        assert!(saw_no_end, "an untrained model never ends right");
    }

    #[test]
    fn layout_decoding_agrees_with_a_full_forward_over_what_it_wrote() {
        use crate::codec::levels::{sequence, Question, SEGMENTS, VOCAB};
        use crate::task::many_operands::{ManyOperands, Product};
        let cfg = crate::nn::transformer::TransformerConfig {
            dim: 16,
            heads: 2,
            ffn: 32,
            layers: 2,
            local_window: 2,
        };
        let model = Transformer::new(&cfg, VOCAB, SEGMENTS).unwrap();
        let sums = [["12", "345", "6"], ["99", "900", "1"]];
        let products = [("123", "45"), ("908", "70")];
        let groups: Vec<Vec<Question>> = vec![
            sums.iter()
                .map(|q| Question::Sum(ManyOperands::from_decimal(q)))
                .collect(),
            products
                .iter()
                .map(|(a, b)| Question::Product(Product::from_decimal(a, b)))
                .collect(),
        ];
        let mut saw_unfree = false;
        for qs in &groups {
            for seed in 0..3 {
                let p = model.init_params(seed);
                let mut engine = CoupledAdditionEngine::new(model.clone(), 2);
                let seqs: Vec<_> = qs.iter().map(sequence).collect();
                let layout = &seqs[0];
                let prompts: Vec<Vec<u8>> =
                    seqs.iter().map(|s| s.tokens[..s.prompt].to_vec()).collect();
                let written = engine.greedy_layout(&p, layout, &prompts);
                let t = layout.tokens.len() - 1;
                let q_from = layout.first_scored_row();
                let v = model.vocab;
                for ((w, free), s) in written.iter().zip(&seqs) {
                    assert_eq!(w.len(), t + 1);
                    assert_eq!(&w[..s.prompt], &s.tokens[..s.prompt]);
                    let mut ws = Workspace::default();
                    model.forward(
                        &p,
                        &mut ws,
                        &w[..t],
                        &layout.seg[..t],
                        &layout.pos[..t],
                        1,
                        t,
                        q_from,
                    );
                    let mut agrees = true;
                    for (r, row) in ws.logits.chunks_exact(v).enumerate() {
                        let next = q_from + r + 1;
                        if layout.is_digit_row(next) {
                            assert_eq!(argmax(&row[..10]) as u8, w[next], "row {next}");
                        } else {
                            assert_eq!(w[next], layout.tokens[next]);
                        }
                        agrees &= argmax(row) as u8 == w[next];
                    }
                    assert_eq!(*free, agrees);
                    saw_unfree |= !agrees;
                }
            }
        }
        assert!(
            saw_unfree,
            "an untrained model never writes the layout by itself"
        );
    }

    #[test]
    fn an_answer_without_its_end_symbol_is_exact_but_not_exact_with_eos() {
        let q = Operands::from_decimal("95", "7");
        let right = Answer {
            digits: q.sum(),
            ends: false,
        };
        let c = check_answer(&q, &right);
        assert_eq!((c.exact, c.exact_eos, c.right), (true, false, 3));
        let ended = Answer {
            ends: true,
            ..right
        };
        assert!(check_answer(&q, &ended).exact_eos);
        let wrong = Answer {
            digits: vec![2, 0, 0],
            ends: true,
        };
        let c = check_answer(&q, &wrong);
        assert_eq!((c.exact, c.exact_eos, c.right), (false, false, 2));
    }
}
