//! Many-operand addition `a1+a2+...+ak` and multiplication `a*b` over long numbers: operands as
//! least-significant-first digit vectors, exact answers with big integers, unique seeded
//! questions (through the one unique-draw loop, `super::UniqueDraws`), carry-stress sets, and
//! the digit-by-digit intermediate results a scratchpad writes.
//!
//! Running sums: `s_1 = a_1`, `s_j = s_{j-1} + a_j`, each step an ordinary two-operand
//! addition. Multiplication rows: `r_j = r_{j-1} + a * b_j * 10^j` (`b_j` the multiplier's digit
//! of significance `j`, `r_{-1} = 0`), so the last row is the product. Both are computed digit
//! by digit here and checked against big-integer answers in the tests.
//!
//! Stress sets (the patterns random operands almost never show):
//! - addition: `nines` (every operand all nines), `ripple` (the last operand makes the total a
//!   multiple of `10^L`, so the last step carries through every column), `zeros` (operands
//!   with many zeros inside), `alternate` (all nines and ones in turn);
//! - multiplication: `nines-multiplier` (`b` all nines), `nines-both`, `nines-multiplicand`
//!   (`a` all nines), `zeros` (zeros inside both operands).

use super::{Problem, Sampler, TaskError, UniqueDraws, MAX_CONSECUTIVE_REPEATS};
use num_bigint::BigUint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The most operands and the longest operand the task layer draws.
pub const MAX_OPERANDS: usize = 1000;
pub const MAX_DIGITS: usize = 10_000;

/// Decimal digits of `k` (`digits_of(9) = 1`, `digits_of(10) = 2`).
pub fn decimal_digits(k: usize) -> usize {
    k.to_string().len()
}

/// A least-significant-first digit vector as a big integer.
pub fn to_big(lsb_first: &[u8]) -> BigUint {
    let s: Vec<u8> = lsb_first.iter().rev().map(|d| b'0' + d).collect();
    if s.is_empty() {
        return BigUint::default();
    }
    BigUint::parse_bytes(&s, 10).expect("digits")
}

/// A big integer as `width` digits, least significant first (more if it needs more).
pub fn from_big(x: &BigUint, width: usize) -> Vec<u8> {
    let mut d: Vec<u8> = x.to_str_radix(10).bytes().rev().map(|c| c - b'0').collect();
    if d == [0] {
        d.clear();
    }
    d.resize(width.max(d.len()), 0);
    d
}

/// `x += y` digit by digit (`x` at least as long as `y`; the carry out of the top is dropped).
/// Returns how many columns carried.
fn add_into(x: &mut [u8], y: &[u8]) -> usize {
    let (mut carry, mut carries) = (0u8, 0);
    for (i, xi) in x.iter_mut().enumerate() {
        let t = *xi + y.get(i).copied().unwrap_or(0) + carry;
        *xi = t % 10;
        carry = t / 10;
        carries += usize::from(carry > 0);
    }
    carries
}

/// `k` operands, each least significant first and zero-padded to the longest, `L`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ManyOperands {
    pub ops: Vec<Vec<u8>>,
}

impl ManyOperands {
    /// From decimal strings (digits only).
    pub fn from_decimal(ops: &[&str]) -> ManyOperands {
        let l = ops.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
        ManyOperands {
            ops: ops
                .iter()
                .map(|s| {
                    let mut v: Vec<u8> = s.bytes().rev().map(|c| c - b'0').collect();
                    v.resize(l, 0);
                    v
                })
                .collect(),
        }
    }

    /// The padded operand length `L`.
    pub fn len(&self) -> usize {
        self.ops.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of operands `k`.
    pub fn count(&self) -> usize {
        self.ops.len()
    }

    /// Digits of every running sum and of the answer: `L + digits(k)` (`k` numbers below
    /// `10^L` sum to less than `k 10^L`).
    pub fn width(&self) -> usize {
        self.len() + decimal_digits(self.count())
    }

    /// The exact answer as a big integer.
    pub fn sum_big(&self) -> BigUint {
        self.ops.iter().map(|o| to_big(o)).sum()
    }

    /// The running sums `s_2..s_k`, each [`ManyOperands::width`] digits, least significant
    /// first, computed digit by digit; the last is the answer.
    pub fn running_sums(&self) -> Vec<Vec<u8>> {
        let w = self.width();
        let mut s = self.ops[0].clone();
        s.resize(w, 0);
        self.ops[1..]
            .iter()
            .map(|a| {
                add_into(&mut s, a);
                s.clone()
            })
            .collect()
    }

    /// Columns that carried, over every step of the running sums.
    pub fn step_carries(&self) -> usize {
        let mut s = self.ops[0].clone();
        s.resize(self.width(), 0);
        self.ops[1..].iter().map(|a| add_into(&mut s, a)).sum()
    }

    /// The question as a person types it (`12+345+6`).
    pub fn question(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(|o| decimal(o)).collect();
        ops.join("+")
    }
}

/// `a * b`, each least significant first, `a` of `La` digits and `b` of `Lb` (zero-padded to
/// those lengths).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Product {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
}

impl Product {
    pub fn from_decimal(a: &str, b: &str) -> Product {
        let digits = |s: &str| s.bytes().rev().map(|c| c - b'0').collect::<Vec<u8>>();
        Product {
            a: digits(a),
            b: digits(b),
        }
    }

    /// Digits of every row and of the answer: `La + Lb`.
    pub fn width(&self) -> usize {
        self.a.len() + self.b.len()
    }

    pub fn product_big(&self) -> BigUint {
        to_big(&self.a) * to_big(&self.b)
    }

    /// `a * d` for one digit `d`, `La + 1` digits, least significant first; the carries of its
    /// columns (each up to 8) in the second vector.
    pub fn partial(&self, d: u8) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::with_capacity(self.a.len() + 1);
        let mut carries = Vec::with_capacity(self.a.len());
        let mut carry = 0u8;
        for &x in &self.a {
            let t = x * d + carry;
            out.push(t % 10);
            carry = t / 10;
            carries.push(carry);
        }
        out.push(carry);
        (out, carries)
    }

    /// The rows `r_0..r_{Lb-1}` (`r_j = r_{j-1} + a b_j 10^j`), [`Product::width`] digits each,
    /// least significant first, computed digit by digit; the last is the product.
    pub fn rows(&self) -> Vec<Vec<u8>> {
        let w = self.width();
        let mut r = vec![0u8; w];
        self.b
            .iter()
            .enumerate()
            .map(|(j, &d)| {
                let mut shifted = vec![0u8; j];
                shifted.extend(self.partial(d).0);
                add_into(&mut r, &shifted);
                r.clone()
            })
            .collect()
    }

    /// The rows of a scratchpad that keeps only what is still open: `q_j = floor(q_{j-1} / 10) +
    /// a b_j` (`q_{-1} = 0`), `La + 1` digits each, least significant first. The product's
    /// digit `j` (for `j < Lb - 1`) is `q_j`'s units digit; its top `La + 1` digits are
    /// `q_{Lb-1}`. Every digit of `q_j` depends on digits of `q_{j-1}` and of `a b_j` at most one
    /// place away.
    pub fn open_rows(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let w = self.a.len() + 1;
        let mut q = vec![0u8; w];
        self.b
            .iter()
            .map(|&d| {
                let (partial, _) = self.partial(d);
                let mut next: Vec<u8> = q[1..].to_vec();
                next.push(0);
                add_into(&mut next, &partial);
                q = next;
                (partial, q.clone())
            })
            .collect()
    }

    /// The product read off [`Product::open_rows`], least significant first.
    pub fn product_from_open_rows(rows: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = rows[..rows.len() - 1].iter().map(|r| r[0]).collect();
        out.extend_from_slice(&rows[rows.len() - 1]);
        out
    }

    /// Columns of the partial products whose carry is not zero, and columns of the row sums
    /// that carried.
    pub fn carries(&self) -> (usize, usize) {
        let w = self.width();
        let mut r = vec![0u8; w];
        let (mut partial, mut sums) = (0, 0);
        for (j, &d) in self.b.iter().enumerate() {
            let (p, c) = self.partial(d);
            partial += c.iter().filter(|&&c| c > 0).count();
            let mut shifted = vec![0u8; j];
            shifted.extend(p);
            sums += add_into(&mut r, &shifted);
        }
        (partial, sums)
    }

    pub fn question(&self) -> String {
        format!("{}*{}", decimal(&self.a), decimal(&self.b))
    }
}

/// A least-significant-first digit vector as an ordinary number (`0` for zero).
pub fn decimal(lsb_first: &[u8]) -> String {
    super::long_addition::to_decimal(lsb_first)
}

/// A uniform random operand of exactly `len` digits (leading digit not zero), least
/// significant first, zero-padded to `width`.
fn operand(rng: &mut impl Rng, len: usize, width: usize) -> Vec<u8> {
    super::long_addition::random_operand(rng, len, width)
}

/// `10^len - 10^(len-1)` operands of `len` digits, as a count of questions (saturating).
fn operands_of_len(len: usize) -> u128 {
    if len > 38 {
        u128::MAX
    } else {
        9 * 10u128.pow(len as u32 - 1)
    }
}

struct AdditionSampler {
    k: usize,
    len: usize,
}

impl Sampler for AdditionSampler {
    type Drawn = ManyOperands;
    type Key = ManyOperands;
    fn draw(&self, rng: &mut ChaCha8Rng) -> ManyOperands {
        ManyOperands {
            ops: (0..self.k)
                .map(|_| operand(rng, self.len, self.len))
                .collect(),
        }
    }
    fn key(&self, drawn: &ManyOperands) -> ManyOperands {
        drawn.clone()
    }
    fn drawable_key(&self, question: &str) -> Option<ManyOperands> {
        let parts: Vec<&str> = question.trim().split('+').collect();
        let ok = parts.len() == self.k
            && parts.iter().all(|p| {
                p.len() == self.len && p.bytes().all(|c| c.is_ascii_digit()) && !p.starts_with('0')
            });
        ok.then(|| ManyOperands::from_decimal(&parts))
    }
    fn problem(&self, q: ManyOperands) -> Problem {
        Problem {
            question: q.question(),
            answer: q.sum_big().to_string(),
            operand_lens: vec![self.len; self.k],
            carries: q.step_carries(),
        }
    }
}

struct ProductSampler {
    la: usize,
    lb: usize,
}

impl Sampler for ProductSampler {
    type Drawn = Product;
    type Key = Product;
    fn draw(&self, rng: &mut ChaCha8Rng) -> Product {
        let a = operand(rng, self.la, self.la);
        Product {
            a,
            b: operand(rng, self.lb, self.lb),
        }
    }
    fn key(&self, drawn: &Product) -> Product {
        drawn.clone()
    }
    fn drawable_key(&self, question: &str) -> Option<Product> {
        let (a, b) = question.trim().split_once('*')?;
        let ok = |p: &str, l: usize| {
            p.len() == l && p.bytes().all(|c| c.is_ascii_digit()) && !p.starts_with('0')
        };
        (ok(a, self.la) && ok(b, self.lb)).then(|| Product::from_decimal(a, b))
    }
    fn problem(&self, q: Product) -> Problem {
        Problem {
            question: q.question(),
            answer: q.product_big().to_string(),
            operand_lens: vec![self.la, self.lb],
            carries: q.carries().0 + q.carries().1,
        }
    }
}

fn check_sizes(counts: &[(&str, usize, usize, usize)]) -> Result<(), TaskError> {
    for &(what, v, lo, hi) in counts {
        if !(lo..=hi).contains(&v) {
            return Err(TaskError::Invalid(format!(
                "{what} {v} must be in {lo}..={hi}"
            )));
        }
    }
    Ok(())
}

/// `n` unique questions of `k` operands of exactly `len` digits each, seeded.
pub fn addition_questions(
    seed: u64,
    k: usize,
    len: usize,
    n: usize,
) -> Result<Vec<ManyOperands>, TaskError> {
    check_sizes(&[
        ("operand count", k, 2, MAX_OPERANDS),
        ("operand length", len, 1, MAX_DIGITS),
    ])?;
    let available = operands_of_len(len)
        .checked_pow(k as u32)
        .unwrap_or(u128::MAX);
    draws(n, seed).drawn(true, available, &AdditionSampler { k, len })
}

/// `n` unique products of an `la`-digit and an `lb`-digit number, seeded.
pub fn product_questions(
    seed: u64,
    la: usize,
    lb: usize,
    n: usize,
) -> Result<Vec<Product>, TaskError> {
    check_sizes(&[
        ("length of a", la, 1, MAX_DIGITS),
        ("length of b", lb, 1, MAX_DIGITS),
    ])?;
    let available = operands_of_len(la).saturating_mul(operands_of_len(lb));
    draws(n, seed).drawn(true, available, &ProductSampler { la, lb })
}

fn draws(n: usize, seed: u64) -> UniqueDraws<'static> {
    static EMPTY: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
    UniqueDraws {
        n,
        seed,
        exclude: EMPTY.get_or_init(HashSet::new),
        max_repeats: MAX_CONSECUTIVE_REPEATS,
    }
}

/// An operand of exactly `len` digits with zeros inside: each digit below the leading one is 0
/// with probability 1/2.
fn zeros_inside(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut d = operand(rng, len, len);
    for x in d.iter_mut().take(len - 1) {
        if rng.random_bool(0.5) {
            *x = 0;
        }
    }
    d
}

/// The addition stress set of `k` operands of `len` digits: `per_part` questions of each part
/// (`nines` and `alternate` are one fixed question each), named.
pub fn addition_stress(
    rng: &mut impl Rng,
    k: usize,
    len: usize,
    per_part: usize,
) -> Vec<(ManyOperands, &'static str)> {
    let nines = vec![9u8; len];
    let one = {
        let mut v = vec![0u8; len];
        v[0] = 1;
        v
    };
    let mut out = vec![
        (
            ManyOperands {
                ops: vec![nines.clone(); k],
            },
            "nines",
        ),
        (
            ManyOperands {
                ops: (0..k)
                    .map(|i| {
                        if i % 2 == 0 {
                            nines.clone()
                        } else {
                            one.clone()
                        }
                    })
                    .collect(),
            },
            "alternate",
        ),
    ];
    let ten_l = BigUint::from(10u32).pow(len as u32);
    for _ in 0..per_part {
        let mut ops: Vec<Vec<u8>> = (0..k - 1).map(|_| operand(rng, len, len)).collect();
        let rest: BigUint = ops.iter().map(|o| to_big(o)).sum::<BigUint>() % &ten_l;
        // The last operand tops the total up to a multiple of 10^L (never 0: then 10^L - 1
        // and one more operand of 1 would be needed; take the all-nines one instead).
        let last = (&ten_l - rest) % &ten_l;
        let last = if last == BigUint::default() {
            &ten_l - 1u32
        } else {
            last
        };
        ops.push(from_big(&last, len));
        out.push((ManyOperands { ops }, "ripple"));
    }
    for _ in 0..per_part {
        let ops = (0..k).map(|_| zeros_inside(rng, len)).collect();
        out.push((ManyOperands { ops }, "zeros"));
    }
    out
}

/// The multiplication stress set of `la` x `lb` digits: `nines-both` (one question), then
/// `per_part` of each other part, named.
pub fn product_stress(
    rng: &mut impl Rng,
    la: usize,
    lb: usize,
    per_part: usize,
) -> Vec<(Product, &'static str)> {
    let mut out = vec![(
        Product {
            a: vec![9; la],
            b: vec![9; lb],
        },
        "nines-both",
    )];
    for _ in 0..per_part {
        out.push((
            Product {
                a: operand(rng, la, la),
                b: vec![9; lb],
            },
            "nines-multiplier",
        ));
    }
    for _ in 0..per_part {
        out.push((
            Product {
                a: vec![9; la],
                b: operand(rng, lb, lb),
            },
            "nines-multiplicand",
        ));
    }
    for _ in 0..per_part {
        out.push((
            Product {
                a: zeros_inside(rng, la),
                b: zeros_inside(rng, lb),
            },
            "zeros",
        ));
    }
    out
}

/// A training batch of many-operand additions that share a shape: `k` uniform in
/// `min_ops..=max_ops`, the padded length `L` uniform in `lo..=hi`, one operand (at random) of
/// exactly `L` digits and the others of lengths uniform in `lo..=L`.
pub fn addition_bucket(
    rng: &mut impl Rng,
    (min_ops, max_ops): (usize, usize),
    (lo, hi): (usize, usize),
    n: usize,
) -> Vec<ManyOperands> {
    let k = rng.random_range(min_ops..=max_ops);
    let l = rng.random_range(lo..=hi);
    (0..n)
        .map(|_| {
            let longest = rng.random_range(0..k);
            ManyOperands {
                ops: (0..k)
                    .map(|i| {
                        let len = if i == longest {
                            l
                        } else {
                            rng.random_range(lo..=l)
                        };
                        operand(rng, len, l)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A training batch of products that share a shape: `La` and `Lb` each uniform in `lo..=hi`.
pub fn product_bucket(rng: &mut impl Rng, (lo, hi): (usize, usize), n: usize) -> Vec<Product> {
    let la = rng.random_range(lo..=hi);
    let lb = rng.random_range(lo..=hi);
    (0..n)
        .map(|_| Product {
            a: operand(rng, la, la),
            b: operand(rng, lb, lb),
        })
        .collect()
}

/// Rewrites a fraction `fraction` of an addition batch as stress questions (all-nines
/// operands, or a last operand that makes the total a multiple of `10^L`); 0 draws nothing.
pub fn addition_stress_rewrite(rng: &mut impl Rng, qs: &mut [ManyOperands], fraction: f64) {
    if fraction <= 0.0 {
        return;
    }
    for q in qs {
        if rng.random_bool(fraction) {
            let l = q.len();
            if rng.random_bool(0.5) {
                for o in &mut q.ops {
                    o.fill(9);
                }
            } else {
                let ten_l = BigUint::from(10u32).pow(l as u32);
                let k = q.count();
                let rest: BigUint =
                    q.ops[..k - 1].iter().map(|o| to_big(o)).sum::<BigUint>() % &ten_l;
                q.ops[k - 1] = from_big(&((&ten_l - rest) % &ten_l), l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn big(s: &str) -> BigUint {
        s.parse().unwrap()
    }

    #[test]
    fn running_sums_and_rows_by_hand() {
        let q = ManyOperands::from_decimal(&["95", "7", "99"]);
        assert_eq!((q.len(), q.count(), q.width()), (2, 3, 3));
        // 95 + 7 = 102, + 99 = 201, least significant first.
        assert_eq!(q.running_sums(), vec![vec![2, 0, 1], vec![1, 0, 2]]);
        assert_eq!(q.question(), "95+7+99");
        // 95+07: units 5+7 carry, tens 9+0+1 carry; 102+99: units carry, tens carry.
        assert_eq!(q.step_carries(), 4);
        let p = Product::from_decimal("47", "36");
        // 47*6 = 282; + 47*3*10 = 1410 -> 1692.
        assert_eq!(p.partial(6), (vec![2, 8, 2], vec![4, 2]));
        assert_eq!(p.rows(), vec![vec![2, 8, 2, 0], vec![2, 9, 6, 1]]);
        // q_0 = 282; q_1 = 28 + 47*3 = 169; product 1692 = 169 then 2.
        let open = p.open_rows();
        assert_eq!(open[1], (vec![1, 4, 1], vec![9, 6, 1]));
        assert_eq!(open[0].1, vec![2, 8, 2]);
        assert_eq!(p.question(), "47*36");
    }

    #[test]
    fn answers_agree_with_an_independent_big_integer_computation() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let k = rng.random_range(2..=12);
            let len = rng.random_range(1..=40);
            let ops: Vec<String> = (0..k)
                .map(|_| {
                    let l = rng.random_range(1..=len);
                    decimal(&operand(&mut rng, l, len))
                })
                .collect();
            let refs: Vec<&str> = ops.iter().map(String::as_str).collect();
            let q = ManyOperands::from_decimal(&refs);
            // Independent: parse the decimal strings, add as big integers.
            let want: BigUint = ops.iter().map(|s| big(s)).sum();
            let sums = q.running_sums();
            assert_eq!(sums.len(), k - 1);
            assert_eq!(decimal(sums.last().unwrap()), want.to_string());
            assert_eq!(q.sum_big(), want);
            assert!(sums.iter().all(|s| s.len() == q.width()));
            let partial: BigUint = ops[..3.min(k)].iter().map(|s| big(s)).sum();
            if k >= 3 {
                assert_eq!(to_big(&sums[1]), partial);
            }
            let (a, b) = (&ops[0], &ops[1]);
            let p = Product::from_decimal(a, b);
            let rows = p.rows();
            assert_eq!(to_big(rows.last().unwrap()), big(a) * big(b));
            for (j, r) in rows.iter().enumerate() {
                let low: BigUint = to_big(&p.b[..=j]);
                assert_eq!(to_big(r), big(a) * low);
            }
            let open: Vec<Vec<u8>> = p.open_rows().into_iter().map(|r| r.1).collect();
            assert!(open.iter().all(|r| r.len() == p.a.len() + 1));
            let got = Product::product_from_open_rows(&open);
            assert_eq!(got.len(), p.width());
            assert_eq!(to_big(&got), big(a) * big(b));
        }
    }

    #[test]
    fn questions_are_unique_seeded_and_of_the_asked_shape() {
        let qs = addition_questions(3, 4, 2, 500).unwrap();
        let set: HashSet<&ManyOperands> = qs.iter().collect();
        assert_eq!(set.len(), 500);
        assert!(qs
            .iter()
            .all(|q| q.count() == 4 && q.ops.iter().all(|o| o.len() == 2 && o[1] != 0)));
        assert_eq!(addition_questions(3, 4, 2, 500).unwrap(), qs);
        assert_ne!(addition_questions(4, 4, 2, 500).unwrap(), qs);
        // Every one of the 81 products of one-digit numbers, each once.
        let ps = product_questions(5, 1, 1, 81).unwrap();
        assert_eq!(ps.iter().collect::<HashSet<_>>().len(), 81);
        let e = product_questions(5, 1, 1, 82).unwrap_err();
        assert!(e.to_string().contains("81"), "{e}");
        assert!(addition_questions(1, 1, 3, 1).is_err());
    }

    #[test]
    fn stress_sets_really_stress() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (k, len) = (7, 30);
        let set = addition_stress(&mut rng, k, len, 10);
        assert_eq!(set.len(), 22);
        let random = addition_questions(9, k, len, 10).unwrap();
        let mean = |qs: &[&ManyOperands]| {
            qs.iter().map(|q| q.step_carries()).sum::<usize>() as f64 / qs.len() as f64
        };
        let ten_l = BigUint::from(10u32).pow(len as u32);
        for (q, part) in &set {
            assert_eq!((q.count(), q.len()), (k, len));
            let s = q.sum_big();
            match *part {
                "ripple" => {
                    assert_eq!(&s % &ten_l, BigUint::default());
                    // The last step carries through every column of the operands.
                    let sums = q.running_sums();
                    let mut prev = sums[sums.len() - 2].clone();
                    let carried = add_into(&mut prev, &q.ops[k - 1]);
                    assert!(carried >= len, "{carried}");
                }
                "nines" => assert_eq!(s, (&ten_l - 1u32) * k),
                "zeros" => {
                    let zeros: usize = q.ops.iter().flatten().filter(|&&d| d == 0).count();
                    assert!(zeros > k * len / 4, "{zeros}");
                }
                _ => {}
            }
        }
        let nines: Vec<&ManyOperands> = set
            .iter()
            .filter(|s| s.1 == "nines")
            .map(|s| &s.0)
            .collect();
        let ripples: Vec<&ManyOperands> = set
            .iter()
            .filter(|s| s.1 == "ripple")
            .map(|s| &s.0)
            .collect();
        let rand: Vec<&ManyOperands> = random.iter().collect();
        // All nines carry in every column of every step; random operands in about half.
        assert!(mean(&nines) >= ((k - 1) * len) as f64);
        assert!(
            mean(&ripples) > mean(&rand),
            "{} {}",
            mean(&ripples),
            mean(&rand)
        );
        assert!(mean(&rand) < 0.75 * mean(&nines));

        let ps = product_stress(&mut rng, 20, 15, 5);
        assert_eq!(ps.len(), 16);
        let randp = product_questions(1, 20, 15, 5).unwrap();
        let partial_mean = |qs: Vec<&Product>| {
            qs.iter().map(|q| q.carries().0).sum::<usize>() as f64 / qs.len() as f64
        };
        for (p, part) in &ps {
            assert_eq!(to_big(p.rows().last().unwrap()), p.product_big());
            if *part == "nines-multiplier" {
                // A multiplier digit 9 carries out of every column but those where a's digit is 0.
                let zeros = p.a.iter().filter(|&&d| d == 0).count();
                assert!(p.carries().0 >= 15 * (20 - zeros - 1), "{:?}", p.carries());
            }
        }
        let nm: Vec<&Product> = ps
            .iter()
            .filter(|s| s.1 == "nines-multiplier")
            .map(|s| &s.0)
            .collect();
        assert!(partial_mean(nm) > partial_mean(randp.iter().collect()));
    }

    #[test]
    fn training_buckets_share_a_shape_and_stress_rewrites_hold() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..100 {
            let qs = addition_bucket(&mut rng, (2, 5), (1, 6), 8);
            let (k, l) = (qs[0].count(), qs[0].len());
            assert!((2..=5).contains(&k) && (1..=6).contains(&l));
            for q in &qs {
                assert_eq!((q.count(), q.len()), (k, l));
                assert!(q.ops.iter().any(|o| o[l - 1] != 0));
            }
            let ps = product_bucket(&mut rng, (1, 6), 4);
            assert!(ps
                .iter()
                .all(|p| p.a.len() == ps[0].a.len() && p.b.len() == ps[0].b.len()));
        }
        let mut qs = addition_bucket(&mut rng, (3, 3), (5, 5), 64);
        addition_stress_rewrite(&mut rng, &mut qs, 1.0);
        let ten5 = BigUint::from(100_000u32);
        for q in &qs {
            let s = q.sum_big();
            assert!(s == (&ten5 - 1u32) * 3u32 || &s % &ten5 == BigUint::default());
        }
    }
}
