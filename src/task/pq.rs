//! Hofstadter's pq-system in unary: `--p---` -> `q-----`.

use super::{pair_key, Dedup, Problem, TaskConfig, TaskError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Draws dash counts `a, b` uniform in `1..=pq_max`.
pub(super) struct Sampler {
    max: usize,
    dedup: Dedup,
}

impl Sampler {
    pub(super) fn new(cfg: &TaskConfig) -> Sampler {
        Sampler {
            max: cfg.pq_max,
            dedup: cfg.dedup_rule(),
        }
    }
}

impl super::Sampler for Sampler {
    type Drawn = (u128, u128);
    type Key = (u128, u128);

    fn draw(&self, rng: &mut ChaCha8Rng) -> (u128, u128) {
        (
            rng.random_range(1..=self.max) as u128,
            rng.random_range(1..=self.max) as u128,
        )
    }

    fn key(&self, &(a, b): &(u128, u128)) -> (u128, u128) {
        pair_key(self.dedup, a, b)
    }

    fn drawable_key(&self, question: &str) -> Option<(u128, u128)> {
        let (a, b) = parse_pq(question).ok()?;
        let range = 1..=self.max as u128;
        (range.contains(&a) && range.contains(&b)).then(|| pair_key(self.dedup, a, b))
    }

    fn problem(&self, (a, b): (u128, u128)) -> Problem {
        problem(a as usize, b as usize)
    }
}

/// `a` dashes, p, `b` dashes; the answer q and `a + b` dashes.
fn problem(a: usize, b: usize) -> Problem {
    let mut question = String::with_capacity(a + b + 1);
    question.extend(std::iter::repeat_n('-', a));
    question.push('p');
    question.extend(std::iter::repeat_n('-', b));
    let mut answer = String::with_capacity(a + b + 1);
    answer.push('q');
    answer.extend(std::iter::repeat_n('-', a + b));
    Problem {
        question,
        answer,
        operand_lens: vec![a, b],
        carries: 0,
    }
}

/// The problem a question as typed poses, if it is a pq-system question.
pub(super) fn solve(question: &str) -> Result<Problem, TaskError> {
    let (a, b) = parse_pq(question)?;
    Ok(problem(a as usize, b as usize))
}

/// Parses a pq-system question, `<a dashes>p<b dashes>` with a, b >= 1.
fn parse_pq(text: &str) -> Result<(u128, u128), TaskError> {
    let q = text.trim();
    let malformed = || {
        TaskError::Invalid(format!(
            "{q:?} is not a pq-system question: expected dashes, 'p', dashes, like --p---"
        ))
    };
    let (a, b) = q.split_once('p').ok_or_else(malformed)?;
    let dashes = |s: &str| !s.is_empty() && s.bytes().all(|c| c == b'-');
    if !dashes(a) || !dashes(b) {
        return Err(malformed());
    }
    Ok((a.len() as u128, b.len() as u128))
}
