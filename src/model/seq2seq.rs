//! The question-to-answer model: a network over `T_in` question symbols that scores `T_out`
//! answer symbols, with its parameter layout, initialisation, answer scoring and size
//! estimates. The network is one of [`Network`]: the recurrent encoder-decoder
//! ([`RecurrentNet`], run by `recurrent`) or the decoder-only transformer (run by
//! `transformer_arch`).

use super::{DecoderKind, InputKind, ModelConfig, ModelError, ModelKind, MAX_SEQ_LEN};
use crate::nn::attention::Attention;
use crate::nn::dense::Dense;
use crate::nn::embedding::Embedding;
use crate::nn::params::ParamLayout;
use crate::nn::rnn::{CellKind, RnnLayer};
use crate::nn::transformer::Transformer;
use crate::nn::Real;
use rand::SeedableRng;

/// A sequence-to-sequence model: its shapes, parameter layout and network.
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    pub cfg: ModelConfig,
    /// V.
    pub vocab: usize,
    /// Question length.
    pub t_in: usize,
    /// Answer length.
    pub t_out: usize,
    pub layout: ParamLayout,
    /// The end-of-answer symbol's index (teacher-forced decoders, masking): exact match
    /// compares answers up to it. Set from the codec.
    pub eos: Option<u8>,
    /// The pad symbol's index: with `cfg.mask`, question steps on it are skipped. Set from the
    /// codec.
    pub pad: u8,
    pub net: Network,
}

/// The network of a [`Seq2Seq`] (`cfg.kind`), its parameters laid out in `Seq2Seq::layout`.
#[derive(Clone, Debug)]
pub enum Network {
    /// `kind = repeat-seq2seq`: the recurrent encoder-decoder.
    Recurrent(RecurrentNet),
    /// `kind = transformer`: a decoder-only transformer over `question, start, answer`.
    Transformer(Transformer),
}

/// The Keras `addition_rnn` model and its variants: an RNN encoder over the question symbols
/// (through an embedding when `cfg.input` is `embedding`), decoder RNNs fed the encoder's last
/// output at every step (`RepeatVector`) or, teacher-forced, the previous answer symbol,
/// optional Luong attention over the encoder's outputs, and a Dense softmax at every output step.
#[derive(Clone, Debug)]
pub struct RecurrentNet {
    pub embedding: Option<Embedding>,
    pub encoder: RnnLayer,
    pub decoders: Vec<RnnLayer>,
    pub attention: Option<Attention>,
    pub head: Dense,
}

impl Seq2Seq {
    /// Builds the parameter layout for a vocabulary and sequence lengths.
    pub fn new(
        cfg: &ModelConfig,
        vocab: usize,
        t_in: usize,
        t_out: usize,
    ) -> Result<Seq2Seq, ModelError> {
        if cfg.hidden == 0 || cfg.encoder_hidden == Some(0) {
            return Err(ModelError::Invalid("hidden must be at least 1".into()));
        }
        if cfg.layers == 0 {
            return Err(ModelError::Invalid(
                "the decoder needs at least 1 layer".into(),
            ));
        }
        if !(2..=256).contains(&vocab) {
            return Err(ModelError::Invalid(format!(
                "vocabulary of {vocab} symbols; need 2..=256"
            )));
        }
        for (what, t) in [("question", t_in), ("answer", t_out)] {
            if t == 0 || t > MAX_SEQ_LEN {
                return Err(ModelError::Invalid(format!(
                    "{what} length {t}; need 1..={MAX_SEQ_LEN}"
                )));
            }
        }
        if cfg.kind == ModelKind::Transformer {
            return Seq2Seq::new_transformer(cfg, vocab, t_in, t_out);
        }
        let enc_h = cfg.encoder_hidden.unwrap_or(cfg.hidden);
        let teacher_forced = cfg.decoder == DecoderKind::TeacherForced;
        if teacher_forced && enc_h != cfg.hidden {
            return Err(ModelError::Invalid(format!(
                "a teacher-forced decoder starts from the encoder's state, so encoder_hidden ({enc_h}) must equal hidden ({})",
                cfg.hidden
            )));
        }
        if teacher_forced && vocab >= 256 {
            return Err(ModelError::Invalid(
                "a teacher-forced decoder needs one symbol index for its start symbol; the vocabulary has 256".into(),
            ));
        }
        if cfg.input == InputKind::Embedding && !(1..=4096).contains(&cfg.embed_dim) {
            return Err(ModelError::Invalid(format!(
                "embed_dim {} must be in 1..=4096",
                cfg.embed_dim
            )));
        }
        let mut layout = ParamLayout::default();
        let embedding = (cfg.input == InputKind::Embedding)
            .then(|| Embedding::new(&mut layout, "embedding", vocab, cfg.embed_dim));
        let enc_in = embedding.as_ref().map_or(vocab, |e| e.dim);
        let encoder = RnnLayer::new(&mut layout, "encoder", "_l0", cfg.cell, enc_in, enc_h);
        let decoders = (0..cfg.layers)
            .map(|l| {
                // Teacher forcing: layer 0 reads the previous symbol, one-hot over V + 1 (the
                // extra index is the start symbol).
                let input = match (l, teacher_forced) {
                    (0, true) => vocab + 1,
                    (0, false) => enc_h,
                    _ => cfg.hidden,
                };
                RnnLayer::new(
                    &mut layout,
                    "decoder",
                    &format!("_l{l}"),
                    cfg.cell,
                    input,
                    cfg.hidden,
                )
            })
            .collect();
        let attention = cfg
            .attention
            .then(|| Attention::new(&mut layout, cfg.hidden, enc_h));
        let head = Dense::new(&mut layout, "head", cfg.hidden, vocab);
        Ok(Seq2Seq {
            cfg: cfg.clone(),
            vocab,
            t_in,
            t_out,
            layout,
            eos: None,
            pad: 0,
            net: Network::Recurrent(RecurrentNet {
                embedding,
                encoder,
                decoders,
                attention,
                head,
            }),
        })
    }

    pub fn param_count(&self) -> usize {
        self.layout.total
    }

    /// Keras initialisation of all parameters from `seed`.
    pub fn init_params<R: Real>(&self, seed: u64) -> Vec<R> {
        let rnn = match &self.net {
            Network::Transformer(tr) => return tr.init_params(seed),
            Network::Recurrent(rnn) => rnn,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![R::ZERO; self.layout.total];
        // The classic model draws in the same order as before the optional layers existed.
        rnn.encoder.init(&mut p, &mut rng);
        for d in &rnn.decoders {
            d.init(&mut p, &mut rng);
        }
        rnn.head.init(&mut p, &mut rng);
        if let Some(e) = &rnn.embedding {
            e.init(&mut p, &mut rng);
        }
        if let Some(a) = &rnn.attention {
            a.init(&mut p, &mut rng);
        }
        p
    }

    /// The recurrent network; only called on the recurrent model's paths, which `Network`
    /// dispatch alone reaches.
    pub(super) fn rnn(&self) -> &RecurrentNet {
        match &self.net {
            Network::Recurrent(rnn) => rnn,
            Network::Transformer(_) => unreachable!("a recurrent path run on a transformer"),
        }
    }

    /// Answer steps scored for one target row (`[T_out]`): with masking, up to and including
    /// the end symbol; otherwise all.
    pub fn scored_len(&self, row: &[u8]) -> usize {
        match (self.cfg.mask, self.eos) {
            (true, Some(e)) => row
                .iter()
                .position(|&s| s == e)
                .map_or(row.len(), |i| i + 1),
            _ => row.len(),
        }
    }

    /// One answer (`[T_out]`, row-major) is right: every step up to the target's end symbol (or
    /// every step without one).
    pub fn answer_matches(&self, pred: &[u8], target: &[u8]) -> bool {
        let upto = match self.eos {
            Some(e) => target
                .iter()
                .position(|&s| s == e)
                .map_or(target.len(), |i| i + 1),
            None => target.len(),
        };
        pred[..upto] == target[..upto]
    }
}

impl Seq2Seq {
    /// Rows a worker runs at once in a forward without backward: one step's gates and states
    /// for them (`rows x (gates + 3) x hidden` f32, the wider of encoder and decoder) stay near
    /// 256 KiB, within a core's L2 beside the packed recurrent kernel, rounded to whole register
    /// tiles of the recurrent products: the nearest multiple of 42 rows (the AVX-512 kernel's
    /// tiles have 14 rows, the AVX2 kernel's 6), where that is at least 42 (fewer rows stay as
    /// they are). The reference model's 73 rows ended each chunk in a 3-row tile, which runs
    /// at a fraction of a full one's rate: 84 rows answered 2-3% faster (paired runs in one
    /// process; 70 alike, 168 no faster). A heuristic: any chunk size gives the same answers and
    /// probabilities (the loss is summed chunk by chunk, the same up to its last bits).
    pub fn forward_chunk_rows(&self) -> usize {
        let encoder_hidden = match &self.net {
            Network::Recurrent(rnn) => rnn.encoder.hidden,
            Network::Transformer(_) => 0,
        };
        let h = self.cfg.hidden.max(encoder_hidden).max(1);
        let per_row = 4 * (self.cfg.cell.gates() + 3) * h;
        let rows = ((256 << 10) / per_row).clamp(8, 1024);
        if rows >= 21 {
            (rows + 21) / 42 * 42
        } else {
            rows
        }
    }

    /// The network in a few words, e.g. `LSTM(128) x1 decoder`.
    pub fn describe(&self) -> String {
        match &self.net {
            Network::Transformer(tr) => format!(
                "transformer(dim {}, {} heads, FFN {}) x{} blocks",
                tr.cfg.dim, tr.cfg.heads, tr.cfg.ffn, tr.cfg.layers
            ),
            Network::Recurrent(_) => format!(
                "{}({}) x{} decoder",
                self.cfg.cell.keras_name(),
                self.cfg.hidden,
                self.cfg.layers
            ),
        }
    }

    /// Rows per inference call so that forward activations stay near `budget_bytes` (at least 1,
    /// at most 1024): long sequences (the pq-system's 2001 steps) get small chunks.
    pub fn inference_rows(&self, budget_bytes: usize) -> usize {
        let rnn = match &self.net {
            Network::Transformer(tr) => {
                let per_row = 4 * self.transformer_floats_per_row(tr);
                return (budget_bytes / per_row.max(1)).clamp(1, 1024);
            }
            Network::Recurrent(rnn) => rnn,
        };
        let h = self.cfg.hidden;
        let g = self.cfg.cell.gates();
        let per_row = 4
            * ((self.t_in + self.t_out * rnn.decoders.len()) * (g + 3) * h
                + self.t_out * self.vocab);
        (budget_bytes / per_row.max(1)).clamp(1, 1024)
    }

    /// Bytes of activations and buffers for training with `batch` rows split over `threads`
    /// workers (f32), computed from the shapes before anything is allocated.
    pub fn memory_estimate_bytes(&self, batch: usize, threads: usize) -> usize {
        let b = batch.div_ceil(threads.max(1));
        let rnn = match &self.net {
            Network::Transformer(tr) => {
                let per_worker = b * self.transformer_floats_per_row(tr) + self.param_count();
                return 4 * (per_worker * threads.max(1) + 4 * self.param_count());
            }
            Network::Recurrent(rnn) => rnn,
        };
        let h = self.cfg.hidden;
        let g = self.cfg.cell.gates();
        let layer = |t: usize| {
            // act, dz (GRU and SimpleRNN; an LSTM writes its dz over act), GRU dzh, hs, cs/hpn,
            // small per-step scratch.
            let gate_buffers = match self.cfg.cell {
                CellKind::Lstm => 1,
                CellKind::Gru => 3,
                CellKind::SimpleRnn => 2,
            };
            t * b * g * h * gate_buffers + (t + 1) * b * h * 2 + 4 * b * g * h
        };
        let e = rnn.encoder.hidden;
        // Attention: q, cat, out and their gradients per answer step, weights over the question,
        // and the gradient of every encoder output.
        let attention = rnn.attention.as_ref().map_or(0, |_| {
            self.t_out * b * (2 * (e + (e + h) + h) + 2 * self.t_in) + self.t_in * b * e
        });
        // Embedding: the embedded question and its gradient.
        let embedding = rnn
            .embedding
            .as_ref()
            .map_or(0, |em| 2 * self.t_in * b * em.dim);
        let per_worker = layer(self.t_in)
            + rnn.decoders.len() * (layer(self.t_out) + self.t_out * b * h)
            + self.t_out * b * self.vocab
            + attention
            + embedding
            + self.param_count();
        4 * (per_worker * threads.max(1) + 4 * self.param_count())
    }
}
