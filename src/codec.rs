//! Vocabulary, padding, reversal: strings <-> u8 symbol indices.
//!
//! One symbol table serves questions and answers (Keras `CharacterTable`): the sorted alphabet,
//! index = position. Questions are padded to `input_len`, answers to `output_len`, on
//! `pad_side`, with `pad` (a symbol of the alphabet); when `reverse_input` the padded question is
//! reversed (as Keras does: pad right, then reverse).

use crate::task::TaskConfig;
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
        }
    }
}

impl CodecConfig {
    /// Fills every `None` from the task (alphabet, max question and answer lengths).
    pub fn resolve(&self, task: &TaskConfig) -> CodecConfig {
        let _ = task;
        todo!()
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

/// A resolved codec.
#[derive(Clone, Debug)]
pub struct Codec {
    cfg: CodecConfig,
}

impl Codec {
    /// Builds a codec from a config (resolving `None`s from the task).
    pub fn new(cfg: &CodecConfig, task: &TaskConfig) -> Result<Codec, CodecError> {
        let _ = (cfg, task);
        todo!()
    }
    /// The resolved config (all fields `Some`), as saved in a run's config.json.
    pub fn config(&self) -> &CodecConfig {
        &self.cfg
    }
    /// Number of symbols (V).
    pub fn vocab_size(&self) -> usize {
        todo!()
    }
    pub fn input_len(&self) -> usize {
        todo!()
    }
    pub fn output_len(&self) -> usize {
        todo!()
    }
    /// The alphabet, sorted, as one string.
    pub fn alphabet(&self) -> &str {
        todo!()
    }
    /// Encodes a question as typed (no padding) into `out` (`input_len` indices).
    pub fn encode_input(&self, question: &str, out: &mut [u8]) -> Result<(), CodecError> {
        let _ = (question, out);
        todo!()
    }
    /// Encodes an answer (no padding) into `out` (`output_len` indices).
    pub fn encode_output(&self, answer: &str, out: &mut [u8]) -> Result<(), CodecError> {
        let _ = (answer, out);
        todo!()
    }
    /// Decodes output indices to the answer string, padding removed.
    pub fn decode_output(&self, indices: &[u8]) -> String {
        let _ = indices;
        todo!()
    }
    /// Decodes encoded input back to the question as typed (un-reversed, padding removed).
    pub fn decode_input(&self, indices: &[u8]) -> String {
        let _ = indices;
        todo!()
    }
    /// Decodes per-step probabilities `[output_len, V]` by argmax; returns the answer and the
    /// confidence (product of the chosen symbols' probabilities).
    pub fn decode_probs(&self, probs: &[f32]) -> (String, f64) {
        let _ = probs;
        todo!()
    }
}
