//! Parsing typed questions.

use super::{BinOp, Item, Seq, TaskError, MAX_SOLVE_CHARS, MAX_SOLVE_DEPTH};
use num_bigint::BigUint;

/// Parses an expression as a person types it: numbers, `+ - *`, brackets; surrounding
/// whitespace ignored, none inside. No unary minus. Inputs longer than `MAX_SOLVE_CHARS` or
/// nested deeper than `MAX_SOLVE_DEPTH` are refused before they can cost much.
pub(crate) fn parse(text: &str) -> Result<Seq, TaskError> {
    let trimmed = text.trim_start();
    let core = trimmed.trim_end();
    let len = core.chars().count();
    if len == 0 {
        return Err(TaskError::Invalid("empty question".into()));
    }
    if len > MAX_SOLVE_CHARS {
        return Err(TaskError::Invalid(format!(
            "the question is {len} characters long; at most {MAX_SOLVE_CHARS} are read"
        )));
    }
    let mut p = Parser {
        text: core,
        chars: core.chars().collect(),
        pos: 0,
        offset: text.chars().count() - trimmed.chars().count(),
    };
    let seq = p.seq(0)?;
    if let Some(&c) = p.chars.get(p.pos) {
        return Err(if c == ')' {
            p.error(format!("unmatched ')' at column {}", p.offset + p.pos + 1))
        } else {
            p.unexpected(c)
        });
    }
    Ok(seq)
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
    /// Characters trimmed from the front, so columns refer to the string as typed.
    offset: usize,
}

impl Parser<'_> {
    fn column(&self) -> usize {
        self.offset + self.pos + 1
    }

    fn error(&self, what: String) -> TaskError {
        TaskError::Invalid(format!("{what} in {:?}", abbreviate(self.text)))
    }

    fn unexpected(&self, c: char) -> TaskError {
        self.error(format!(
            "unexpected character {c:?} at column {}; expected a question like 12+3*(45-6)",
            self.column()
        ))
    }

    /// `item (op item)*`
    fn seq(&mut self, depth: usize) -> Result<Seq, TaskError> {
        let mut items = vec![self.item(depth)?];
        let mut ops = Vec::new();
        while let Some(op) = self.chars.get(self.pos).and_then(|&c| BinOp::from_char(c)) {
            self.pos += 1;
            ops.push(op);
            items.push(self.item(depth)?);
        }
        Ok(Seq { items, ops })
    }

    /// A number or `( seq )`.
    fn item(&mut self, depth: usize) -> Result<Item, TaskError> {
        match self.chars.get(self.pos).copied() {
            None => Err(self.error(format!(
                "the question ends without its last operand (column {})",
                self.column()
            ))),
            Some('(') => {
                if depth >= MAX_SOLVE_DEPTH {
                    return Err(self.error(format!(
                        "brackets nested deeper than {MAX_SOLVE_DEPTH} (column {})",
                        self.column()
                    )));
                }
                let open = self.column();
                self.pos += 1;
                let inner = self.seq(depth + 1)?;
                match self.chars.get(self.pos).copied() {
                    Some(')') => {
                        self.pos += 1;
                        Ok(Item::Group(inner))
                    }
                    Some(c) => Err(self.unexpected(c)),
                    None => Err(self.error(format!(
                        "the bracket opened at column {open} is never closed"
                    ))),
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits: Vec<u8> = self.chars[start..self.pos]
                    .iter()
                    .map(|&c| c as u8)
                    .collect();
                Ok(Item::Num(
                    BigUint::parse_bytes(&digits, 10).expect("ASCII digits parse"),
                ))
            }
            Some(c) => Err(self.unexpected(c)),
        }
    }
}

/// At most 60 characters of a question, for messages.
pub(crate) fn abbreviate(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

/// The operators of a configured `ops` string, or why it is not a valid one.
pub(crate) fn parse_ops(ops: &str) -> Result<Vec<BinOp>, TaskError> {
    if ops.is_empty() {
        return Err(TaskError::Invalid(
            "ops is empty; give one or more of \"+-*\"".into(),
        ));
    }
    let mut out = Vec::new();
    for c in ops.chars() {
        let op = BinOp::from_char(c).ok_or_else(|| {
            TaskError::Invalid(format!(
                "unknown operator {c:?} in ops {ops:?}; expressions use \"+\", \"-\" and \"*\""
            ))
        })?;
        if out.contains(&op) {
            return Err(TaskError::Invalid(format!("ops {ops:?} lists {c:?} twice")));
        }
        out.push(op);
    }
    Ok(out)
}
