//! The whole domain of a task: every question it can ask, each exactly once, for scoring a
//! model on all of them (`seqcalc eval --exhaustive`).
//!
//! The domain is every question as written: for two-operand tasks every *ordered* pair
//! (`2+7` and `7+2` are two questions, whatever the dedup rule of generation), for expressions
//! every written form (term count, operands, operators, bracket structure). Questions come in
//! a fixed order (the first operand slowest), computed from an index, so a domain of millions
//! is walked in chunks without holding it in memory.

use super::arithmetic;
use super::operand::{operand_floor, pow10};
use super::{expression, Problem, Sampler as _, TaskConfig, TaskError, TaskKind};

/// The most questions a domain may have to be enumerated.
pub const MAX_DOMAIN: u128 = 10_000_000;

/// Every question of one task, in a fixed order, produced lazily from an index.
pub struct Domain {
    size: u64,
    next: u64,
    at: Box<dyn Fn(u64) -> Problem + Send + Sync>,
}

impl Domain {
    /// Questions in the domain.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The question at `index` (`index < size`).
    pub fn get(&self, index: u64) -> Problem {
        assert!(index < self.size, "index {index} beyond {}", self.size);
        (self.at)(index)
    }
}

impl Iterator for Domain {
    type Item = Problem;

    fn next(&mut self) -> Option<Problem> {
        if self.next >= self.size {
            return None;
        }
        self.next += 1;
        Some((self.at)(self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.size - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Domain {}

/// How many questions the whole domain of `cfg` has, every question as written (saturating).
pub fn domain_size(cfg: &TaskConfig) -> Result<u128, TaskError> {
    cfg.validate()?;
    Ok(match cfg.kind {
        TaskKind::Arithmetic | TaskKind::PqSystem => {
            let (lo, hi) = operand_range(cfg);
            let values = hi - lo + 1;
            values.saturating_mul(values)
        }
        TaskKind::Expression => expression::distinct_questions(cfg),
    })
}

/// Every question of `cfg`'s domain, each once; refused when there are more than
/// [`MAX_DOMAIN`].
pub fn enumerate(cfg: &TaskConfig) -> Result<Domain, TaskError> {
    let size = domain_size(cfg)?;
    if size > MAX_DOMAIN {
        return Err(TaskError::DomainTooLarge {
            what: cfg.describe(),
            size,
            max: MAX_DOMAIN,
        });
    }
    let size = size as u64;
    let at: Box<dyn Fn(u64) -> Problem + Send + Sync> = match cfg.kind {
        TaskKind::Arithmetic => {
            let (lo, hi) = operand_range(cfg);
            let values = (hi - lo + 1) as u64;
            let sampler = arithmetic::Sampler::new(cfg)?;
            Box::new(move |i| {
                let (a, b) = (i / values, i % values);
                sampler.problem((lo + a as u128, lo + b as u128))
            })
        }
        TaskKind::PqSystem => {
            let values = cfg.pq_max as u64;
            let sampler = super::pq::Sampler::new(cfg);
            Box::new(move |i| {
                let (a, b) = (i / values, i % values);
                sampler.problem((1 + a as u128, 1 + b as u128))
            })
        }
        TaskKind::Expression => {
            let forms = expression::Forms::new(cfg)?;
            debug_assert_eq!(forms.size(), size as u128);
            Box::new(move |i| forms.problem(i as u128))
        }
    };
    Ok(Domain { size, next: 0, at })
}

/// The smallest and largest operand of a two-operand task (validated).
fn operand_range(cfg: &TaskConfig) -> (u128, u128) {
    match (cfg.kind, cfg.max_value) {
        (TaskKind::PqSystem, _) => (1, cfg.pq_max as u128),
        (_, Some(max)) => (cfg.min_value as u128, max as u128),
        _ => (operand_floor(cfg.min_digits), pow10(cfg.digits) - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{generate, solve, Dedup};
    use std::collections::HashSet;

    fn arith(digits: usize, op: &str) -> TaskConfig {
        TaskConfig {
            digits,
            op: op.into(),
            ..TaskConfig::default()
        }
    }

    /// Enumerates `cfg`, checks every question is one of the task's own (its answer and
    /// analysis as `solve` gives them) and none repeats; returns the questions.
    fn walk(cfg: &TaskConfig) -> HashSet<String> {
        let domain = enumerate(cfg).unwrap();
        let size = domain.size();
        assert_eq!(domain.len() as u64, size);
        let mut seen = HashSet::new();
        for p in domain {
            assert_eq!(p, solve(cfg, &p.question).unwrap(), "{}", p.question);
            assert!(seen.insert(p.question.clone()), "{} twice", p.question);
        }
        assert_eq!(seen.len() as u64, size);
        seen
    }

    #[test]
    fn two_operand_domains_are_every_ordered_pair_once() {
        // Brute force: every pair of the operand range, written out.
        let brute = |lo: u64, hi: u64, op: &str| -> HashSet<String> {
            (lo..=hi)
                .flat_map(|a| (lo..=hi).map(move |b| format!("{a}{op}{b}")))
                .collect()
        };
        assert_eq!(walk(&arith(1, "+")), brute(0, 9, "+"));
        assert_eq!(walk(&arith(2, "-")), brute(0, 99, "-"));
        // The dedup rule of generation does not shrink the domain: 2+7 and 7+2 both count.
        let sorted = TaskConfig {
            dedup: Some(Dedup::Sorted),
            ..arith(2, "+")
        };
        assert_eq!(walk(&sorted), brute(0, 99, "+"));
        let two_digit_only = TaskConfig {
            min_digits: 2,
            ..arith(2, "+")
        };
        assert_eq!(walk(&two_digit_only), brute(10, 99, "+"));
        let brownlee = TaskConfig {
            max_value: Some(10),
            min_value: 1,
            unique: false,
            ..TaskConfig::default()
        };
        assert_eq!(walk(&brownlee), brute(1, 10, "+"));
        assert_eq!(domain_size(&arith(3, "+")).unwrap(), 1_000_000);
        assert_eq!(domain_size(&arith(3, "-")).unwrap(), 1_000_000);
        // The first questions: the first operand varies slowest.
        let first: Vec<String> = enumerate(&arith(3, "+"))
            .unwrap()
            .take(3)
            .map(|p| p.question)
            .collect();
        assert_eq!(first, ["0+0", "0+1", "0+2"]);
        let d = enumerate(&arith(3, "-")).unwrap();
        assert_eq!(d.get(999).question, "0-999");
        assert_eq!(d.get(999).answer, "-999");
        assert_eq!(d.get(999_999).question, "999-999");
    }

    #[test]
    fn pq_domain_is_every_pair_once() {
        let cfg = TaskConfig {
            kind: TaskKind::PqSystem,
            pq_max: 7,
            ..TaskConfig::default()
        };
        let brute: HashSet<String> = (1..=7)
            .flat_map(|a| (1..=7).map(move |b| format!("{}p{}", "-".repeat(a), "-".repeat(b))))
            .collect();
        assert_eq!(walk(&cfg), brute);
    }

    #[test]
    fn expression_domains_are_every_drawable_question_once() {
        // Brute force: drawing every distinct question at random until all were drawn (unique
        // generation of the whole count) finds exactly the questions generation can ask.
        for cfg in [
            TaskConfig::expressions(3, 1, 1),
            TaskConfig::expressions(3, 1, 0),
            TaskConfig {
                terms_min: 1,
                terms_max: 3,
                ops: "+*".into(),
                ..TaskConfig::expressions(3, 1, 2)
            },
            TaskConfig {
                ops: "-".into(),
                ..TaskConfig::expressions(4, 1, 2)
            },
        ] {
            let all = walk(&cfg);
            let n = cfg.distinct_questions();
            assert_eq!(all.len() as u128, n, "{}", cfg.describe());
            if n <= 30_000 {
                let drawn: HashSet<String> = generate(&cfg, n as usize, 5)
                    .unwrap()
                    .into_iter()
                    .map(|p| p.question)
                    .collect();
                assert_eq!(all, drawn, "{}", cfg.describe());
            }
        }
        assert_eq!(
            domain_size(&TaskConfig::expressions(3, 1, 1)).unwrap(),
            27_000
        );
    }

    #[test]
    fn too_large_domains_are_refused_with_their_size() {
        for (cfg, size) in [
            (arith(4, "+"), "100000000"),
            (TaskConfig::expressions(3, 2, 1), "27000000"),
            (
                TaskConfig {
                    kind: TaskKind::PqSystem,
                    pq_max: 4000,
                    ..TaskConfig::default()
                },
                "16000000",
            ),
        ] {
            let e = enumerate(&cfg).err().expect("refused").to_string();
            assert!(
                e.contains(size) && e.contains("--n") && !e.contains('\n'),
                "{e}"
            );
        }
        // Just inside the bound, and an invalid task is an error, not a panic.
        assert!(enumerate(&arith(3, "+")).is_ok());
        assert!(enumerate(&arith(0, "+")).is_err());
        assert!(domain_size(&arith(30, "+")).unwrap() > MAX_DOMAIN);
    }
}
