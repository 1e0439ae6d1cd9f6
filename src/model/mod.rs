//! The model layer: the question-to-answer models built from `nn` layers, and the engine that
//! runs them.
//!
//! - [`Seq2Seq`] (`seq2seq`): shapes, parameter layout and initialisation, with its network one
//!   of [`Network`]: the Keras `addition_rnn` model and its variants ([`RecurrentNet`]: an RNN
//!   encoder over the question symbols, its last output repeated `T_out` times (Keras
//!   `RepeatVector`) or a teacher-forced decoder, `layers` decoder RNNs returning sequences, and
//!   a Dense softmax at every output step) or a decoder-only transformer (`transformer_arch`).
//! - `recurrent`: the recurrent network's forward, backward and greedy decoding on one slice;
//!   `prefix`: the encoder's shared question prefixes in a forward without backward.
//! - [`Seq2SeqEngine`] (`engine`): runs a model over batches on the math threads, the same bits
//!   for a given thread count.
//! - `summary`: Keras-style summary tables.
//! - [`coupled`]: the coupled-position transformer for long additions and its two-core engine
//!   (training steps, greedy decoding with key/value caches).
//! - [`pair_gru`]: the GRU over aligned digit pairs and its engine.
//!
//! Here: the model's configuration, its errors and the per-batch sums every path returns.

pub mod coupled;
mod engine;
pub mod pair_gru;
mod prefix;
mod recurrent;
mod seq2seq;
mod summary;
#[cfg(test)]
pub(crate) mod tests;
mod transformer_arch;

pub use engine::Seq2SeqEngine;
pub use recurrent::Workspace;
pub use seq2seq::{Network, RecurrentNet, Seq2Seq};
pub use transformer_arch::TransformerWorker;
// The thread helpers' former home, kept so that code written against it still builds.
pub use crate::parallel::{default_threads, threads_or_cores};
#[allow(unused_imports)]
pub(crate) use crate::parallel::{math_pool, run_on_slices, worker_slices};

use crate::nn::rnn::CellKind;
use serde::{Deserialize, Serialize};

/// Which architecture.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Encoder -> RepeatVector -> decoder RNNs -> Dense softmax (Keras `addition_rnn`).
    RepeatSeq2seq,
    /// A decoder-only transformer over `question, start, answer`: learned absolute positions,
    /// causal self-attention, teacher forcing in training and greedy decoding with key/value
    /// caches when answering (`hidden` is its width, `layers` its blocks).
    Transformer,
}

/// How the decoder gets its input.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// The encoder's last output repeated at every step (Keras `RepeatVector`).
    Repeat,
    /// Starts from the encoder's final state and reads the previous answer symbol: the true one
    /// in training (teacher forcing), its own argmax when answering (greedy decoding); answers
    /// end with an end symbol, so they need no fixed width.
    TeacherForced,
}

/// How question symbols enter the encoder.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// One-hot vectors (Keras `addition_rnn`).
    OneHot,
    /// Integer symbols through a learned embedding of `embed_dim` (Brownlee's integer encoding).
    Embedding,
}

/// Model hyper-parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub decoder: DecoderKind,
    /// Luong attention of the decoder's outputs over all encoder outputs.
    pub attention: bool,
    pub input: InputKind,
    /// Embedding width when `input` is `embedding`.
    pub embed_dim: usize,
    /// Cell of the encoder and decoder: lstm, gru or simplernn.
    pub cell: CellKind,
    /// Hidden units of the decoder layers (and of the encoder unless `encoder_hidden` is set).
    pub hidden: usize,
    /// Hidden units of the encoder, when it differs (Brownlee: LSTM(100) encoder, LSTM(50) decoder).
    pub encoder_hidden: Option<usize>,
    /// Decoder layers (Keras `LAYERS`).
    pub layers: usize,
    /// Leave padding out: question steps on the pad symbol are skipped by the encoder (its state
    /// carried over them, Keras `Masking`) and never attended to, and answer positions after the
    /// end symbol (which masking turns on) are left out of the loss and the accuracies.
    pub mask: bool,
    /// Transformer: attention heads (must divide `hidden`).
    pub heads: usize,
    /// Transformer: feed-forward width (default 4 x `hidden`).
    pub ffn: Option<usize>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::RepeatSeq2seq,
            decoder: DecoderKind::Repeat,
            attention: false,
            input: InputKind::OneHot,
            embed_dim: 16,
            cell: CellKind::Lstm,
            hidden: 128,
            encoder_hidden: None,
            layers: 1,
            mask: false,
            heads: 4,
            ffn: None,
        }
    }
}

/// Errors building a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model: {0}")]
    Invalid(String),
}

/// Activation memory an inference call aims to stay within (eval, predict, validation).
pub const INFERENCE_BUDGET_BYTES: usize = 512 << 20;

/// Largest sequence length accepted (the pq-system uses 2001).
pub const MAX_SEQ_LEN: usize = 100_000;

/// Sums over the rows of one slice or batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceStats {
    /// Σ over rows and steps of -log p(target).
    pub loss_sum: f64,
    /// Characters predicted right.
    pub correct_chars: usize,
    /// Rows with every character right.
    pub exact: usize,
    pub rows: usize,
    /// Answer positions scored (rows x steps; with masking, the steps up to the end symbol).
    #[serde(default)]
    pub positions: usize,
}

impl SliceStats {
    /// The sums of several slices.
    pub fn total(parts: &[SliceStats]) -> SliceStats {
        let mut t = SliceStats::default();
        for s in parts {
            t.add(s);
        }
        t
    }

    pub fn add(&mut self, o: &SliceStats) {
        self.loss_sum += o.loss_sum;
        self.correct_chars += o.correct_chars;
        self.exact += o.exact;
        self.rows += o.rows;
        self.positions += o.positions;
    }

    /// Mean loss per scored position.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.positions.max(1) as f64
    }

    /// Per-character accuracy over the scored positions.
    pub fn char_accuracy(&self) -> f64 {
        self.correct_chars as f64 / self.positions.max(1) as f64
    }
}
