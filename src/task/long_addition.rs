//! Long addition: two operands of any length as digit vectors, the length-generalisation
//! task's problems. Training draws buckets of questions that share a padded length; evaluation
//! draws operands of exactly one length and carry-stress sets.
//!
//! Random operands at length `n` are two uniform `n`-digit numbers, where long carry chains
//! are rare, so a model can score 100% there and still fail every long chain. The stress set at
//! length `n` holds 45 questions (as the PyTorch references): five fixed ones, `9..9 + 1`,
//! `1 + 9..9`, `9..9 + 9..9`, `10..0 + 9..9`, `50..0 + 50..0`; 20 with `a + b = 10^n` (a carry
//! ripples through every digit); 20 with `a + b = 10^n - 1` (every column sums to 9, no carry
//! at all, while the digits look just like a ripple's). Exact big-integer arithmetic builds them.

use num_bigint::BigUint;
use rand::Rng;

/// The longest operand `predict` and `eval` accept (decoding work grows as its square).
pub const MAX_DIGITS: usize = 10_000;

/// Why a typed question was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuestionError {
    #[error("empty question; ask like 123+4567")]
    Empty,
    #[error(
        "unknown character {symbol:?} at column {column}; this model adds two whole numbers: \
         digits and one '+', like 123+4567"
    )]
    UnknownSymbol { symbol: char, column: usize },
    #[error("expected two numbers joined by one '+', like 123+4567; found {pluses} '+'")]
    NotTwoNumbers { pluses: usize },
    #[error("a number is missing on one side of '+'")]
    MissingNumber,
    #[error("{number:?} is not one number (it has a space inside)")]
    SpaceInside { number: String },
    #[error(
        "a number of {digits} digits is longer than the {max} digits this command answers",
        max = MAX_DIGITS
    )]
    TooLong { digits: usize },
}

/// Parses a typed question `a+b` (spaces around the numbers allowed) into operands.
pub fn parse_question(text: &str) -> Result<Operands, QuestionError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(QuestionError::Empty);
    }
    for (i, c) in t.char_indices() {
        if !(c.is_ascii_digit() || c == '+' || c == ' ') {
            return Err(QuestionError::UnknownSymbol {
                symbol: c,
                column: t[..i].chars().count() + 1,
            });
        }
    }
    let parts: Vec<&str> = t.split('+').map(str::trim).collect();
    if parts.len() != 2 {
        return Err(QuestionError::NotTwoNumbers {
            pluses: parts.len() - 1,
        });
    }
    for p in &parts {
        if p.is_empty() {
            return Err(QuestionError::MissingNumber);
        }
        if p.contains(' ') {
            return Err(QuestionError::SpaceInside {
                number: p.to_string(),
            });
        }
        if p.len() > MAX_DIGITS {
            return Err(QuestionError::TooLong { digits: p.len() });
        }
    }
    Ok(Operands::from_decimal(parts[0], parts[1]))
}

/// Two operands as least-significant-first digit vectors of equal length `L`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operands {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
}

impl Operands {
    /// From decimal strings (digits only; leading zeros allowed).
    pub fn from_decimal(a: &str, b: &str) -> Operands {
        let l = a.len().max(b.len()).max(1);
        let digits = |s: &str| {
            let mut v: Vec<u8> = s.bytes().rev().map(|c| c - b'0').collect();
            v.resize(l, 0);
            v
        };
        Operands {
            a: digits(a),
            b: digits(b),
        }
    }

    /// The padded operand length `L`.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// The exact sum, least significant digit first, `L + 1` digits.
    pub fn sum(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(self.len() + 1);
        let mut carry = 0u8;
        for (x, y) in self.a.iter().zip(&self.b) {
            let t = x + y + carry;
            s.push(t % 10);
            carry = t / 10;
        }
        s.push(carry);
        s
    }

    /// The question as a person would type it (`123+4567`).
    pub fn question(&self) -> String {
        format!("{}+{}", to_decimal(&self.a), to_decimal(&self.b))
    }
}

/// A least-significant-first digit vector as an ordinary number (no leading zeros; `0` for
/// zero). Tokens that are not digits (a model's malformed answer) print as `?`.
pub fn to_decimal(lsb_first: &[u8]) -> String {
    let s: String = lsb_first
        .iter()
        .rev()
        .map(|&d| if d < 10 { char::from(b'0' + d) } else { '?' })
        .collect();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// A uniform random operand of exactly `len` digits (leading digit non-zero), least
/// significant first, zero-padded to `l`.
pub fn random_operand(rng: &mut impl Rng, len: usize, l: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..l).map(|_| 0).collect();
    for (k, x) in d.iter_mut().enumerate().take(len) {
        *x = if k + 1 == len {
            rng.random_range(1..10)
        } else {
            rng.random_range(0..10)
        };
    }
    d
}

/// One length bucket: the padded length `L` with the probability it has when both operand
/// lengths are uniform in `lo..=hi` independently, then `n` pairs of lengths uniform among those
/// whose longer one is `L`. Each question's lengths are thus exactly "both uniform in lo..=hi",
/// while every question in the bucket shares `L`.
pub fn sample_bucket(rng: &mut impl Rng, lo: usize, hi: usize, n: usize) -> (usize, Vec<Operands>) {
    let span = hi - lo + 1;
    let mut u = rng.random_range(0..span * span);
    let mut l = lo;
    // Pairs whose longer operand is L: 2 (L - lo) + 1.
    while u > 2 * (l - lo) {
        u -= 2 * (l - lo) + 1;
        l += 1;
    }
    let qs = (0..n)
        .map(|_| {
            let k = l - lo;
            let u = rng.random_range(0..2 * k + 1);
            let (la, lb) = if u <= k {
                (l, lo + u)
            } else {
                (lo + u - k - 1, l)
            };
            Operands {
                a: random_operand(rng, la, l),
                b: random_operand(rng, lb, l),
            }
        })
        .collect();
    (l, qs)
}

/// With probability `fraction`, zero-pads every question of a bucket of padded length `l`
/// further, to one length uniform in `l..=to`: the same numbers in a longer sequence. Returns
/// the bucket's padded length. Draws nothing when `fraction` is 0.
pub fn pad_further(
    rng: &mut impl Rng,
    l: usize,
    qs: &mut [Operands],
    fraction: f64,
    to: usize,
) -> usize {
    if fraction <= 0.0 || to <= l || !rng.random_bool(fraction.min(1.0)) {
        return l;
    }
    let padded = rng.random_range(l..=to);
    for q in qs {
        q.a.resize(padded, 0);
        q.b.resize(padded, 0);
    }
    padded
}

/// Questions whose operands both have exactly `len` digits.
pub fn random_questions(rng: &mut impl Rng, len: usize, count: usize) -> Vec<Operands> {
    (0..count)
        .map(|_| Operands {
            a: random_operand(rng, len, len),
            b: random_operand(rng, len, len),
        })
        .collect()
}

fn digits_of(x: &BigUint, n: usize) -> Vec<u8> {
    let mut d: Vec<u8> = x.to_str_radix(10).bytes().rev().map(|c| c - b'0').collect();
    d.resize(n.max(d.len()), 0);
    d
}

fn from_big(a: &BigUint, b: &BigUint, n: usize) -> Operands {
    Operands {
        a: digits_of(a, n),
        b: digits_of(b, n),
    }
}

/// The 45 carry-stress questions at length `n`, each with its part's name.
pub fn stress_set(rng: &mut impl Rng, n: usize, n_random: usize) -> Vec<(Operands, &'static str)> {
    let ten_n = BigUint::from(10u32).pow(n as u32);
    let nines = &ten_n - 1u32;
    let one = BigUint::from(1u32);
    let top = BigUint::from(10u32).pow(n as u32 - 1);
    let five = &top * 5u32;
    let mut out = vec![
        (from_big(&nines, &one, n), "fixed"),
        (from_big(&one, &nines, n), "fixed"),
        (from_big(&nines, &nines, n), "fixed"),
        (from_big(&top, &nines, n), "fixed"),
        (from_big(&five, &five, n), "fixed"),
    ];
    let big = |d: &[u8]| {
        BigUint::parse_bytes(&d.iter().rev().map(|x| b'0' + x).collect::<Vec<u8>>(), 10)
            .expect("digits")
    };
    for _ in 0..n_random {
        let a = big(&random_operand(rng, n, n));
        out.push((from_big(&a, &(&ten_n - &a), n), "ripple"));
    }
    for _ in 0..n_random {
        let a = big(&random_operand(rng, n, n));
        out.push((from_big(&a, &(&nines - &a), n), "nines"));
    }
    out
}

/// Rewrites `b` so that `a + b = 10^L - 1`: every column sums to 9 and no carry arises.
pub fn make_nines(q: &mut Operands) {
    q.b = q.a.iter().map(|d| 9 - d).collect();
}

/// `digits += 1` (least significant first; `a + b = 10^L - 1` becomes `a + b = 10^L`, which
/// fits: `a >= 1`, so `b <= 10^L - 1`).
pub fn add_one(digits: &mut [u8]) {
    for d in digits {
        if *d < 9 {
            *d += 1;
            return;
        }
        *d = 0;
    }
}

/// Rewrites a fraction `fraction` of `qs` as carry-stress questions, half "nines" (every
/// column sums to 9, no carry) and half "ripples" (a carry through every column): the
/// patterns random operands almost never show. 0 draws nothing from `rng`.
pub fn stress_rewrite(rng: &mut impl Rng, qs: &mut [Operands], fraction: f64) {
    if fraction > 0.0 {
        for q in qs {
            if rng.random_bool(fraction) {
                let ripple = rng.random_bool(0.5);
                make_nines(q);
                if ripple {
                    add_one(&mut q.b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn stress_rewrites_give_nines_and_ripples() {
        let mut q = Operands::from_decimal("4071", "12");
        make_nines(&mut q);
        assert_eq!(q.question(), "4071+5928");
        assert_eq!(q.sum(), [9, 9, 9, 9, 0]);
        add_one(&mut q.b);
        assert_eq!(q.question(), "4071+5929");
        assert_eq!(q.sum(), [0, 0, 0, 0, 1]);
        let mut q = Operands::from_decimal("100", "0");
        make_nines(&mut q);
        add_one(&mut q.b);
        assert_eq!(q.question(), "100+900");
    }

    #[test]
    fn stress_sets_hold_what_they_claim() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 30;
        let set = stress_set(&mut rng, n, 20);
        assert_eq!(set.len(), 45);
        let ten_n = format!("1{}", "0".repeat(n));
        let nines = "9".repeat(n);
        for (q, part) in &set {
            assert_eq!(q.len(), n);
            let s = to_decimal(&q.sum());
            match *part {
                "ripple" => assert_eq!(s, ten_n),
                "nines" => assert_eq!(s, nines),
                _ => {}
            }
        }
        assert_eq!(set[0].0.question(), format!("{nines}+1"));
        assert_eq!(set[4].0.question(), format!("5{0}+5{0}", "0".repeat(n - 1)));
    }

    #[test]
    fn further_padding_keeps_the_numbers_and_stays_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut padded = 0;
        for _ in 0..200 {
            let (l, mut qs) = sample_bucket(&mut rng, 1, 5, 4);
            let sums: Vec<String> = qs.iter().map(|q| to_decimal(&q.sum())).collect();
            let before = qs.clone();
            let p = pad_further(&mut rng, l, &mut qs, 0.5, 30);
            assert!((l..=30).contains(&p));
            padded += usize::from(p > l);
            for ((q, b), s) in qs.iter().zip(&before).zip(&sums) {
                assert_eq!((q.a.len(), q.b.len()), (p, p));
                assert_eq!((&q.a[..l], &q.b[..l]), (&b.a[..], &b.b[..]));
                assert!(q.a[l..].iter().chain(&q.b[l..]).all(|&d| d == 0));
                assert_eq!(&to_decimal(&q.sum()), s);
            }
        }
        assert!((60..140).contains(&padded), "{padded} of 200 padded");
        // Fraction 0 draws nothing: the same stream as without the option.
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(8), ChaCha8Rng::seed_from_u64(8));
        let (l, mut qs) = sample_bucket(&mut r1, 1, 5, 4);
        assert_eq!(pad_further(&mut r1, l, &mut qs, 0.0, 30), l);
        sample_bucket(&mut r2, 1, 5, 4);
        assert_eq!(r1.random::<u64>(), r2.random::<u64>());
    }

    #[test]
    fn buckets_draw_each_operand_length_uniformly() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (lo, hi) = (2, 6);
        let mut counts = vec![vec![0usize; hi + 1]; hi + 1];
        let mut total = 0;
        for _ in 0..4000 {
            let (l, qs) = sample_bucket(&mut rng, lo, hi, 8);
            for q in qs {
                let len = |d: &[u8]| d.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1);
                let (la, lb) = (len(&q.a), len(&q.b));
                assert_eq!(la.max(lb), l);
                assert!(la >= lo && lb >= lo && q.a.len() == l && q.b.len() == l);
                counts[la][lb] += 1;
                total += 1;
            }
        }
        let ideal = total as f64 / 25.0;
        for row in &counts[lo..=hi] {
            for &c in &row[lo..=hi] {
                assert!((c as f64 - ideal).abs() < 0.15 * ideal, "{c} vs {ideal}");
            }
        }
    }
}
