//! Two-level scratchpad formats for many-operand addition and multiplication: the model reads
//! the question and writes every line of its working, each token at a two-level coupled
//! position (level: which operand or line; digit: significance), so that every digit it writes
//! depends on a bounded number of others, whatever the count and length of the operands.
//!
//! **Addition** `a_1 + ... + a_k` (operands zero-padded to `W = L + digits(k)`), running sums
//! `s_j = s_{j-1} + a_j`:
//! ```text
//! [BOS] a_1 + a_2 + ... + a_k = s_2 ; s_3 ; ... ; s_k [EOS]     operands MSB first, sums LSB first
//! ```
//! Digit `i` of `a_j` and of `s_j` sits at level `j`, digit position `2 + i`; the `+` before
//! `a_j` and the `=`/`;` before `s_j` at level `j`, digit position 1. `a_1` is written as the
//! running sum `s_1`. Digit `i` of `s_j` is thus one ordinary two-operand addition step: it
//! reads digit `i` (and `i - 1`, for the carry) of `a_j` (same level) and `s_{j-1}` (one level
//! down).
//!
//! **Multiplication** `a * b` (`La`, `Lb` digits), open rows `q_j = floor(q_{j-1} / 10) + a b_j`
//! (`task::many_operands::Product::open_rows`), each after its partial product `a b_j`:
//! ```text
//! [BOS] a * b = p_0 ; q_0 ; p_1 ; q_1 ; ... ; p_{Lb-1} ; q_{Lb-1} [EOS]     p, q LSB first
//! ```
//! `a`'s digits have no level (every line reads them by digit position); `b_j` has level
//! `j + 1` and no digit position (the whole line `j + 1` reads it); `p_j` and `q_j` sit at
//! level `j + 1`. The partial product writes each column's carry in (0..8) before its digit, so
//! that each of its tokens is a function of three others (`a_i`, `b_j`, the carry) rather than
//! of a carry recomputed from the digits below. The product is `q_0[0] q_1[0] .. q_{Lb-2}[0]` followed by all of `q_{Lb-1}`,
//! least significant first.
//!
//! The attention sees these positions only through relative buckets and a local window
//! (`nn::mha`: digit positions within the window, levels within one); segments carry the
//! token's kind and its level modulo 3, so "this line", "the line before" and "the line after"
//! are told apart without any count that grows.

use crate::nn::mha::{level_position, NO_DIGIT, NO_LEVEL, NO_POSITION};
use crate::task::many_operands::{ManyOperands, Product};

pub const PLUS: u8 = 10;
pub const EQUALS: u8 = 11;
pub const BOS: u8 = 12;
pub const EOS: u8 = 13;
pub const SEMI: u8 = 14;
pub const TIMES: u8 = 15;
/// Tokens: ten digits, `+ = BOS EOS ; *`.
pub const VOCAB: usize = 16;
/// Segments: other; operand or partial product, sum or open row, multiplier digit (each by
/// level modulo 3); multiplicand digit; a partial product's carry (by level modulo 3).
pub const SEGMENTS: usize = 14;
/// The segment table of a many-operand addition model (its sequences use segments 0..7; the
/// table keeps the size such models were first trained with, so their weights load).
pub const SUM_SEGMENTS: usize = 11;
const SEG_OTHER: u8 = 0;
fn seg_operand(level: usize) -> u8 {
    1 + (level % 3) as u8
}
fn seg_sum(level: usize) -> u8 {
    4 + (level % 3) as u8
}
fn seg_multiplier(level: usize) -> u8 {
    7 + (level % 3) as u8
}
const SEG_MULTIPLICAND: u8 = 10;
fn seg_carry(level: usize) -> u8 {
    11 + (level % 3) as u8
}

/// The longest sequence a format writes (levels and digit positions must fit their fields).
pub const MAX_LEVELS: usize = NO_LEVEL as usize - 1;
pub const MAX_WIDTH: usize = NO_DIGIT as usize - 3;

/// A question of either task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    Sum(ManyOperands),
    Product(Product),
}

impl Question {
    /// What questions of one batch share: their sequences have the same layout.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Question::Sum(q) => (q.count(), q.len()),
            Question::Product(q) => (q.a.len(), q.b.len()),
        }
    }

    /// The exact answer, least significant first, in the format's width.
    pub fn answer(&self) -> Vec<u8> {
        match self {
            Question::Sum(q) => q.running_sums().pop().expect("two operands or more"),
            Question::Product(q) => {
                let rows: Vec<Vec<u8>> = q.open_rows().into_iter().map(|r| r.1).collect();
                Product::product_from_open_rows(&rows)
            }
        }
    }

    /// As a person types it.
    pub fn text(&self) -> String {
        match self {
            Question::Sum(q) => q.question(),
            Question::Product(q) => q.question(),
        }
    }
}

/// One sequence: its tokens (the true working, EOS last), segments and positions, where the
/// question ends, and which rows hold the final answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<u8>,
    pub seg: Vec<u8>,
    pub pos: Vec<u32>,
    /// Rows of the question, through `=`: the model writes every row after them.
    pub prompt: usize,
    /// Rows holding the answer's digits, least significant first.
    pub answer_rows: Vec<usize>,
}

impl Sequence {
    fn push(&mut self, token: u8, seg: u8, pos: u32) {
        self.tokens.push(token);
        self.seg.push(seg);
        self.pos.push(pos);
    }

    /// The first scored row (the `=`: it predicts the first written token).
    pub fn first_scored_row(&self) -> usize {
        self.prompt - 1
    }

    /// Whether the model chooses row `r`'s token (a digit of its working) rather than the
    /// format fixing it (a separator, EOS).
    pub fn is_digit_row(&self, r: usize) -> bool {
        r >= self.prompt && self.tokens[r] < 10
    }
}

fn at(level: usize, digit: usize) -> u32 {
    level_position(level as u32, digit as u32)
}

/// The sequence of `q` with its true working.
pub fn sequence(q: &Question) -> Sequence {
    let mut s = Sequence {
        tokens: Vec::new(),
        seg: Vec::new(),
        pos: Vec::new(),
        prompt: 0,
        answer_rows: Vec::new(),
    };
    s.push(BOS, SEG_OTHER, NO_POSITION);
    match q {
        Question::Sum(m) => {
            let w = m.width();
            for (j0, a) in m.ops.iter().enumerate() {
                let j = j0 + 1;
                if j > 1 {
                    s.push(PLUS, seg_operand(j), at(j, 1));
                }
                let seg = if j == 1 { seg_sum(1) } else { seg_operand(j) };
                for i in (0..w).rev() {
                    s.push(a.get(i).copied().unwrap_or(0), seg, at(j, 2 + i));
                }
            }
            for (j0, sum) in m.running_sums().iter().enumerate() {
                let j = j0 + 2;
                s.push(if j == 2 { EQUALS } else { SEMI }, seg_sum(j), at(j, 1));
                if j == 2 {
                    s.prompt = s.tokens.len();
                }
                s.answer_rows.clear();
                for (i, &d) in sum.iter().enumerate() {
                    s.answer_rows.push(s.tokens.len());
                    s.push(d, seg_sum(j), at(j, 2 + i));
                }
            }
        }
        Question::Product(p) => {
            for i in (0..p.a.len()).rev() {
                s.push(p.a[i], SEG_MULTIPLICAND, at(NO_LEVEL as usize, 2 + i));
            }
            s.push(TIMES, SEG_OTHER, at(NO_LEVEL as usize, 1));
            for j in (0..p.b.len()).rev() {
                s.push(p.b[j], seg_multiplier(j + 1), at(j + 1, NO_DIGIT as usize));
            }
            let rows = p.open_rows();
            let last = rows.len() - 1;
            for (j0, (partial, open)) in rows.iter().enumerate() {
                let j = j0 + 1;
                s.push(if j == 1 { EQUALS } else { SEMI }, seg_operand(j), at(j, 1));
                if j == 1 {
                    s.prompt = s.tokens.len();
                }
                // Each column's carry in, then its digit; the top digit is the last carry.
                let (_, carries) = p.partial(p.b[j0]);
                for (i, &d) in partial.iter().enumerate() {
                    if i < p.a.len() {
                        let carry_in = if i == 0 { 0 } else { carries[i - 1] };
                        s.push(carry_in, seg_carry(j), at(j, 2 + i));
                    }
                    s.push(d, seg_operand(j), at(j, 2 + i));
                }
                s.push(SEMI, seg_sum(j), at(j, 1));
                for (i, &d) in open.iter().enumerate() {
                    if i == 0 || j0 == last {
                        s.answer_rows.push(s.tokens.len());
                    }
                    s.push(d, seg_sum(j), at(j, 2 + i));
                }
            }
        }
    }
    s.push(EOS, SEG_OTHER, NO_POSITION);
    s
}

/// The answer a written sequence holds (least significant first; a token that is not a digit
/// reads as 10).
pub fn read_answer(seq: &Sequence, written: &[u8]) -> Vec<u8> {
    seq.answer_rows
        .iter()
        .map(|&r| written[r].min(10))
        .collect()
}

/// Parses a typed question: `a+b+...` (`product` false) or `a*b` (`product` true), digits
/// and spaces around the numbers only; refused with a one-line reason.
pub fn parse_question(text: &str, product: bool) -> Result<Question, String> {
    let t = text.trim();
    let (sep, example) = if product {
        ('*', "1234*567")
    } else {
        ('+', "12+345+6789")
    };
    if t.is_empty() {
        return Err(format!("empty question; ask like {example}"));
    }
    if let Some((i, c)) = t
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == sep || c == ' '))
    {
        return Err(format!(
            "unknown character {c:?} at column {}; this model answers {example}",
            t[..i].chars().count() + 1
        ));
    }
    let parts: Vec<&str> = t.split(sep).map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("a number is missing next to a '{sep}'"));
    }
    if let Some(p) = parts.iter().find(|p| p.contains(' ')) {
        return Err(format!("{p:?} is not one number (it has a space inside)"));
    }
    if let Some(p) = parts
        .iter()
        .find(|p| p.len() > crate::task::many_operands::MAX_DIGITS)
    {
        return Err(format!(
            "a number of {} digits is longer than the {} digits this command answers",
            p.len(),
            crate::task::many_operands::MAX_DIGITS
        ));
    }
    let q = if product {
        if parts.len() != 2 {
            return Err(format!("expected a*b; found {} '*'", parts.len() - 1));
        }
        Question::Product(Product::from_decimal(parts[0], parts[1]))
    } else {
        if parts.len() < 2 || parts.len() > crate::task::many_operands::MAX_OPERANDS {
            return Err(format!(
                "expected 2..={} numbers joined by '+'; found {}",
                crate::task::many_operands::MAX_OPERANDS,
                parts.len()
            ));
        }
        Question::Sum(ManyOperands::from_decimal(&parts))
    };
    check_fits(&q)?;
    Ok(q)
}

/// The working a sequence holds, as text: each line of it, least significant digit first,
/// lines separated by `;`.
pub fn work_text(seq: &Sequence, written: &[u8]) -> String {
    written[seq.prompt..written.len() - 1]
        .iter()
        .map(|&t| match t {
            0..=9 => char::from(b'0' + t),
            SEMI => ';',
            _ => '?',
        })
        .collect()
}

/// Checks that a question fits the format's fields.
pub fn check_fits(q: &Question) -> Result<(), String> {
    let (levels, width) = match q {
        Question::Sum(m) => (m.count(), m.width()),
        Question::Product(p) => (p.b.len(), p.a.len() + 1),
    };
    if levels > MAX_LEVELS || width > MAX_WIDTH {
        return Err(format!(
            "the format holds at most {MAX_LEVELS} operands or multiplier digits and {MAX_WIDTH} digits a line"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::mha::{bucket, sees};

    #[test]
    fn typed_questions_parse_or_are_refused_with_a_reason() {
        let q = parse_question(" 12 + 345+6 ", false).unwrap();
        assert_eq!(q.text(), "12+345+6");
        assert_eq!(
            parse_question("47*36", true).unwrap().answer(),
            vec![2, 9, 6, 1]
        );
        for (text, product, want) in [
            ("", false, "empty"),
            ("1+x", false, "unknown character 'x' at column 3"),
            ("12*3", false, "unknown character '*'"),
            ("12+3", true, "unknown character '+'"),
            ("5", false, "expected 2..=1000 numbers"),
            ("1*2*3", true, "found 2 '*'"),
            ("1++2", false, "missing"),
            ("1 2+3", false, "space inside"),
        ] {
            let e = parse_question(text, product).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn an_addition_written_by_hand() {
        // 95 + 7 + 99 = 201; width 2 + 1 = 3.
        let q = Question::Sum(ManyOperands::from_decimal(&["95", "7", "99"]));
        let s = sequence(&q);
        let (p, e, b, z, semi) = (PLUS, EQUALS, BOS, EOS, SEMI);
        assert_eq!(
            s.tokens,
            vec![b, 0, 9, 5, p, 0, 0, 7, p, 0, 9, 9, e, 2, 0, 1, semi, 1, 0, 2, z]
        );
        assert_eq!(s.prompt, 13);
        assert_eq!(s.first_scored_row(), 12);
        assert_eq!(s.answer_rows, vec![17, 18, 19]);
        assert_eq!(read_answer(&s, &s.tokens), q.answer());
        assert_eq!(q.answer(), vec![1, 0, 2]);
        // a_1 is the running sum s_1 (level 1); a_2's digits level 2; s_3 level 3.
        assert_eq!(&s.seg[..4], &[0, 5, 5, 5]);
        assert_eq!(s.seg[5], 3);
        assert_eq!(s.seg[17], 4);
        assert_eq!(s.pos[3], at(1, 2)); // a_1's units digit
        assert_eq!(s.pos[7], at(2, 2)); // a_2's units digit
        assert_eq!(s.pos[17], at(3, 2)); // s_3's units digit
        assert_eq!(s.pos[20], NO_POSITION);
        assert!(s.is_digit_row(13) && !s.is_digit_row(16) && !s.is_digit_row(5));
        // s_3's units digit sees a_3's and s_2's units digits, not a_1's (two levels down).
        let w = Some(2);
        assert!(sees(w, s.pos[17], s.pos[11]) && sees(w, s.pos[17], s.pos[13]));
        assert!(!sees(w, s.pos[17], s.pos[3]));
        assert_eq!(bucket(s.pos[17], s.pos[13]), 2);
    }

    #[test]
    fn a_product_written_by_hand() {
        // 47 * 36: q_0 = 47*6 = 282, q_1 = 28 + 47*3 = 169; product 1692.
        let q = Question::Product(Product::from_decimal("47", "36"));
        let s = sequence(&q);
        let (e, semi, t) = (EQUALS, SEMI, TIMES);
        // Line 1 (b_0 = 6): carry 0, 7*6 = 42 -> 2; carry 4, 4*6+4 = 28 -> 8; top 2.
        // Line 2 (b_1 = 3): carry 0, 21 -> 1; carry 2, 4*3+2 = 14 -> 4; top 1.
        assert_eq!(
            s.tokens,
            vec![
                BOS, 4, 7, t, 3, 6, e, 0, 2, 4, 8, 2, semi, 2, 8, 2, semi, 0, 1, 2, 4, 1, semi, 9,
                6, 1, EOS
            ]
        );
        assert_eq!(s.prompt, 7);
        assert_eq!(s.answer_rows, vec![13, 23, 24, 25]);
        assert_eq!((s.seg[9], s.seg[10]), (12, 2)); // carry 4 and digit 8 of line 1
        assert_eq!(read_answer(&s, &s.tokens), vec![2, 9, 6, 1]);
        assert_eq!(q.answer(), vec![2, 9, 6, 1]);
        // b_0 = 6 has level 1 and no digit: every digit of line 1 sees it; line 3 would not.
        let w = Some(2);
        assert_eq!(s.pos[5], at(1, NO_DIGIT as usize));
        assert!(sees(w, s.pos[13], s.pos[5]) && sees(w, s.pos[9], s.pos[5]));
        // a's units digit (no level) is seen from both lines by digit position.
        assert!(sees(w, s.pos[15], s.pos[2]) && sees(w, s.pos[23], s.pos[2]));
        // q_1's units digit reads q_0's tens (one level down, one place up).
        assert_eq!(bucket(s.pos[23], s.pos[14]), 3);
    }
}
