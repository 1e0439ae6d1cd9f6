//! The coupled-position transformer on the two-level scratchpad formats (`codec::levels`):
//! many-operand addition and multiplication, trained on fresh batches that share a shape
//! (operand count and length, or both operands' lengths), on the loop of [`steps`].

use super::steps::{StepLoss, StepNet};
use crate::codec::levels::{sequence, Question};
use crate::config::long_addition::{LengthGenTrain, LongTask};
use crate::eval::grids::score_levels;
use crate::eval::lengths::Check;
use crate::model::coupled::CoupledAdditionEngine;
use crate::nn::params::ParamLayout;
use crate::task::many_operands::{
    addition_bucket, addition_questions, addition_stress_rewrite, product_bucket, product_questions,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// The transformer with the task and batch settings.
pub struct LevelsNet {
    pub engine: CoupledAdditionEngine,
    pub task: LongTask,
    pub train: LengthGenTrain,
    seqs: Vec<u8>,
}

impl LevelsNet {
    pub fn new(engine: CoupledAdditionEngine, task: LongTask, train: LengthGenTrain) -> Self {
        LevelsNet {
            engine,
            task,
            train,
            seqs: Vec::new(),
        }
    }

    /// One training batch (questions of one shape).
    pub fn batch(&self, rng: &mut ChaCha8Rng) -> Vec<Question> {
        let t = &self.train;
        let digits = (t.min_digits, t.max_digits);
        match self.task {
            LongTask::Multiplication => product_bucket(rng, digits, t.batch_size)
                .into_iter()
                .map(Question::Product)
                .collect(),
            _ => {
                let ops = (t.min_operands, t.max_operands);
                let mut qs = addition_bucket(rng, ops, digits, t.batch_size);
                addition_stress_rewrite(rng, &mut qs, t.stress_fraction);
                // Zero columns above the operands, as many as more operands would need.
                if t.pad_fraction > 0.0 && rng.random_bool(t.pad_fraction) {
                    let padded = rng.random_range(qs[0].len()..=t.pad_to_digits.max(qs[0].len()));
                    for q in &mut qs {
                        for o in &mut q.ops {
                            o.resize(padded, 0);
                        }
                    }
                }
                qs.into_iter().map(Question::Sum).collect()
            }
        }
    }
}

impl StepNet for LevelsNet {
    type Question = Question;

    /// Many-operand addition: `max_operands` operands of `len` digits; multiplication: `len`
    /// x `len` digits.
    fn eval_set(&self, rng: &mut ChaCha8Rng, len: usize, count: usize) -> Vec<Question> {
        let seed = rng.random();
        match self.task {
            LongTask::Multiplication => product_questions(seed, len, len, count)
                .unwrap_or_default()
                .into_iter()
                .map(Question::Product)
                .collect(),
            _ => addition_questions(seed, self.train.max_operands, len, count)
                .unwrap_or_default()
                .into_iter()
                .map(Question::Sum)
                .collect(),
        }
    }

    fn layout(&self) -> &ParamLayout {
        &self.engine.model.layout
    }

    fn init_params(&self, seed: u64) -> Vec<f32> {
        self.engine.model.init_params(seed)
    }

    fn decay_ranges(&self) -> Vec<Range<usize>> {
        self.engine.model.decay_ranges()
    }

    fn describe(&self) -> String {
        let m = &self.engine.model;
        format!(
            "model: {} layer(s), d {}, {} heads, FFN {}, window {}: {} parameters; {} thread(s); two-level scratchpad",
            m.cfg.layers,
            m.cfg.dim,
            m.cfg.heads,
            m.cfg.ffn,
            m.cfg.local_window,
            m.param_count(),
            self.engine.threads()
        )
    }

    fn step(&mut self, params: &[f32], rng: &mut ChaCha8Rng) -> StepLoss {
        let qs = self.batch(rng);
        let seqs: Vec<_> = qs.iter().map(sequence).collect();
        self.seqs.clear();
        for s in &seqs {
            self.seqs.extend_from_slice(&s.tokens);
        }
        let l = &seqs[0];
        let st = self.engine.train_rows(
            params,
            qs.len(),
            &self.seqs,
            &l.seg,
            &l.pos,
            l.first_scored_row(),
        );
        StepLoss {
            loss: st.loss_sum / st.tokens.max(1) as f64,
            examples: qs.len(),
            tokens: (qs.len() * (l.tokens.len() - 1)) as u64,
        }
    }

    fn grad(&self) -> &[f32] {
        &self.engine.grad
    }

    fn score(&mut self, params: &[f32], qs: &[Question]) -> Vec<Check> {
        score_levels(&mut self.engine, params, qs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::long_addition::{many_operands_config, multiplication_config};
    use crate::eval::lengths::exact_rate;
    use crate::rundir;
    use crate::train::step_nets::train_coupled;
    use std::sync::atomic::AtomicBool;

    fn rate(engine: &mut CoupledAdditionEngine, p: &[f32], qs: Vec<Question>) -> f64 {
        exact_rate(&score_levels(engine, p, &qs))
    }

    fn sums(seed: u64, k: usize, len: usize, n: usize) -> Vec<Question> {
        addition_questions(seed, k, len, n)
            .unwrap()
            .into_iter()
            .map(Question::Sum)
            .collect()
    }

    #[test]
    fn a_small_model_learns_running_sums_and_answers_more_and_longer_operands() {
        let mut cfg = many_operands_config(true);
        cfg.seed = 3;
        let m = &mut cfg.lengthgen.model;
        (m.dim, m.heads, m.ffn) = (48, 2, 128);
        let t = &mut cfg.lengthgen.train;
        // Five operands is the fewest that show a sum line reading the operand above it at
        // every level residue (segments carry the level modulo 3): trained on 2..4 the model
        // never sees `s_4` beside `a_5`, and fails from five operands on.
        (t.min_digits, t.max_digits, t.min_operands, t.max_operands) = (1, 4, 2, 5);
        (t.steps, t.batch_size, t.eval_every, t.threads) = (STEPS, 64, STEPS, 2);
        (t.pad_fraction, t.pad_to_digits) = (0.25, 7);
        (t.eval_lengths, t.eval_count) = (vec![4], 10);
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut lines = Vec::new();
        let (mut engine, p, out) =
            train_coupled(&cfg, dir.path(), rundir::Open::New, &stop, &mut |l| {
                lines.push(l.to_string())
            })
            .unwrap();
        let in_dist = rate(&mut engine, &p, sums(1, 4, 4, 100));
        let longer = rate(&mut engine, &p, sums(2, 4, 8, 100));
        let more = rate(&mut engine, &p, sums(3, 12, 8, 50));
        eprintln!(
            "exact: 4 x 4 {in_dist}, 4 x 8 {longer}, 12 x 8 {more} ({:.1} s) {lines:?}",
            out.train_secs
        );
        assert!(in_dist >= 0.95, "4 operands of 4 digits: {in_dist}");
        assert!(
            longer >= 0.9,
            "4 operands of 8 digits (trained on 1..4): {longer}"
        );
        assert!(
            more >= 0.9,
            "12 operands of 8 digits (trained on 2..5): {more}"
        );
    }

    const STEPS: usize = 3000;

    #[test]
    fn quick_configs_train_and_score_both_tasks() {
        for cfg in [many_operands_config(true), multiplication_config(true)] {
            let dir = tempfile::tempdir().unwrap();
            let stop = AtomicBool::new(false);
            let (_, p, out) =
                train_coupled(&cfg, dir.path(), rundir::Open::New, &stop, &mut |_| {}).unwrap();
            assert_eq!(out.steps, cfg.lengthgen.train.steps);
            assert!(out.history.iter().all(|r| r.loss.is_finite()));
            assert_eq!(p.len(), cfg.build().unwrap().param_count());
        }
    }
}
