//! The coupled addition format (Cho et al. 2024): what a length-generalising model reads and
//! writes, and the conversions from and to numbers as people type them.
//!
//! ```text
//! [BOS] a_{L-1} .. a_0 + b_{L-1} .. b_0 = s_0 s_1 .. s_L [EOS]        T = 3L + 5 tokens
//! ```
//! Both operands are zero-padded to `L = max(len a, len b)` and written most significant digit
//! first; the sum is written least significant digit first, zero-padded to `L + 1` digits.
//! **Position coupling**: the digits of significance `j` in `a`, in `b` and in the sum share the
//! coupled position `2 + j`; `+` and `=` share position 1; BOS and EOS have none. Segments tell
//! the model which number a digit belongs to (0 other, 1 a, 2 b, 3 sum).
//!
//! The model reads tokens `0..T-1` and is scored on rows `2L+2..T-1` (from `=` on: each predicts
//! the next sum digit, the last one EOS). Typed questions are `123+4567`; answers turn back into
//! ordinary numbers (`5690`). Digits are handled as strings and digit vectors throughout: no
//! floats, no length limit but [`MAX_DIGITS`].

use crate::nn::mha::NO_POSITION;
use crate::task::long_addition;
pub use crate::task::long_addition::{to_decimal, Operands, MAX_DIGITS};

/// Digit `d` is token `d`.
pub const PLUS: u8 = 10;
pub const EQUALS: u8 = 11;
pub const BOS: u8 = 12;
pub const EOS: u8 = 13;
/// Tokens: ten digits, `+`, `=`, BOS, EOS.
pub const VOCAB: usize = 14;
/// Segments: other, a digit, b digit, sum digit.
pub const SEGMENTS: usize = 4;
const SEG_OTHER: u8 = 0;
const SEG_A: u8 = 1;
const SEG_B: u8 = 2;
const SEG_SUM: u8 = 3;

/// Parses a typed question `a+b` (spaces around the numbers allowed) into operands; a refused
/// one gives the message of `long_addition::QuestionError`.
pub fn parse_question(text: &str) -> Result<Operands, String> {
    long_addition::parse_question(text).map_err(|e| e.to_string())
}

/// Segments and coupled positions of every row of the `3L + 5`-token sequence of length `L`.
pub fn layout(l: usize) -> (Vec<u8>, Vec<u32>) {
    let t = 3 * l + 5;
    let mut seg = vec![SEG_OTHER; t];
    let mut pos = vec![NO_POSITION; t];
    for k in 0..l {
        // MSB first: row 1 + k holds significance L-1-k.
        let p = 2 + (l - 1 - k) as u32;
        (seg[1 + k], pos[1 + k]) = (SEG_A, p);
        (seg[l + 2 + k], pos[l + 2 + k]) = (SEG_B, p);
    }
    pos[l + 1] = 1;
    pos[2 * l + 2] = 1;
    for j in 0..=l {
        (seg[2 * l + 3 + j], pos[2 * l + 3 + j]) = (SEG_SUM, 2 + j as u32);
    }
    (seg, pos)
}

/// The full token sequence (`3L + 5` tokens, EOS last) of `ops` and the sum `sum` (`L + 1`
/// digits, least significant first).
pub fn tokens(ops: &Operands, sum: &[u8]) -> Vec<u8> {
    let l = ops.len();
    let mut t = Vec::with_capacity(3 * l + 5);
    t.push(BOS);
    t.extend(ops.a.iter().rev());
    t.push(PLUS);
    t.extend(ops.b.iter().rev());
    t.push(EQUALS);
    t.extend_from_slice(&sum[..l + 1]);
    t.push(EOS);
    t
}

/// Rows of the prompt (`BOS a + b =`): the model answers from the last of them.
pub fn prompt_len(l: usize) -> usize {
    2 * l + 3
}

/// The first scored row (the `=`).
pub fn first_scored_row(l: usize) -> usize {
    2 * l + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_couple_digits_of_equal_significance() {
        let ops = parse_question(" 95 + 7 ").unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops.sum(), vec![2, 0, 1]);
        let t = tokens(&ops, &ops.sum());
        assert_eq!(t, vec![BOS, 9, 5, PLUS, 0, 7, EQUALS, 2, 0, 1, EOS]);
        let (seg, pos) = layout(2);
        assert_eq!(seg, vec![0, 1, 1, 0, 2, 2, 0, 3, 3, 3, 0]);
        let n = NO_POSITION;
        // 9 and 0 (tens) and the sum's tens digit share 3; 5, 7 and the units share 2.
        assert_eq!(pos, vec![n, 3, 2, 1, 3, 2, 1, 2, 3, 4, n]);
        assert_eq!((prompt_len(2), first_scored_row(2)), (7, 6));
        assert_eq!(to_decimal(&ops.sum()), "102");
        assert_eq!(ops.question(), "95+7");
    }

    #[test]
    fn answers_read_back_as_ordinary_numbers() {
        assert_eq!(to_decimal(&[0, 0, 0]), "0");
        assert_eq!(to_decimal(&[1, 0, 0]), "1");
        assert_eq!(to_decimal(&[9, EOS, 1]), "1?9");
        let ops = parse_question("0009+1").unwrap();
        assert_eq!(to_decimal(&ops.sum()), "10");
    }

    #[test]
    fn long_sums_are_exact() {
        let a = "9".repeat(1000);
        let ops = parse_question(&format!("{a}+1")).unwrap();
        assert_eq!(to_decimal(&ops.sum()), format!("1{}", "0".repeat(1000)));
        // Against num-bigint on a mixed case.
        let (x, y) = (
            "31415926535897932384626433832795",
            "2718281828459045235360287",
        );
        let want =
            x.parse::<num_bigint::BigUint>().unwrap() + y.parse::<num_bigint::BigUint>().unwrap();
        assert_eq!(
            to_decimal(&Operands::from_decimal(x, y).sum()),
            want.to_string()
        );
    }

    #[test]
    fn bad_questions_are_refused_with_a_reason() {
        for (q, want) in [
            ("", "empty"),
            ("12x3", "unknown character 'x' at column 3"),
            ("1+2+3", "found 2 '+'"),
            ("12", "found 0 '+'"),
            ("+5", "missing"),
            ("1 2+3", "space inside"),
            ("-1+2", "unknown character '-'"),
            ("１+2", "unknown character"),
        ] {
            let e = parse_question(q).unwrap_err();
            assert!(e.contains(want), "{q:?}: {e}");
        }
        let long = format!("{}+1", "1".repeat(MAX_DIGITS + 1));
        assert!(parse_question(&long).unwrap_err().contains("longer than"));
    }
}
