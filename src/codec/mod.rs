//! Vocabulary, padding, reversal: strings <-> u8 symbol indices.
//!
//! One symbol table serves questions and answers (Keras `CharacterTable`): the sorted alphabet,
//! index = position. Questions are padded to `input_len`, answers to `output_len`, on
//! `pad_side`, with `pad` (a symbol of the alphabet); when `reverse_input` the padded question is
//! reversed (as Keras does: pad right, then reverse).

pub mod coupled;
pub mod levels;
mod scratchpad;

use crate::task::expression::{PART_SEP, STEP_SEP};
use crate::task::{TaskConfig, TaskKind};
use scratchpad::{last_number, reverse_numbers};
use serde::{Deserialize, Serialize};

/// Which side padding goes on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PadSide {
    Left,
    Right,
}

/// Codec settings; `None` fields are derived from the task by `resolve`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CodecConfig {
    pub alphabet: Option<String>,
    pub input_len: Option<usize>,
    pub output_len: Option<usize>,
    pub pad: char,
    pub pad_side: PadSide,
    pub reverse_input: bool,
    /// End-of-answer symbol (teacher-forced decoders): answers are written left-aligned,
    /// followed by it, then padding; decoding stops at it. Added to the alphabet and to
    /// `output_len` by `resolve`.
    pub eos: Option<char>,
    /// Write answers backwards (least significant digit first), so a decoder produces each
    /// digit after the digits it carries from; decoding turns them around again.
    pub reverse_output: bool,
    /// Expressions: the model writes a worked answer before the answer (every operation's
    /// result in order, with partial products for long multiplications; the task writes it,
    /// see `crate::task::Problem::target`), and decoding keeps only the answer at its end. Adds the
    /// separators `;` and `,` to the alphabet and needs an end symbol.
    pub scratchpad: bool,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            alphabet: None,
            input_len: None,
            output_len: None,
            pad: ' ',
            pad_side: PadSide::Right,
            reverse_input: true,
            eos: None,
            reverse_output: false,
            scratchpad: false,
        }
    }
}

impl CodecConfig {
    /// Fills every `None` from the task (alphabet, max question and answer lengths).
    pub fn resolve(&self, task: &TaskConfig) -> CodecConfig {
        let alphabet = self.alphabet.clone().unwrap_or_else(|| {
            let mut a: Vec<char> = task.alphabet().chars().collect();
            let extra = self.eos.into_iter();
            let separators = [STEP_SEP, PART_SEP].into_iter().filter(|_| self.scratchpad);
            for c in extra.chain(separators) {
                if !a.contains(&c) {
                    a.push(c);
                }
            }
            a.sort_unstable();
            a.into_iter().collect()
        });
        let extra = usize::from(self.eos.is_some());
        CodecConfig {
            alphabet: Some(alphabet),
            input_len: Some(self.input_len.unwrap_or_else(|| task.max_question_len())),
            output_len: Some(self.output_len.unwrap_or_else(|| {
                let answer = if self.scratchpad {
                    task.max_worked_len()
                } else {
                    task.max_answer_len()
                };
                answer + extra
            })),
            ..self.clone()
        }
    }
}

/// Errors from encoding; messages name the symbol, its column (1-based, in the question as typed)
/// and the allowed alphabet, e.g. "unknown character 'x' at column 3; this model knows `0123456789+ `".
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("unknown character {symbol:?} at column {column}; this model knows `{alphabet}`")]
    UnknownSymbol {
        symbol: char,
        column: usize,
        alphabet: String,
    },
    #[error("{what} is {len} characters long; this model takes at most {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("empty question")]
    Empty,
    #[error("invalid codec: {0}")]
    Invalid(String),
}

/// Marks characters outside the alphabet in `Codec::ascii`.
const NOT_A_SYMBOL: u8 = u8::MAX;

/// A resolved codec.
#[derive(Clone, Debug)]
pub struct Codec {
    cfg: CodecConfig,
    /// The alphabet; a symbol's index is its position.
    symbols: Vec<char>,
    /// Index of each ASCII character, `NOT_A_SYMBOL` if absent (others are looked up in `symbols`).
    ascii: [u8; 128],
    pad_index: u8,
    eos_index: Option<u8>,
    input_len: usize,
    output_len: usize,
}

impl Codec {
    /// Builds a codec from a config (resolving `None`s from the task).
    pub fn new(cfg: &CodecConfig, task: &TaskConfig) -> Result<Codec, CodecError> {
        let cfg = cfg.resolve(task);
        let alphabet = cfg.alphabet.as_deref().expect("resolved");
        let symbols: Vec<char> = alphabet.chars().collect();
        if symbols.is_empty() {
            return Err(CodecError::Invalid("the alphabet is empty".into()));
        }
        if symbols.len() > usize::from(NOT_A_SYMBOL) {
            return Err(CodecError::Invalid(format!(
                "the alphabet has {} symbols; at most {} fit u8 indices",
                symbols.len(),
                NOT_A_SYMBOL
            )));
        }
        if symbols.windows(2).any(|w| w[0] >= w[1]) {
            let mut sorted = symbols.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let sorted: String = sorted.into_iter().collect();
            return Err(CodecError::Invalid(format!(
                "the alphabet `{alphabet}` must list each symbol once, sorted (Keras's \
                 CharacterTable order): `{sorted}`"
            )));
        }
        let (input_len, output_len) = (
            cfg.input_len.expect("resolved"),
            cfg.output_len.expect("resolved"),
        );
        if input_len == 0 || output_len == 0 {
            return Err(CodecError::Invalid(format!(
                "input_len ({input_len}) and output_len ({output_len}) must be at least 1"
            )));
        }
        let pad_index = symbols.iter().position(|&c| c == cfg.pad).ok_or_else(|| {
            CodecError::Invalid(format!(
                "the pad {:?} is not in the alphabet `{alphabet}`",
                cfg.pad
            ))
        })? as u8;
        let eos_index = match cfg.eos {
            None => None,
            Some(e) if e == cfg.pad => {
                return Err(CodecError::Invalid(format!(
                    "the end symbol {e:?} is also the pad"
                )))
            }
            Some(e) if task.alphabet().contains(e) => {
                return Err(CodecError::Invalid(format!(
                    "the end symbol {e:?} is a symbol of the task's questions or answers"
                )))
            }
            Some(e) => Some(symbols.iter().position(|&c| c == e).ok_or_else(|| {
                CodecError::Invalid(format!(
                    "the end symbol {e:?} is not in the alphabet `{alphabet}`"
                ))
            })? as u8),
        };
        if cfg.scratchpad {
            if task.kind != TaskKind::Expression {
                return Err(CodecError::Invalid(
                    "a scratchpad (worked answers) needs the expression task".into(),
                ));
            }
            if eos_index.is_none() {
                return Err(CodecError::Invalid(
                    "a scratchpad (worked answers) has no fixed width: it needs an end symbol \
                     (codec.eos, or a teacher-forced decoder)"
                        .into(),
                ));
            }
            if let Some(c) = [STEP_SEP, PART_SEP]
                .into_iter()
                .find(|c| !symbols.contains(c))
            {
                return Err(CodecError::Invalid(format!(
                    "a scratchpad writes {c:?}, which is not in the alphabet `{alphabet}`"
                )));
            }
        }
        let mut ascii = [NOT_A_SYMBOL; 128];
        for (i, &c) in symbols.iter().enumerate() {
            if c.is_ascii() {
                ascii[c as usize] = i as u8;
            }
        }
        Ok(Codec {
            cfg,
            symbols,
            ascii,
            pad_index,
            eos_index,
            input_len,
            output_len,
        })
    }
    /// The resolved config (all fields `Some`), as saved in a run's config.json.
    pub fn config(&self) -> &CodecConfig {
        &self.cfg
    }
    /// Number of symbols (V).
    pub fn vocab_size(&self) -> usize {
        self.symbols.len()
    }
    pub fn input_len(&self) -> usize {
        self.input_len
    }
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    /// The alphabet, sorted, as one string.
    pub fn alphabet(&self) -> &str {
        self.cfg.alphabet.as_deref().expect("resolved")
    }
    /// The index of `c`, if it is a symbol.
    pub fn symbol_index(&self, c: char) -> Option<u8> {
        if c.is_ascii() {
            Some(self.ascii[c as usize]).filter(|&i| i != NOT_A_SYMBOL)
        } else {
            self.symbols.binary_search(&c).ok().map(|i| i as u8)
        }
    }
    /// The symbol with index `i`; U+FFFD for an index outside the alphabet.
    pub fn symbol(&self, i: u8) -> char {
        self.symbols
            .get(usize::from(i))
            .copied()
            .unwrap_or(char::REPLACEMENT_CHARACTER)
    }
    /// Encodes a question as typed (no padding) into `out` (`input_len` indices).
    pub fn encode_input(&self, question: &str, out: &mut [u8]) -> Result<(), CodecError> {
        if question.trim().is_empty() {
            return Err(CodecError::Empty);
        }
        self.encode(question, "question", out)?;
        if self.cfg.reverse_input {
            out.reverse();
        }
        Ok(())
    }
    /// Encodes what the model must write for a problem (`Problem::target`: its answer or, with
    /// a scratchpad, the worked answer ending in it) into `out` (`output_len` indices); with
    /// `reverse_output` every number of a worked answer is written backwards.
    pub fn encode_target(&self, target: &str, out: &mut [u8]) -> Result<(), CodecError> {
        if !self.cfg.scratchpad {
            return self.encode_output(target, out);
        }
        if self.cfg.reverse_output {
            self.encode_written(&reverse_numbers(target), out)
        } else {
            self.encode_written(target, out)
        }
    }
    /// Encodes an answer (no padding) into `out` (`output_len` indices); with an end symbol,
    /// the answer is left-aligned and followed by it.
    pub fn encode_output(&self, answer: &str, out: &mut [u8]) -> Result<(), CodecError> {
        let reversed: String;
        let answer = if self.cfg.reverse_output {
            reversed = answer.chars().rev().collect();
            &reversed
        } else {
            answer
        };
        self.encode_written(answer, out)
    }
    /// Encodes output text as the model writes it (already reversed where it should be).
    fn encode_written(&self, answer: &str, out: &mut [u8]) -> Result<(), CodecError> {
        match self.cfg.eos {
            Some(e) => {
                if answer.contains(e) {
                    return Err(CodecError::Invalid(format!(
                        "the answer {answer:?} contains the end symbol {e:?}"
                    )));
                }
                self.encode(&format!("{answer}{e}"), "answer", out)?;
                // Left-aligned whatever the pad side: the decoder reads it from the start.
                if self.cfg.pad_side == PadSide::Left {
                    let len = answer.chars().count() + 1;
                    let max = out.len();
                    out.copy_within(max - len.., 0);
                    out[len..].fill(self.pad_index);
                }
                Ok(())
            }
            None => self.encode(answer, "answer", out),
        }
    }
    /// Output steps an answer of `answer_len` characters takes (its end symbol included).
    pub fn output_steps(&self, answer_len: usize) -> usize {
        answer_len + usize::from(self.eos_index.is_some())
    }
    /// The end symbol's index, if the codec has one.
    pub fn eos_index(&self) -> Option<u8> {
        self.eos_index
    }
    /// The pad symbol's index.
    pub fn pad_index(&self) -> u8 {
        self.pad_index
    }
    /// Decodes output indices to the answer string, padding removed (and, with an end symbol,
    /// everything from it on; with a scratchpad, the work before the answer).
    pub fn decode_output(&self, indices: &[u8]) -> String {
        let written = self.decode_written(indices);
        let text = if self.cfg.scratchpad {
            last_number(&written)
        } else {
            &written
        };
        if self.cfg.reverse_output {
            text.chars().rev().collect()
        } else {
            text.to_string()
        }
    }
    /// The output text as the model wrote it, up to the end symbol, padding removed: with a
    /// scratchpad, the worked answer (numbers digit-reversed when `reverse_output`).
    pub fn decode_written(&self, indices: &[u8]) -> String {
        let upto = match self.eos_index {
            Some(e) => indices
                .iter()
                .position(|&i| i == e)
                .unwrap_or(indices.len()),
            None => indices.len(),
        };
        let text: String = indices[..upto].iter().map(|&i| self.symbol(i)).collect();
        text.trim_matches(self.cfg.pad).to_string()
    }
    /// With a scratchpad, the worked answer the model wrote as a person reads it (every number
    /// written forwards); `None` without one.
    pub fn decode_work(&self, indices: &[u8]) -> Option<String> {
        if !self.cfg.scratchpad {
            return None;
        }
        let written = self.decode_written(indices);
        if self.cfg.reverse_output {
            Some(reverse_numbers(&written))
        } else {
            Some(written)
        }
    }
    /// Decodes encoded input back to the question as typed (un-reversed, padding removed).
    pub fn decode_input(&self, indices: &[u8]) -> String {
        let text: String = if self.cfg.reverse_input {
            indices.iter().rev().map(|&i| self.symbol(i)).collect()
        } else {
            indices.iter().map(|&i| self.symbol(i)).collect()
        };
        text.trim_matches(self.cfg.pad).to_string()
    }
    /// Decodes per-step probabilities `[output_len, V]` by argmax; returns the answer and the
    /// confidence (product of the chosen symbols' probabilities).
    pub fn decode_probs(&self, probs: &[f32]) -> (String, f64) {
        let (indices, confidence) = self.argmax_steps(probs);
        (self.decode_output(&indices), confidence)
    }
    /// `decode_work` of the argmax symbols of per-step probabilities `[output_len, V]`.
    pub fn decode_probs_work(&self, probs: &[f32]) -> Option<String> {
        self.decode_work(&self.argmax_steps(probs).0)
    }
    /// What the model wrote, step by step in the order it wrote them: the argmax symbol of each
    /// step up to and including the end symbol, with its probability (the per-character
    /// confidence; their product is `decode_probs`'s confidence). Padding steps are included.
    pub fn written_steps(&self, probs: &[f32]) -> Vec<(char, f32)> {
        let (indices, _) = self.argmax_steps(probs);
        let v = self.vocab_size();
        indices
            .iter()
            .zip(probs.chunks_exact(v))
            .map(|(&i, step)| (self.symbol(i), step[usize::from(i)]))
            .collect()
    }
    /// The argmax symbol of each step up to the end symbol, and the product of their
    /// probabilities.
    fn argmax_steps(&self, probs: &[f32]) -> (Vec<u8>, f64) {
        let v = self.vocab_size();
        assert_eq!(
            probs.len(),
            self.output_len * v,
            "decode_probs takes [output_len, V] probabilities"
        );
        let mut indices = Vec::with_capacity(self.output_len);
        let mut confidence = 1.0f64;
        for step in probs.chunks_exact(v) {
            // First maximum wins ties; NaN never wins.
            let (best, p) = step
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, &p)| {
                        if p > acc.1 {
                            (i, p)
                        } else {
                            acc
                        }
                    },
                );
            indices.push(best as u8);
            confidence *= f64::from(p.max(0.0));
            if Some(best as u8) == self.eos_index {
                // The answer ends here; later steps are not part of it.
                break;
            }
        }
        (indices, confidence)
    }

    /// Writes `text` padded to `out.len()` on the configured side; `what` names it in errors.
    fn encode(&self, text: &str, what: &'static str, out: &mut [u8]) -> Result<(), CodecError> {
        let max = if what == "question" {
            self.input_len
        } else {
            self.output_len
        };
        assert_eq!(
            out.len(),
            max,
            "the {what} buffer must hold exactly {max} indices"
        );
        let mut len = 0;
        for (i, c) in text.chars().enumerate() {
            let index = self
                .symbol_index(c)
                .ok_or_else(|| CodecError::UnknownSymbol {
                    symbol: c,
                    column: i + 1,
                    alphabet: self.alphabet().to_string(),
                })?;
            if i < max {
                out[i] = index;
            }
            len += 1;
        }
        if len > max {
            return Err(CodecError::TooLong { what, len, max });
        }
        match self.cfg.pad_side {
            PadSide::Right => out[len..].fill(self.pad_index),
            PadSide::Left => {
                out.copy_within(..len, max - len);
                out[..max - len].fill(self.pad_index);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
