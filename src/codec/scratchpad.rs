//! Worked answers as text: turning their numbers around, finding the answer at their end.

use crate::task::expression::{PART_SEP, STEP_SEP};

/// Each number of a worked answer written backwards, the separators between them in place
/// (its own inverse: it turns a written answer forwards and back).
pub(super) fn reverse_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find([STEP_SEP, PART_SEP]) {
        out.extend(rest[..i].chars().rev());
        // Separators are ASCII: one byte.
        out.push_str(&rest[i..=i]);
        rest = &rest[i + 1..];
    }
    out.extend(rest.chars().rev());
    out
}

/// The last number of a worked answer: the answer (as written, backwards with
/// `reverse_output`).
pub(super) fn last_number(work: &str) -> &str {
    work.rsplit([STEP_SEP, PART_SEP]).next().unwrap_or(work)
}
