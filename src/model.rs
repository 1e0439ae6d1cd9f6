//! Architectures assembled from `nn` layers.
//!
//! [`Seq2Seq`] is the Keras `addition_rnn` model: an RNN encoder over the question symbols, its
//! last output repeated `T_out` times (Keras `RepeatVector`), `layers` decoder RNNs returning
//! sequences, and a Dense softmax at every output step (`TimeDistributed(Dense)`).
//!
//! [`Engine`] runs a model on both cores: a training batch is split into one contiguous slice
//! per worker, every worker runs forward and backward on its slice with its own buffers and
//! gradient, and the gradients are added in worker order, so a given thread count always gives
//! the same bits. A forward without backward (evaluation, prediction) runs its rows in chunks
//! on whichever thread is free, each chunk writing its own rows: the same bits on any thread.

use crate::nn::attention::{Attention, AttentionCache};
use crate::nn::avec::AVec;
use crate::nn::dense::Dense;
use crate::nn::embedding::Embedding;
use crate::nn::loss::{argmax, softmax_rows, softmax_xent_forward_backward};
use crate::nn::params::ParamLayout;
use crate::nn::rnn::{CellKind, PackJob, RnnCache, RnnInput, RnnInputGrad, RnnLayer, RnnPack};
use crate::nn::transformer::Transformer;
use crate::nn::Real;
use crate::optim::Adam;
use rand::SeedableRng;

mod transformer_arch;
use serde::{Deserialize, Serialize};
pub use transformer_arch::TfWorker;

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

/// The repeat-vector sequence-to-sequence model.
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
    pub embedding: Option<Embedding>,
    pub encoder: RnnLayer,
    pub decoders: Vec<RnnLayer>,
    pub attention: Option<Attention>,
    pub head: Dense,
    /// The end-of-answer symbol's index (teacher-forced decoders, masking): exact match
    /// compares answers up to it. Set from the codec.
    pub eos: Option<u8>,
    /// The pad symbol's index: with `cfg.mask`, question steps on it are skipped. Set from the
    /// codec.
    pub pad: u8,
    /// `kind = transformer`: the network (the RNN fields above are then empty placeholders
    /// outside `layout`, never run).
    pub transformer: Option<Transformer>,
}

/// Activation memory an inference call aims to stay within (eval, predict, validation).
pub const INFERENCE_BUDGET_BYTES: usize = 512 << 20;

/// Largest sequence length accepted (the pq-system uses 2001).
pub const MAX_SEQ_LEN: usize = 100_000;

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
        let tf = cfg.decoder == DecoderKind::TeacherForced;
        if tf && enc_h != cfg.hidden {
            return Err(ModelError::Invalid(format!(
                "a teacher-forced decoder starts from the encoder's state, so encoder_hidden ({enc_h}) must equal hidden ({})",
                cfg.hidden
            )));
        }
        if tf && vocab >= 256 {
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
                let input = match (l, tf) {
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
            embedding,
            encoder,
            decoders,
            attention,
            head,
            eos: None,
            pad: 0,
            transformer: None,
        })
    }

    pub fn param_count(&self) -> usize {
        self.layout.total
    }

    /// Keras initialisation of all parameters from `seed`.
    pub fn init_params<R: Real>(&self, seed: u64) -> Vec<R> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        if let Some(tr) = &self.transformer {
            return tr.init_params(seed);
        }
        let mut p = vec![R::ZERO; self.layout.total];
        // The classic model draws in the same order as before the optional layers existed.
        self.encoder.init(&mut p, &mut rng);
        for d in &self.decoders {
            d.init(&mut p, &mut rng);
        }
        self.head.init(&mut p, &mut rng);
        if let Some(e) = &self.embedding {
            e.init(&mut p, &mut rng);
        }
        if let Some(a) = &self.attention {
            a.init(&mut p, &mut rng);
        }
        p
    }

    /// A table like Keras's `model.summary()`.
    pub fn summary(&self) -> String {
        if self.transformer.is_some() {
            return self.transformer_summary();
        }
        let h = self.cfg.hidden;
        let cell = self.cfg.cell.keras_name();
        let count =
            |l: &RnnLayer| l.w_ih.len + l.w_hh.len + l.b_ih.len + l.b_hh.map_or(0, |b| b.len);
        let mut rows = Vec::new();
        if let Some(e) = &self.embedding {
            rows.push((
                "embedding (Embedding)".to_string(),
                format!("(None, {}, {})", self.t_in, e.dim),
                e.weight.len,
            ));
        }
        rows.push((
            format!("encoder ({cell})"),
            format!("(None, {})", self.encoder.hidden),
            count(&self.encoder),
        ));
        if self.cfg.decoder == DecoderKind::Repeat {
            rows.push((
                "repeat_vector (RepeatVector)".to_string(),
                format!("(None, {}, {})", self.t_out, self.encoder.hidden),
                0,
            ));
        }
        for (l, d) in self.decoders.iter().enumerate() {
            let what = if l == 0 && self.cfg.decoder == DecoderKind::TeacherForced {
                format!("decoder_l{l} ({cell}, teacher-forced)")
            } else {
                format!("decoder_l{l} ({cell})")
            };
            rows.push((what, format!("(None, {}, {h})", self.t_out), count(d)));
        }
        if let Some(a) = &self.attention {
            rows.push((
                "attention (Luong, general)".to_string(),
                format!("(None, {}, {h})", self.t_out),
                a.w_a.len + a.w_c.len + a.b_c.len,
            ));
        }
        rows.push((
            "head (TimeDistributed(Dense))".to_string(),
            format!("(None, {}, {})", self.t_out, self.vocab),
            self.head.weight.len + self.head.bias.len,
        ));
        let title = format!(
            "Model: \"seq2seq\" (input: (None, {}, {}) {})",
            self.t_in,
            self.vocab,
            if self.embedding.is_some() {
                "symbol indices"
            } else {
                "one-hot"
            }
        );
        summary_table(&title, &rows, self.param_count())
    }

    /// Forward (and, when `targets` is given, loss and backward) for one slice of `b` rows.
    ///
    /// `inputs` is `[b, T_in]` and `targets` `[b, T_out]` (row-major, as in the data set). The
    /// loss gradient is scaled by `scale` (1 / rows·steps of the whole batch) and added to
    /// `ws.grad`, which the caller zeroes. Without targets, `ws.logits` receives softmax
    /// probabilities `[T_out, b, V]`. A teacher-forced decoder's loss is the teacher-forced
    /// one; its accuracies (when not training) come from greedy decoding, as it answers.
    ///
    /// With `prefix = Some((states, first))`, the encoder starts from the states of the rows'
    /// prefixes, these rows being rows `first..` of the ones `states` numbered.
    #[allow(clippy::too_many_arguments)]
    fn run_slice<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        inputs: &[u8],
        targets: Option<&[u8]>,
        b: usize,
        scale: R,
        prefix: Option<(&Prefixes<R>, usize)>,
    ) -> SliceStats {
        let (t_in, t_out, v, h) = (self.t_in, self.t_out, self.vocab, self.cfg.hidden);
        let tf = self.cfg.decoder == DecoderKind::TeacherForced;
        let lstm = self.cfg.cell == CellKind::Lstm;
        ws.ensure(self, b);
        // Without a backward pass an LSTM need not keep every step's gates (see RnnCache).
        ws.enc.set_no_backward(!ws.backward);
        for d in &mut ws.dec {
            d.set_no_backward(!ws.backward);
        }
        // Time-major copies of the symbols.
        for r in 0..b {
            for s in 0..t_in {
                ws.sym[s * b + r] = inputs[r * t_in + s];
            }
        }
        // The encoder steps this chunk ran (fewer when its first steps were shared).
        let t_enc = self.encode(p, packs, ws, b, prefix);
        // (Attention reads every step: no steps are shared then.)
        debug_assert!(self.attention.is_none() || t_enc == t_in);
        let Some(targets) = targets else {
            if tf {
                self.greedy(p, packs, ws, b, t_enc);
            } else {
                self.decode_repeat(p, packs, ws, b, t_enc);
                self.head_forward(p, ws, b);
                softmax_rows(&mut ws.logits[..t_out * b * v], v);
            }
            return SliceStats::default();
        };
        for r in 0..b {
            for s in 0..t_out {
                ws.tgt[s * b + r] = targets[r * t_out + s];
            }
        }
        if tf {
            // The previous symbol at each step: start (index V), then the target shifted by one.
            ws.shifted[..b].fill(v as u8);
            for i in b..t_out * b {
                ws.shifted[i] = ws.tgt[i - b];
            }
            let enc_last = self.encoder.last_output(&ws.enc, b, t_enc);
            let enc_c = lstm.then(|| self.encoder.last_cell(&ws.enc, b, t_enc));
            ws.dec[0].set_initial_state(enc_last, enc_c);
            for l in 0..self.decoders.len() {
                let (done, rest) = ws.dec.split_at_mut(l);
                let input = if l == 0 {
                    RnnInput::Symbols(&ws.shifted[..t_out * b])
                } else {
                    rest[0].clear_initial_state();
                    RnnInput::Seq(self.decoders[l - 1].outputs(&done[l - 1], b, t_out))
                };
                self.decoders[l].forward(p, &packs[l + 1], input, b, t_out, &mut rest[0]);
            }
        } else {
            self.decode_repeat(p, packs, ws, b, t_enc);
        }
        self.head_forward(p, ws, b);
        let active = if self.cfg.mask {
            for r in 0..b {
                let len = self.scored_len(&targets[r * t_out..(r + 1) * t_out]);
                for s in 0..t_out {
                    ws.active[s * b + r] = u8::from(s < len);
                }
            }
            Some(&ws.active[..t_out * b])
        } else {
            None
        };
        let logits = &mut ws.logits[..t_out * b * v];
        let sums = softmax_xent_forward_backward(
            logits,
            &ws.tgt[..t_out * b],
            active,
            v,
            scale,
            &mut ws.argmax[..t_out * b],
        );
        let mut stats = SliceStats {
            loss_sum: sums.loss,
            correct_chars: sums.correct,
            exact: self.exact_rows(&ws.argmax, &ws.tgt, b),
            rows: b,
            positions: sums.positions,
        };
        if !ws.backward {
            if tf {
                // Honest accuracies: answer as in prediction, feeding back its own symbols.
                self.greedy(p, packs, ws, b, t_enc);
                let mask = self.cfg.mask;
                stats.correct_chars = (0..t_out * b)
                    .filter(|&i| (!mask || ws.active[i] != 0) && ws.argmax[i] == ws.tgt[i])
                    .count();
                stats.exact = self.exact_rows(&ws.argmax, &ws.tgt, b);
            }
            return stats;
        }
        // Backward: head, attention, decoders top-down, encoder, embedding.
        assert_eq!(t_enc, t_in, "a backward runs every encoder step");
        let last = self.decoders.len() - 1;
        let Workspace {
            enc,
            dec,
            sym,
            shifted,
            logits,
            d_dec,
            d_enc,
            d_enc_seq,
            d_emb,
            emb,
            att,
            grad,
            ..
        } = ws;
        let dec_out = self.decoders[last].outputs(&dec[last], b, t_out);
        let enc_out = self.encoder.outputs(enc, b, t_in);
        let e_h = self.encoder.hidden;
        if let Some(a) = &self.attention {
            let d_att = &mut d_dec[last + 1][..t_out * b * h];
            self.head.backward(
                p,
                &att.out[..t_out * b * h],
                logits,
                t_out * b,
                grad,
                Some(d_att),
            );
            d_dec[last][..t_out * b * h].fill(R::ZERO);
            d_enc_seq[..t_in * b * e_h].fill(R::ZERO);
            let (top, att_grad) = d_dec.split_at_mut(last + 1);
            a.backward(
                p,
                enc_out,
                &att_grad[0][..t_out * b * h],
                b,
                t_in,
                t_out,
                att,
                grad,
                &mut top[last][..t_out * b * h],
                &mut d_enc_seq[..t_in * b * e_h],
            );
        } else {
            let d_top = &mut d_dec[last][..t_out * b * h];
            self.head
                .backward(p, dec_out, logits, t_out * b, grad, Some(d_top));
        }
        let enc_last = self.encoder.last_output(enc, b, t_in);
        for l in (0..self.decoders.len()).rev() {
            let (below, here) = dec.split_at_mut(l);
            let (d_below, d_here) = d_dec.split_at_mut(l);
            let d_seq = &d_here[0][..t_out * b * h];
            if l == 0 {
                let (input, d_in) = if tf {
                    (RnnInput::Symbols(&shifted[..t_out * b]), RnnInputGrad::None)
                } else {
                    (
                        RnnInput::Repeat(enc_last),
                        RnnInputGrad::Dense(&mut d_enc[..b * e_h]),
                    )
                };
                self.decoders[0].backward(
                    p,
                    &packs[1],
                    input,
                    b,
                    t_out,
                    &mut here[0],
                    Some(d_seq),
                    None,
                    grad,
                    d_in,
                );
            } else {
                let x = self.decoders[l - 1].outputs(&below[l - 1], b, t_out);
                let d_in = RnnInputGrad::Dense(&mut d_below[l - 1][..t_out * b * h]);
                self.decoders[l].backward(
                    p,
                    &packs[l + 1],
                    RnnInput::Seq(x),
                    b,
                    t_out,
                    &mut here[0],
                    Some(d_seq),
                    None,
                    grad,
                    d_in,
                );
            }
        }
        if tf {
            // The decoder started from the encoder's final state: its gradient flows back.
            let (dh0, dc0) = dec[0].initial_state_grad(b, h);
            d_enc[..b * e_h].copy_from_slice(dh0);
            enc.set_last_cell_grad(lstm.then_some(dc0));
        } else {
            enc.set_last_cell_grad(None);
        }
        let d_seq_enc = self
            .attention
            .is_some()
            .then(|| &d_enc_seq[..t_in * b * e_h]);
        let (input, d_in) = match &self.embedding {
            Some(e) => (
                RnnInput::Seq(&emb[..t_in * b * e.dim]),
                RnnInputGrad::Dense(&mut d_emb[..t_in * b * e.dim]),
            ),
            None => (RnnInput::Symbols(&sym[..t_in * b]), RnnInputGrad::None),
        };
        self.encoder.backward(
            p,
            &packs[0],
            input,
            b,
            t_in,
            enc,
            d_seq_enc,
            Some(&d_enc[..b * e_h]),
            grad,
            d_in,
        );
        if let Some(e) = &self.embedding {
            e.backward(&sym[..t_in * b], &d_emb[..t_in * b * e.dim], grad);
        }
        stats
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

    /// Rows whose answer is right: every step up to the end symbol (or every step without one).
    fn exact_rows(&self, argmax: &[u8], tgt: &[u8], b: usize) -> usize {
        let t_out = self.t_out;
        (0..b)
            .filter(|&r| {
                for s in 0..t_out {
                    let want = tgt[s * b + r];
                    if argmax[s * b + r] != want {
                        return false;
                    }
                    if Some(want) == self.eos {
                        return true;
                    }
                }
                true
            })
            .count()
    }

    /// The encoder over `ws.sym` (through the embedding when there is one). With shared
    /// prefixes (see [`Seq2Seq::run_slice`]), over the steps after the shared ones only, from
    /// the states of the rows' prefixes. Returns the steps it ran.
    fn encode<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        prefix: Option<(&Prefixes<R>, usize)>,
    ) -> usize {
        let t_in = self.t_in;
        if let Some((pf, first)) = prefix.filter(|(pf, _)| pf.shared > 0) {
            let (k, u, h) = (pf.shared, pf.count, self.encoder.hidden);
            let c =
                (self.cfg.cell == CellKind::Lstm).then(|| self.encoder.last_cell(&pf.states, u, 1));
            ws.enc.set_initial_state_gathered(
                self.encoder.last_output(&pf.states, u, 1),
                c,
                &pf.of[first..first + b],
                h,
            );
            ws.enc.set_mask(None);
            let input = RnnInput::Symbols(&ws.sym[k * b..t_in * b]);
            self.encoder
                .forward(p, &packs[0], input, b, t_in - k, &mut ws.enc);
            return t_in - k;
        }
        ws.enc.clear_initial_state();
        if self.cfg.mask {
            for (m, (a, &s)) in ws.in_mask[..t_in * b]
                .iter_mut()
                .zip(ws.att_mask.iter_mut().zip(&ws.sym[..t_in * b]))
            {
                *a = s != self.pad;
                *m = u8::from(*a);
            }
            ws.enc.set_mask(Some(&ws.in_mask[..t_in * b]));
        } else {
            ws.enc.set_mask(None);
        }
        let input = match &self.embedding {
            Some(e) => {
                e.forward(p, &ws.sym[..t_in * b], &mut ws.emb);
                RnnInput::Seq(&ws.emb[..t_in * b * e.dim])
            }
            None => RnnInput::Symbols(&ws.sym[..t_in * b]),
        };
        self.encoder
            .forward(p, &packs[0], input, b, t_in, &mut ws.enc);
        t_in
    }

    /// Whether a forward may run the encoder's first steps once per distinct prefix of the
    /// questions: symbols straight into the encoder (no embedding), no masking, and no attention
    /// (which reads every step's output).
    fn shares_prefixes(&self) -> bool {
        self.embedding.is_none()
            && !self.cfg.mask
            && self.attention.is_none()
            && self.transformer.is_none()
    }

    /// Prefix sharing for a forward without backward over a slice's `n` questions (`inputs`
    /// `[n, T_in]`): rows whose questions start alike reach the same encoder state, so the
    /// encoder's first steps run level by level over a tree of the questions' prefixes (step
    /// `s` once per distinct prefix of `s + 1` symbols, from its parent's state), and each
    /// chunk's encoder starts from its rows' states at the last level ([`Seq2Seq::encode`]).
    /// Levels go on while they have at most half as many prefixes as rows (a level of more
    /// measured no faster than the chunks), leaving at least one step to the chunks; a single
    /// level is not kept (step 0 has no recurrent product to save). Every row's numbers are
    /// computed as without sharing (the products and steps treat rows independently): the same
    /// bits. On random questions of 12 symbols, 512 rows share two steps (12 and at most 144
    /// prefixes: 1.06x answers/s); 2,500 questions of the 3-digit addition, four (11, 110, 552
    /// and 1,081).
    fn share_prefixes<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        pf: &mut Prefixes<R>,
        inputs: &[u8],
        n: usize,
    ) {
        pf.shared = 0;
        let (t_in, v, h) = (self.t_in, self.encoder.input, self.encoder.hidden);
        let lstm = self.cfg.cell == CellKind::Lstm;
        if n < 2 || inputs[..n * t_in].iter().any(|&s| s as usize >= v) {
            return;
        }
        let Prefixes {
            states: prefix,
            prev: prefix_prev,
            of: ids,
            next,
            parent,
            sym,
            count: prefix_count,
            shared,
        } = pf;
        ids.clear();
        ids.resize(n, 0);
        let mut count = 1;
        for s in 0..t_in - 1 {
            // A row's prefix of s + 1 symbols is numbered by (its prefix of s, its symbol s), in
            // order of first appearance; each new one remembers its parent and symbol.
            next.clear();
            next.resize(count * v, u32::MAX);
            parent.clear();
            sym.clear();
            for (r, id) in ids.iter().enumerate() {
                let x = inputs[r * t_in + s];
                let key = *id as usize * v + x as usize;
                if next[key] == u32::MAX {
                    next[key] = parent.len() as u32;
                    parent.push(*id);
                    sym.push(x);
                }
            }
            let fresh = parent.len();
            if 2 * fresh > n {
                break;
            }
            for (r, id) in ids.iter_mut().enumerate() {
                *id = next[*id as usize * v + inputs[r * t_in + s] as usize];
            }
            // One step over the new prefixes, from their parents' states (zeros at step 0).
            std::mem::swap(prefix, prefix_prev);
            if s == 0 {
                prefix.clear_initial_state();
            } else {
                let c = lstm.then(|| self.encoder.last_cell(prefix_prev, count, 1));
                let h0 = self.encoder.last_output(prefix_prev, count, 1);
                prefix.set_initial_state_gathered(h0, c, parent, h);
            }
            prefix.set_mask(None);
            prefix.set_no_backward(true);
            self.encoder
                .forward(p, &packs[0], RnnInput::Symbols(sym), fresh, 1, prefix);
            count = fresh;
            *shared = s + 1;
            *prefix_count = count;
        }
        if *shared == 1 {
            *shared = 0;
        }
    }

    /// The repeat-vector decoders over the encoder's last output (after its `t_enc` steps).
    fn decode_repeat<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        t_enc: usize,
    ) {
        let t_out = self.t_out;
        let enc_last = self.encoder.last_output(&ws.enc, b, t_enc);
        for l in 0..self.decoders.len() {
            let (done, rest) = ws.dec.split_at_mut(l);
            rest[0].clear_initial_state();
            let input = if l == 0 {
                RnnInput::Repeat(enc_last)
            } else {
                RnnInput::Seq(self.decoders[l - 1].outputs(&done[l - 1], b, t_out))
            };
            self.decoders[l].forward(p, &packs[l + 1], input, b, t_out, &mut rest[0]);
        }
    }

    /// Attention (if any) and the dense head over the top decoder's outputs into `ws.logits`.
    fn head_forward<R: Real>(&self, p: &[R], ws: &mut Workspace<R>, b: usize) {
        let (t_out, v) = (self.t_out, self.vocab);
        let last = self.decoders.len() - 1;
        let dec_out = self.decoders[last].outputs(&ws.dec[last], b, t_out);
        let top = match &self.attention {
            Some(a) => {
                let enc_out = self.encoder.outputs(&ws.enc, b, self.t_in);
                let mask = self.cfg.mask.then(|| &ws.att_mask[..self.t_in * b]);
                a.forward(p, enc_out, dec_out, mask, b, self.t_in, t_out, &mut ws.att);
                if ws.record_attention {
                    let n = t_out * b * self.t_in;
                    ws.att_record.clear();
                    ws.att_record.extend_from_slice(&ws.att.weights[..n]);
                }
                &ws.att.out[..t_out * b * self.cfg.hidden]
            }
            None => dec_out,
        };
        self.head
            .forward(p, top, t_out * b, &mut ws.logits[..t_out * b * v]);
    }

    /// Greedy decoding after `encode`: one step at a time, each step reading the symbol chosen
    /// at the step before. Leaves probabilities `[T_out, b, V]` in `ws.logits` and the chosen
    /// symbols in `ws.argmax`.
    fn greedy<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        t_enc: usize,
    ) {
        let (t_in, t_out, v, h) = (self.t_in, self.t_out, self.vocab, self.cfg.hidden);
        let lstm = self.cfg.cell == CellKind::Lstm;
        let n_dec = self.decoders.len();
        let Workspace {
            enc,
            dec,
            logits,
            argmax: chosen,
            step_sym,
            state_h,
            state_c,
            att_step,
            record_attention,
            att_record,
            att_mask,
            ..
        } = ws;
        let mask = self.cfg.mask.then(|| &att_mask[..t_in * b]);
        if *record_attention {
            att_record.resize(t_out * b * t_in, R::ZERO);
        }
        state_h.resize_with(n_dec, Vec::new);
        state_c.resize_with(n_dec, Vec::new);
        for l in 0..n_dec {
            state_h[l].clear();
            state_c[l].clear();
            if l == 0 {
                state_h[l].extend_from_slice(self.encoder.last_output(enc, b, t_enc));
                if lstm {
                    state_c[l].extend_from_slice(self.encoder.last_cell(enc, b, t_enc));
                }
            } else {
                state_h[l].resize(b * h, R::ZERO);
                if lstm {
                    state_c[l].resize(b * h, R::ZERO);
                }
            }
        }
        step_sym.clear();
        step_sym.resize(b, v as u8);
        // (With attention no steps are shared: t_enc is t_in.)
        let enc_out = self.encoder.outputs(enc, b, t_enc);
        for s in 0..t_out {
            for l in 0..n_dec {
                let (done, rest) = dec.split_at_mut(l);
                let c0 = lstm.then_some(&state_c[l][..]);
                rest[0].set_initial_state(&state_h[l], c0);
                let input = if l == 0 {
                    RnnInput::Symbols(&step_sym[..b])
                } else {
                    RnnInput::Seq(self.decoders[l - 1].outputs(&done[l - 1], b, 1))
                };
                self.decoders[l].forward(p, &packs[l + 1], input, b, 1, &mut rest[0]);
                state_h[l].copy_from_slice(self.decoders[l].last_output(&rest[0], b, 1));
                if lstm {
                    state_c[l].copy_from_slice(self.decoders[l].last_cell(&rest[0], b, 1));
                }
            }
            let top_dec = self.decoders[n_dec - 1].outputs(&dec[n_dec - 1], b, 1);
            let top = match &self.attention {
                Some(a) => {
                    a.forward(p, enc_out, top_dec, mask, b, t_in, 1, att_step);
                    if *record_attention {
                        att_record[s * b * t_in..(s + 1) * b * t_in]
                            .copy_from_slice(&att_step.weights[..b * t_in]);
                    }
                    &att_step.out[..b * h]
                }
                None => top_dec,
            };
            let out = &mut logits[s * b * v..(s + 1) * b * v];
            self.head.forward(p, top, b, out);
            softmax_rows(out, v);
            for (r, row) in out.chunks_exact(v).enumerate() {
                let k = argmax(row) as u8;
                step_sym[r] = k;
                chosen[s * b + r] = k;
            }
        }
    }
}

/// A Keras-style summary: the title, one row per layer (name, output shape, parameters), totals.
fn summary_table(title: &str, rows: &[(String, String, usize)], total: usize) -> String {
    let line = "─".repeat(78);
    let mut s = format!(
        "{title}\n{line}\n{:<36}{:<28}{:>14}\n{line}\n",
        "Layer (type)", "Output Shape", "Param #"
    );
    for (name, shape, n) in rows {
        s.push_str(&format!("{name:<36}{shape:<28}{:>14}\n", group(*n)));
    }
    s.push_str(&format!(
        "{line}\n Total params: {}\n Trainable params: {}\n",
        group(total),
        group(total)
    ));
    s
}

/// Thousands separators, as Keras prints parameter counts.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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

/// One worker's buffers; sized on first use, reused after.
#[derive(Debug, Default)]
pub struct Workspace<R> {
    enc: RnnCache<R>,
    dec: Vec<RnnCache<R>>,
    sym: Vec<u8>,
    /// Masking: `[T_in, B]` 1 where the question has a symbol, 0 on padding (and as bools for
    /// attention); `[T_out, B]` 1 where the answer position is scored.
    in_mask: Vec<u8>,
    att_mask: Vec<bool>,
    active: Vec<u8>,
    tgt: Vec<u8>,
    argmax: Vec<u8>,
    logits: Vec<R>,
    /// Teacher forcing: the previous symbol of each step `[T_out, B]`.
    shifted: Vec<u8>,
    /// Embedded questions `[T_in, B, D]` and their gradient.
    emb: Vec<R>,
    d_emb: Vec<R>,
    att: AttentionCache<R>,
    /// Greedy decoding: the symbols fed at the next step, each layer's state, one step's attention.
    step_sym: Vec<u8>,
    state_h: Vec<Vec<R>>,
    state_c: Vec<Vec<R>>,
    att_step: AttentionCache<R>,
    /// When set, the attention weights of the last chunk run, `[T_out, B, T_in]`, are kept in
    /// `att_record` (and written into the engine's `out_attention`; `predict --explain`).
    record_attention: bool,
    att_record: Vec<R>,
    /// Decoder-output gradients, one per layer, plus one for the attention output.
    d_dec: Vec<Vec<R>>,
    d_enc: Vec<R>,
    /// Gradient of every encoder output (attention).
    d_enc_seq: Vec<R>,
    /// This worker's gradient, the model's layout.
    pub grad: AVec<R>,
    backward: bool,
}

/// The encoder states of a slice's question prefixes ([`Seq2Seq::share_prefixes`]): the
/// encoder steps shared (0: none), the number of distinct prefixes at the last level, each of
/// the slice's rows' prefix there, and the prefixes' encoder states after their last step (one
/// step of `states`). The rest is scratch: the level before's states, and one level's
/// numbering, parents and symbols.
#[derive(Debug, Default)]
struct Prefixes<R> {
    shared: usize,
    count: usize,
    of: Vec<u32>,
    states: RnnCache<R>,
    prev: RnnCache<R>,
    next: Vec<u32>,
    parent: Vec<u32>,
    sym: Vec<u8>,
}

impl<R: Real> Workspace<R> {
    /// Copies the last forward's time-major probabilities `[T_out, rows, V]` (and recorded
    /// attention) into `probs` (`[rows, T_out, V]`, row-major) and `att`.
    fn write_outputs(&self, m: &Seq2Seq, rows: usize, probs: &mut [R], att: &mut [R]) {
        let (t_out, v, t_in) = (m.t_out, m.vocab, m.t_in);
        let gather = |src: &[R], out: &mut [R], w: usize| {
            for r in 0..rows {
                for s in 0..t_out {
                    let o = (r * t_out + s) * w;
                    out[o..o + w].copy_from_slice(&src[(s * rows + r) * w..(s * rows + r + 1) * w]);
                }
            }
        };
        gather(&self.logits, probs, v);
        if self.record_attention {
            gather(&self.att_record, att, t_in);
        }
    }

    fn ensure(&mut self, m: &Seq2Seq, b: usize) {
        let (t_in, t_out, v, h) = (m.t_in, m.t_out, m.vocab, m.cfg.hidden);
        let grow_u8 = |x: &mut Vec<u8>, n: usize| {
            if x.len() < n {
                x.resize(n, 0)
            }
        };
        let grow = |x: &mut Vec<R>, n: usize| {
            if x.len() < n {
                x.resize(n, R::ZERO)
            }
        };
        grow_u8(&mut self.sym, t_in * b);
        grow_u8(&mut self.tgt, t_out * b);
        if m.cfg.mask {
            grow_u8(&mut self.in_mask, t_in * b);
            grow_u8(&mut self.active, t_out * b);
            if self.att_mask.len() < t_in * b {
                self.att_mask.resize(t_in * b, true);
            }
        }
        grow_u8(&mut self.argmax, t_out * b);
        grow_u8(&mut self.shifted, t_out * b);
        grow(&mut self.logits, t_out * b * v);
        if let Some(e) = &m.embedding {
            grow(&mut self.emb, t_in * b * e.dim);
        }
        self.dec.resize_with(m.decoders.len(), RnnCache::default);
        self.d_dec.resize_with(m.decoders.len() + 1, Vec::new);
        if self.backward {
            for d in &mut self.d_dec {
                grow(d, t_out * b * h);
            }
            grow(&mut self.d_enc, b * m.encoder.hidden);
            if m.attention.is_some() {
                grow(&mut self.d_enc_seq, t_in * b * m.encoder.hidden);
            }
            if let Some(e) = &m.embedding {
                grow(&mut self.d_emb, t_in * b * e.dim);
            }
            if self.grad.len() < m.param_count() {
                self.grad.resize(m.param_count(), R::ZERO);
            }
        }
    }
}

/// A chunk of rows of a forward without backward: its slice, its rows of the batch, its rows
/// of the outputs, and its sums.
struct Chunk<'o, R> {
    slice: usize,
    rows: std::ops::Range<usize>,
    probs: &'o mut [R],
    att: &'o mut [R],
    stats: SliceStats,
}

/// Contiguous row ranges of `n` rows, one per worker of `workers` (empty ones dropped).
pub(crate) fn worker_slices(n: usize, workers: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(workers.max(1));
    (0..workers)
        .map(|i| (i * per, ((i + 1) * per).min(n)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Where [`run_on_slices`] sums the workers' gradients, and how to read one worker's.
pub(crate) type GradSum<'a, W, R> = (&'a mut [R], fn(&W) -> &[R]);

/// Runs `work(worker, a, b)` for each row range of `slices` on its own pool thread, one worker
/// each, and returns their results in slice order. With `grad = Some((out, of))` the workers'
/// gradients (`of(worker)`) are then summed into `out` in worker order. The workers' products
/// share their row panels with the pool ([`crate::nn::sgemm::share_panels`]): a worker that
/// finishes first computes panels of the others' (the same bits), so `work` must hold no lock
/// while it runs products.
pub(crate) fn run_on_slices<W: Send, R: Real, S: Default + Send>(
    pool: &rayon::ThreadPool,
    workers: &mut [W],
    slices: &[(usize, usize)],
    work: impl Fn(&mut W, usize, usize) -> S + Sync,
    grad: Option<GradSum<'_, W, R>>,
) -> Vec<S> {
    let workers = &mut workers[..slices.len()];
    let mut out: Vec<S> = slices.iter().map(|_| S::default()).collect();
    let work = &work;
    pool.scope(|sc| {
        for ((w, &(a, b)), o) in workers.iter_mut().zip(slices).zip(out.iter_mut()) {
            sc.spawn(move |_| *o = crate::nn::sgemm::share_panels(|| work(w, a, b)));
        }
    });
    if let Some((sum, of)) = grad {
        let parts: Vec<&[R]> = workers.iter().map(of).collect();
        sum_in_worker_order(pool, sum, &parts);
    }
    out
}

/// `out = parts[0] + parts[1] + ...`, element by element in worker order, chunk by chunk on
/// `pool`: each element's sum is the same whatever thread computes it, so results depend only on
/// the worker count.
pub(crate) fn sum_in_worker_order<R: Real>(
    pool: &rayon::ThreadPool,
    out: &mut [R],
    parts: &[&[R]],
) {
    use rayon::prelude::*;
    const CHUNK: usize = 16 * 1024;
    pool.install(|| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, g)| {
            let r = ci * CHUNK..ci * CHUNK + g.len();
            // The first two parts in one pass (a copy, then an add, was one more pass over
            // the chunk), then the rest in order.
            match parts {
                [only] => g.copy_from_slice(&only[r.clone()]),
                [first, second, ..] => {
                    for ((o, a), b) in g.iter_mut().zip(&first[r.clone()]).zip(&second[r.clone()]) {
                        *o = *a + *b;
                    }
                }
                [] => g.fill(R::ZERO),
            }
            for part in parts.iter().skip(2) {
                for (a, b) in g.iter_mut().zip(&part[r.clone()]) {
                    *a += *b;
                }
            }
        });
    });
}

/// Runs a model over batches on `threads` workers (deterministic for a given thread count).
pub struct Engine<R> {
    pub model: Seq2Seq,
    /// (Shared, so that a call can run on it while it borrows the engine.)
    pool: std::sync::Arc<rayon::ThreadPool>,
    workers: Vec<Workspace<R>>,
    /// Recurrent kernels packed for the current parameters: encoder, then decoders.
    packs: Vec<RnnPack<R>>,
    /// The summed gradient of the last `train_step` (`train_step_adam` leaves a recurrent
    /// model's unwritten).
    pub grad: Vec<R>,
    /// Per-worker buffers of a transformer model.
    tf_workers: Vec<TfWorker<R>>,
    /// Rows per chunk of a forward without backward (default: [`Seq2Seq::forward_chunk_rows`];
    /// 0 counts as 1).
    pub forward_chunk: Option<usize>,
    /// Whether a forward without backward shares the encoder's first steps among questions
    /// that start alike ([`Seq2Seq::share_prefixes`]; default on, the same bits either way).
    pub share_prefixes: bool,
    /// The question prefixes of each worker's slice in a forward without backward.
    prefixes: Vec<Prefixes<R>>,
    /// A forward without targets: probabilities `[n, T_out, V]` and (when recording) attention
    /// weights `[n, T_out, T_in]`, row-major, each chunk writing its rows.
    out_probs: Vec<R>,
    out_attention: Vec<R>,
}

/// The most worker threads a run may ask for.
pub const MAX_THREADS: usize = 256;

/// The number of cores, the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A configured thread count: 0 means one per core.
pub fn threads_or_cores(threads: usize) -> usize {
    if threads == 0 {
        default_threads()
    } else {
        threads
    }
}

/// A pool of `threads` math threads (subnormals flushed on each, and on the caller's).
pub(crate) fn math_pool(threads: usize) -> rayon::ThreadPool {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .start_handler(|_| crate::nn::flush_denormals())
        .build()
        .expect("thread pool");
    crate::nn::flush_denormals();
    pool
}

impl<R: Real> Engine<R> {
    pub fn new(model: Seq2Seq, threads: usize) -> Engine<R> {
        let threads = threads.max(1);
        let pool = std::sync::Arc::new(math_pool(threads));
        let workers = (0..threads).map(|_| Workspace::default()).collect();
        let grad = vec![R::ZERO; model.param_count()];
        let packs = (0..1 + model.decoders.len())
            .map(|_| RnnPack::default())
            .collect();
        Engine {
            model,
            pool,
            workers,
            packs,
            grad,
            tf_workers: Vec::new(),
            forward_chunk: None,
            share_prefixes: true,
            prefixes: Vec::new(),
            out_probs: Vec::new(),
            out_attention: Vec::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Contiguous row ranges, one per worker (empty ones dropped).
    fn slices(&self, n: usize) -> Vec<(usize, usize)> {
        worker_slices(n, self.workers.len())
    }

    /// Forward (and with `backward`, backward) over `n` rows; with `sum`, the workers'
    /// gradients are summed into `self.grad` (a transformer's always are).
    fn run(
        &mut self,
        p: &[R],
        inputs: &[u8],
        targets: Option<&[u8]>,
        n: usize,
        backward: bool,
        sum: bool,
    ) -> SliceStats {
        // On the pool as a whole: the calling thread hands over once, not once per phase
        // (packing, prefixes, the workers or chunks, the gradient sum); 0.5-1.5% of a training
        // step. (The phases' own `install`s and scopes then run in place.)
        let pool = self.pool.clone();
        pool.install(|| self.run_on_pool(p, inputs, targets, n, backward, sum))
    }

    /// [`Engine::run`]'s body, on the pool.
    fn run_on_pool(
        &mut self,
        p: &[R],
        inputs: &[u8],
        targets: Option<&[u8]>,
        n: usize,
        backward: bool,
        sum: bool,
    ) -> SliceStats {
        if self.model.transformer.is_some() {
            return self.run_transformer(p, inputs, targets, n, backward);
        }
        let (t_in, t_out) = (self.model.t_in, self.model.t_out);
        // The mean over scored positions of the whole batch, whichever worker holds them.
        let positions = match targets {
            Some(t) if self.model.cfg.mask => t
                .chunks_exact(t_out)
                .take(n)
                .map(|row| self.model.scored_len(row))
                .sum(),
            _ => n * t_out,
        };
        let scale = R::from_f64(1.0 / positions.max(1) as f64);
        let slices = self.slices(n);
        let model = &self.model;
        // Pack every layer's kernels once for this call, each packing its own pool task (one
        // task per layer left the thread with the decoder's two large input kernels last).
        let mut jobs: Vec<PackJob<R>> = std::iter::once(&model.encoder)
            .chain(&model.decoders)
            .zip(self.packs.iter_mut())
            // (Without a backward, only the forward kernels: the first two jobs.)
            .flat_map(|(l, pk)| {
                l.pack_jobs(p, pk)
                    .into_iter()
                    .take(if backward { 4 } else { 2 })
            })
            .collect();
        self.pool.install(|| {
            use rayon::prelude::*;
            jobs.par_drain(..).with_max_len(1).for_each(PackJob::run);
        });
        let packs = &self.packs;
        if backward {
            // A backward runs a worker's rows in one pass: its gradient sums over all of them.
            let stats = run_on_slices(
                &self.pool,
                &mut self.workers,
                &slices,
                |ws, a, b| {
                    ws.backward = true;
                    ws.ensure(model, b - a);
                    ws.grad[..model.param_count()].fill(R::ZERO);
                    let x = &inputs[a * t_in..b * t_in];
                    let y = targets.map(|t| &t[a * t_out..b * t_out]);
                    model.run_slice(p, packs, ws, x, y, b - a, scale, None)
                },
                sum.then_some((&mut self.grad[..], |ws: &Workspace<R>| &ws.grad[..])),
            );
            return SliceStats::total(&stats);
        }
        // Without a backward every row is independent. Each slice's question prefixes are
        // shared first (one slice per worker); then the rows run a chunk at a time, so that one
        // step's gates and states stay in the core's cache, on whichever thread is free: a
        // thread slowed down by the machine takes fewer chunks. Each chunk writes its own rows
        // of the outputs and its own sums, which add up per slice in chunk order, then over the
        // slices: the same numbers whichever thread ran a chunk.
        let share = self.share_prefixes && model.shares_prefixes();
        if self.prefixes.len() < slices.len() {
            self.prefixes.resize_with(slices.len(), Prefixes::default);
        }
        if share {
            run_on_slices::<_, R, ()>(
                &self.pool,
                &mut self.prefixes,
                &slices,
                |pf, a, b| model.share_prefixes(p, packs, pf, &inputs[a * t_in..b * t_in], b - a),
                None,
            );
        }
        let chunk = self
            .forward_chunk
            .unwrap_or_else(|| model.forward_chunk_rows())
            .max(1);
        let (v, want) = (model.vocab, targets.is_none());
        let recording = want && self.workers.iter().any(|w| w.record_attention);
        self.out_probs
            .resize(if want { n * t_out * v } else { 0 }, R::ZERO);
        let att_w = t_out * t_in;
        self.out_attention
            .resize(if recording { n * att_w } else { 0 }, R::ZERO);
        // The next `len` values of an output buffer.
        fn front<'o, R>(left: &mut &'o mut [R], len: usize) -> &'o mut [R] {
            let (head, rest) = std::mem::take(left).split_at_mut(len);
            *left = rest;
            head
        }
        let (mut probs_left, mut att_left) = (&mut self.out_probs[..], &mut self.out_attention[..]);
        let mut chunks = Vec::new();
        for (w, &(a, b)) in slices.iter().enumerate() {
            for c0 in (a..b).step_by(chunk) {
                let c1 = c0 + chunk.min(b - c0);
                chunks.push(Chunk {
                    slice: w,
                    rows: c0..c1,
                    probs: front(&mut probs_left, usize::from(want) * (c1 - c0) * t_out * v),
                    att: front(&mut att_left, usize::from(recording) * (c1 - c0) * att_w),
                    stats: SliceStats::default(),
                });
            }
        }
        let workers: Vec<std::sync::Mutex<&mut Workspace<R>>> =
            self.workers.iter_mut().map(std::sync::Mutex::new).collect();
        let prefixes = &self.prefixes;
        self.pool.install(|| {
            use rayon::prelude::*;
            chunks.par_iter_mut().with_max_len(1).for_each(|c| {
                // One workspace per pool thread: the lock is never contended, as long as nothing
                // under run_slice hands work to the pool (a thread could then take another
                // chunk while holding its workspace).
                let i = rayon::current_thread_index().unwrap_or(0) % workers.len();
                let mut ws = workers[i]
                    .try_lock()
                    .expect("one workspace per pool thread, not re-entered");
                ws.backward = false;
                let (c0, c1) = (c.rows.start, c.rows.end);
                let x = &inputs[c0 * t_in..c1 * t_in];
                let y = targets.map(|t| &t[c0 * t_out..c1 * t_out]);
                let prefix = share.then(|| (&prefixes[c.slice], c0 - slices[c.slice].0));
                c.stats = model.run_slice(p, packs, &mut ws, x, y, c1 - c0, scale, prefix);
                if want {
                    ws.write_outputs(model, c1 - c0, c.probs, c.att);
                }
            });
        });
        let per_slice: Vec<SliceStats> = (0..slices.len())
            .map(|w| {
                let mut st = SliceStats::default();
                for c in chunks.iter().filter(|c| c.slice == w) {
                    st.add(&c.stats);
                }
                st
            })
            .collect();
        SliceStats::total(&per_slice)
    }

    /// Forward and backward on a batch of `n` rows (`inputs` `[n, T_in]`, `targets`
    /// `[n, T_out]`); the mean-loss gradient is left in `self.grad`.
    pub fn train_step(&mut self, p: &[R], inputs: &[u8], targets: &[u8], n: usize) -> SliceStats {
        self.run(p, inputs, Some(targets), n, true, true)
    }

    /// Loss and accuracy sums on a batch, no gradient.
    pub fn evaluate(&mut self, p: &[R], inputs: &[u8], targets: &[u8], n: usize) -> SliceStats {
        self.run(p, inputs, Some(targets), n, false, false)
    }

    /// Softmax probabilities for `n` questions: `probs` receives `[n, T_out, V]`.
    pub fn predict(&mut self, p: &[R], inputs: &[u8], n: usize, probs: &mut Vec<R>) {
        if self.model.transformer.is_some() {
            return self.predict_transformer(p, inputs, n, probs);
        }
        self.run(p, inputs, None, n, false, false);
        // (The caller's buffer becomes the next call's output: no copy, and no allocation or
        // zeroing when the caller passes the same buffer each time.)
        std::mem::swap(probs, &mut self.out_probs);
    }

    /// Attention weights of the answers to `n` questions, `[n, T_out, T_in]` row-major: for each
    /// output step, how much it drew on each input position (greedy decoding for a
    /// teacher-forced decoder). `None` when the model has no attention.
    pub fn attention_weights(&mut self, p: &[R], inputs: &[u8], n: usize) -> Option<Vec<R>> {
        self.model.attention.as_ref()?;
        for ws in &mut self.workers {
            ws.record_attention = true;
        }
        self.run(p, inputs, None, n, false, false);
        let out = std::mem::take(&mut self.out_attention);
        for ws in &mut self.workers {
            ws.record_attention = false;
        }
        Some(out)
    }

    /// Argmax symbol indices `[n, T_out]` for `n` questions.
    pub fn predict_indices(&mut self, p: &[R], inputs: &[u8], n: usize) -> Vec<u8> {
        let v = self.model.vocab;
        let mut probs = Vec::new();
        self.predict(p, inputs, n, &mut probs);
        probs.chunks_exact(v).map(|row| argmax(row) as u8).collect()
    }
}

impl Engine<f32> {
    /// [`Engine::train_step`], then `adam`'s update of `p` on the engine's threads, with the
    /// workers' gradients summed inside the update pass: the bits of `train_step` followed by
    /// `adam.step(p, &engine.grad)` on a thread that flushes subnormals as the engine's do (the
    /// CLI's threads all do), one pass over the gradient fewer, the whole step in one pool
    /// hand-over. For a recurrent model `self.grad` is not written (a transformer's is). `Err`
    /// (with the step's statistics) when the gradient held NaN or infinity; the update is then
    /// meaningless.
    pub fn train_step_adam(
        &mut self,
        p: &mut [f32],
        inputs: &[u8],
        targets: &[u8],
        n: usize,
        adam: &mut Adam,
    ) -> Result<SliceStats, SliceStats> {
        assert!(n > 0, "a training step needs at least one row");
        // The update too, in the forward and backward's hand-over to the pool (see `run`).
        let pool = self.pool.clone();
        pool.install(|| self.train_step_adam_on_pool(p, inputs, targets, n, adam))
    }

    /// [`Engine::train_step_adam`]'s body, on the pool.
    fn train_step_adam_on_pool(
        &mut self,
        p: &mut [f32],
        inputs: &[u8],
        targets: &[u8],
        n: usize,
        adam: &mut Adam,
    ) -> Result<SliceStats, SliceStats> {
        let st = self.run(p, inputs, Some(targets), n, true, false);
        let k = self.model.param_count();
        // (A transformer's run sums into `self.grad` itself.)
        let parts: Vec<&[f32]> = if self.model.transformer.is_some() {
            vec![&self.grad[..]]
        } else {
            let used = self.slices(n).len();
            self.workers[..used].iter().map(|w| &w.grad[..k]).collect()
        };
        match self.pool.install(|| adam.step_parts(p, &parts)) {
            Ok(()) => Ok(st),
            Err(()) => Err(st),
        }
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
        let h = self.cfg.hidden.max(self.encoder.hidden).max(1);
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
        match &self.transformer {
            Some(tr) => format!(
                "transformer(dim {}, {} heads, FFN {}) x{} blocks",
                tr.cfg.dim, tr.cfg.heads, tr.cfg.ffn, tr.cfg.layers
            ),
            None => format!(
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
        if self.transformer.is_some() {
            let per_row = 4 * self.transformer_floats_per_row();
            return (budget_bytes / per_row.max(1)).clamp(1, 1024);
        }
        let h = self.cfg.hidden;
        let g = self.cfg.cell.gates();
        let per_row = 4
            * ((self.t_in + self.t_out * self.decoders.len()) * (g + 3) * h
                + self.t_out * self.vocab);
        (budget_bytes / per_row.max(1)).clamp(1, 1024)
    }

    /// Bytes of activations and buffers for training with `batch` rows split over `threads`
    /// workers (f32), computed from the shapes before anything is allocated.
    pub fn memory_estimate_bytes(&self, batch: usize, threads: usize) -> usize {
        let b = batch.div_ceil(threads.max(1));
        if self.transformer.is_some() {
            let per_worker = b * self.transformer_floats_per_row() + self.param_count();
            return 4 * (per_worker * threads.max(1) + 4 * self.param_count());
        }
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
        let e = self.encoder.hidden;
        // Attention: q, cat, out and their gradients per answer step, weights over the question,
        // and the gradient of every encoder output.
        let attention = self.attention.as_ref().map_or(0, |_| {
            self.t_out * b * (2 * (e + (e + h) + h) + 2 * self.t_in) + self.t_in * b * e
        });
        // Embedding: the embedded question and its gradient.
        let embedding = self
            .embedding
            .as_ref()
            .map_or(0, |em| 2 * self.t_in * b * em.dim);
        let per_worker = layer(self.t_in)
            + self.decoders.len() * (layer(self.t_out) + self.t_out * b * h)
            + self.t_out * b * self.vocab
            + attention
            + embedding
            + self.param_count();
        4 * (per_worker * threads.max(1) + 4 * self.param_count())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use rand::Rng;

    #[test]
    fn default_model_has_keras_parameter_count() {
        let m = Seq2Seq::new(&ModelConfig::default(), 12, 7, 4).unwrap();
        assert_eq!(m.param_count(), 205_324);
        let s = m.summary();
        assert!(
            s.contains("205,324")
                && s.contains("72,192")
                && s.contains("131,584")
                && s.contains("1,548"),
            "{s}"
        );
    }

    fn tiny(cell: CellKind, layers: usize) -> (Seq2Seq, Vec<u8>, Vec<u8>, usize) {
        let cfg = ModelConfig {
            cell,
            hidden: 4,
            layers,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, 5, 3, 2).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 5;
        let x: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
        let y: Vec<u8> = (0..n * 2).map(|_| rng.random_range(0..5)).collect();
        (m, x, y, n)
    }

    #[test]
    fn whole_model_gradient_check_f64() {
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn] {
            for layers in [1, 2] {
                let (m, x, y, n) = tiny(cell, layers);
                let p: Vec<f64> = m.init_params(3);
                let mut eng = Engine::<f64>::new(m.clone(), 2);
                let st = eng.train_step(&p, &x, &y, n);
                let grad = eng.grad.clone();
                let mut e2 = Engine::<f64>::new(m.clone(), 1);
                let loss = |pp: &[f64]| e2.evaluate(pp, &x, &y, n).loss_sum / (n * 2) as f64;
                assert!(st.loss_sum > 0.0);
                gradcheck::check(
                    &p,
                    &grad,
                    &gradcheck::sample_indices(p.len(), 7),
                    1e-4,
                    loss,
                    &format!("{cell:?} x{layers}"),
                );
            }
        }
    }

    #[test]
    fn teacher_forced_attention_and_embedding_gradient_check_f64() {
        use crate::nn::gradcheck;
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn] {
            for (decoder, attention, input, layers, mask) in [
                (
                    DecoderKind::TeacherForced,
                    false,
                    InputKind::OneHot,
                    1,
                    false,
                ),
                (
                    DecoderKind::TeacherForced,
                    true,
                    InputKind::Embedding,
                    2,
                    false,
                ),
                (DecoderKind::Repeat, true, InputKind::OneHot, 1, false),
                (DecoderKind::Repeat, false, InputKind::Embedding, 1, false),
                (DecoderKind::Repeat, false, InputKind::OneHot, 2, true),
                (DecoderKind::TeacherForced, true, InputKind::OneHot, 1, true),
                (DecoderKind::Repeat, true, InputKind::Embedding, 1, true),
            ] {
                let cfg = ModelConfig {
                    cell,
                    hidden: 4,
                    layers,
                    decoder,
                    attention,
                    input,
                    embed_dim: 3,
                    mask,
                    ..Default::default()
                };
                let mut m = Seq2Seq::new(&cfg, 5, 3, 3).unwrap();
                m.eos = Some(1);
                m.pad = 0;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
                let n = 5;
                let x: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
                let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..5)).collect();
                let p: Vec<f64> = m.init_params(3);
                let mut eng = Engine::<f64>::new(m.clone(), 2);
                eng.train_step(&p, &x, &y, n);
                let grad = eng.grad.clone();
                let mut e1 = Engine::<f64>::new(m.clone(), 1);
                let loss = |pp: &[f64]| e1.evaluate(pp, &x, &y, n).mean_loss();
                if mask {
                    // The data has padding in the question and answers ending early.
                    assert!(x.contains(&0) && y.iter().position(|&s| s == 1).is_some());
                }
                gradcheck::check(
                    &p,
                    &grad,
                    &gradcheck::sample_indices(p.len(), 3),
                    1e-4,
                    loss,
                    &format!(
                        "{cell:?} {decoder:?} attention {attention} {input:?} x{layers} mask {mask}"
                    ),
                );
            }
        }
    }

    #[test]
    fn greedy_decoding_feeds_back_its_own_symbols() {
        // With teacher forcing, the prediction at step s depends on the symbol chosen at s-1:
        // decoding a batch one step at a time must equal re-running teacher forcing on the
        // greedy answer itself.
        let cfg = ModelConfig {
            hidden: 6,
            decoder: DecoderKind::TeacherForced,
            attention: true,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, 5, 4, 3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let n = 6;
        let x: Vec<u8> = (0..n * 4).map(|_| rng.random_range(0..5)).collect();
        let p: Vec<f32> = m.init_params(4);
        let mut eng = Engine::<f32>::new(m.clone(), 2);
        let greedy = eng.predict_indices(&p, &x, n);
        // Teacher-forced on its own answers, the argmax reproduces them exactly.
        let st = eng.evaluate(&p, &x, &greedy, n);
        assert_eq!(st.exact, n);
        assert_eq!(st.correct_chars, n * 3);
    }

    #[test]
    fn attention_weights_are_distributions_per_answer_step() {
        for decoder in [DecoderKind::Repeat, DecoderKind::TeacherForced] {
            let cfg = ModelConfig {
                hidden: 6,
                decoder,
                attention: true,
                ..Default::default()
            };
            let m = Seq2Seq::new(&cfg, 5, 4, 3).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
            let x: Vec<u8> = (0..5 * 4).map(|_| rng.random_range(0..5)).collect();
            let p: Vec<f32> = m.init_params(1);
            let mut eng = Engine::<f32>::new(m.clone(), 2);
            let w = eng.attention_weights(&p, &x, 5).unwrap();
            assert_eq!(w.len(), 5 * 3 * 4);
            for row in w.chunks_exact(4) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            }
            // One question alone gets the weights it got within the batch.
            let one = eng.attention_weights(&p, &x[8..12], 1).unwrap();
            for (a, b) in one.iter().zip(&w[2 * 12..3 * 12]) {
                assert!((a - b).abs() < 1e-5);
            }
        }
        let plain = Seq2Seq::new(&ModelConfig::default(), 5, 4, 3).unwrap();
        let p: Vec<f32> = plain.init_params(1);
        assert!(Engine::<f32>::new(plain, 1)
            .attention_weights(&p, &[0; 4], 1)
            .is_none());
    }

    #[test]
    fn a_forward_in_chunks_gives_the_bits_of_one_pass() {
        // Every cell and decoder, with attention and masking: answers, attention weights and
        // evaluation sums must not depend on how many rows a worker runs at once.
        let cases = [
            (CellKind::Lstm, DecoderKind::Repeat, false, false),
            (CellKind::Gru, DecoderKind::Repeat, false, true),
            (
                CellKind::SimpleRnn,
                DecoderKind::TeacherForced,
                false,
                false,
            ),
            (CellKind::Lstm, DecoderKind::TeacherForced, true, true),
            (CellKind::Lstm, DecoderKind::Repeat, true, false),
            (CellKind::Gru, DecoderKind::TeacherForced, true, false),
        ];
        for (i, (cell, decoder, attention, mask)) in cases.into_iter().enumerate() {
            // Two decoder layers in every other case, and then a wider encoder where the decoder
            // allows it (a teacher-forced one starts from the encoder's state).
            let cfg = ModelConfig {
                cell,
                hidden: 6,
                layers: 1 + i % 2,
                encoder_hidden: (i % 2 == 1 && decoder == DecoderKind::Repeat).then_some(7),
                decoder,
                attention,
                mask,
                ..Default::default()
            };
            let m = Seq2Seq::new(&cfg, 6, 4, 3).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
            let n = 23;
            let x: Vec<u8> = (0..n * 4).map(|_| rng.random_range(0..6)).collect();
            let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..6)).collect();
            let p: Vec<f32> = m.init_params(2);
            let run = |chunk: usize| {
                let mut e = Engine::<f32>::new(m.clone(), 2);
                e.forward_chunk = Some(chunk);
                let mut probs = Vec::new();
                // A larger batch first: the buffers it leaves behind must not leak into the next.
                e.predict(&p, &[x.clone(), x.clone()].concat(), 2 * n, &mut probs);
                e.predict(&p, &x, n, &mut probs);
                let att = e.attention_weights(&p, &x, n);
                (probs, att, e.evaluate(&p, &x, &y, n))
            };
            let (probs, att, st) = run(1024);
            assert_eq!(probs.len(), n * 3 * 6);
            for chunk in [1, 5] {
                let (p2, a2, s2) = run(chunk);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&p2), bits(&probs), "{cfg:?} chunk {chunk}");
                assert_eq!(a2.map(|a| bits(&a)), att.as_ref().map(|a| bits(a)));
                assert_eq!(
                    (s2.exact, s2.correct_chars, s2.rows, s2.positions),
                    (st.exact, st.correct_chars, st.rows, st.positions)
                );
                // The loss is summed chunk by chunk: the same up to summation order.
                assert!((s2.loss_sum - st.loss_sum).abs() < 1e-9 * st.loss_sum.abs().max(1.0));
            }
        }
    }

    #[test]
    fn shared_prefixes_give_the_bits_of_a_full_forward() {
        // Questions over three symbols share their first steps; answers and evaluation must
        // come out as without sharing, for every cell and decoder, in chunks or not.
        for (i, cell) in [CellKind::Lstm, CellKind::Gru, CellKind::SimpleRnn]
            .into_iter()
            .enumerate()
        {
            for decoder in [DecoderKind::Repeat, DecoderKind::TeacherForced] {
                let cfg = ModelConfig {
                    cell,
                    hidden: 6,
                    layers: 1 + i % 2,
                    decoder,
                    ..Default::default()
                };
                let m = Seq2Seq::new(&cfg, 6, 5, 3).unwrap();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
                let n = 41;
                let x: Vec<u8> = (0..n * 5).map(|_| rng.random_range(0..3)).collect();
                let y: Vec<u8> = (0..n * 3).map(|_| rng.random_range(0..6)).collect();
                let p: Vec<f32> = m.init_params(4);
                // The same questions again, each twice: every prefix is shared by two rows or
                // more, up to the last step.
                let twice: Vec<u8> = x
                    .chunks(5)
                    .flat_map(|q| [q, q])
                    .flatten()
                    .copied()
                    .collect();
                let run = |x: &[u8], share: bool, chunk: usize| {
                    let n = x.len() / 5;
                    let mut e = Engine::<f32>::new(m.clone(), 2);
                    e.share_prefixes = share;
                    e.forward_chunk = Some(chunk);
                    let mut probs = Vec::new();
                    e.predict(&p, x, n, &mut probs);
                    let shared: Vec<usize> = e.prefixes.iter().map(|pf| pf.shared).collect();
                    let y = &[y.clone(), y.clone()].concat()[..n * 3];
                    (probs, e.evaluate(&p, x, y, n), shared)
                };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                // 21 and 20 rows over 3 symbols share 3 and 9 prefixes, then 18-19 (more than
                // half); doubled, 41 distinct questions in 82 rows share all four steps.
                for (x, levels) in [(&x, [2, 2]), (&twice, [4, 4])] {
                    for chunk in [1024, 4] {
                        // (The loss sums chunk by chunk: compare the same chunks.)
                        let (probs, st, _) = run(x, false, chunk);
                        let (p2, s2, shared) = run(x, true, chunk);
                        assert_eq!(shared, levels, "{cfg:?}");
                        assert_eq!(bits(&p2), bits(&probs), "{cfg:?} chunk {chunk}");
                        assert_eq!(
                            (s2.exact, s2.correct_chars, s2.loss_sum.to_bits()),
                            (st.exact, st.correct_chars, st.loss_sum.to_bits()),
                            "{cfg:?} chunk {chunk}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn encoder_and_decoder_sizes_can_differ() {
        // Brownlee's model: LSTM(100) encoder, LSTM(50) decoder, here scaled down.
        let cfg = ModelConfig {
            hidden: 3,
            encoder_hidden: Some(5),
            layers: 2,
            ..Default::default()
        };
        let m = Seq2Seq::new(&cfg, 6, 4, 2).unwrap();
        assert_eq!(
            m.layout.get("decoder.weight_ih_l0").unwrap().shape,
            vec![12, 5]
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let n = 4;
        let x: Vec<u8> = (0..n * 4).map(|_| rng.random_range(0..6)).collect();
        let y: Vec<u8> = (0..n * 2).map(|_| rng.random_range(0..6)).collect();
        let p: Vec<f64> = m.init_params(2);
        let mut eng = Engine::<f64>::new(m.clone(), 2);
        eng.train_step(&p, &x, &y, n);
        let grad = eng.grad.clone();
        let mut e1 = Engine::<f64>::new(m, 1);
        let loss = |pp: &[f64]| e1.evaluate(pp, &x, &y, n).loss_sum / (n * 2) as f64;
        gradcheck::check(
            &p,
            &grad,
            &gradcheck::sample_indices(p.len(), 5),
            1e-4,
            loss,
            "encoder 5, decoder 3",
        );
    }

    #[test]
    fn thread_counts_agree_up_to_summation_order() {
        let (m, x, y, n) = tiny(CellKind::Lstm, 1);
        let p: Vec<f32> = m.init_params(3);
        let mut e1 = Engine::<f32>::new(m.clone(), 1);
        let mut e3 = Engine::<f32>::new(m.clone(), 3);
        let s1 = e1.train_step(&p, &x, &y, n);
        let s3 = e3.train_step(&p, &x, &y, n);
        assert!((s1.loss_sum - s3.loss_sum).abs() < 1e-5);
        for (a, b) in e1.grad.iter().zip(&e3.grad) {
            assert!((a - b).abs() < 1e-6);
        }
        // Same thread count: bit-identical.
        let mut e3b = Engine::<f32>::new(m, 3);
        e3b.train_step(&p, &x, &y, n);
        assert_eq!(e3.grad, e3b.grad);
    }

    /// `train_step_adam` against `train_step` then `adam.step` on `engine.grad`, bit for bit.
    pub(crate) fn assert_fused_update_is_step_then_adam(m: &Seq2Seq, x: &[u8], y: &[u8], n: usize) {
        for threads in [1, 2, 3] {
            for clip_norm in [None, Some(0.01)] {
                let cfg = crate::optim::OptimConfig {
                    clip_norm,
                    ..Default::default()
                };
                let mut pa: Vec<f32> = m.init_params(3);
                let mut pb = pa.clone();
                let mut ea = Engine::<f32>::new(m.clone(), threads);
                let mut eb = Engine::<f32>::new(m.clone(), threads);
                let mut aa = Adam::new(cfg.clone(), pa.len());
                let mut ab = Adam::new(cfg, pa.len());
                // The reference update on a thread that flushes subnormals, as the engine's do.
                let pool = math_pool(1);
                for _ in 0..3 {
                    let sa = ea.train_step(&pa, x, y, n);
                    pool.install(|| aa.step(&mut pa, &ea.grad)).unwrap();
                    let sb = eb.train_step_adam(&mut pb, x, y, n, &mut ab).unwrap();
                    assert_eq!(sa.loss_sum.to_bits(), sb.loss_sum.to_bits());
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&pa), bits(&pb));
                assert_eq!(
                    (bits(&aa.m), bits(&aa.v), aa.t),
                    (bits(&ab.m), bits(&ab.v), ab.t)
                );
                // The update moved the weights.
                assert_ne!(pa, m.init_params::<f32>(3));
            }
        }
    }

    #[test]
    fn the_fused_update_gives_the_bits_of_a_step_then_adam() {
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let (m, x, y, n) = tiny(cell, 2);
            assert_fused_update_is_step_then_adam(&m, &x, &y, n);
        }
    }

    #[test]
    fn predict_returns_row_major_probabilities() {
        let (m, x, _, n) = tiny(CellKind::Gru, 2);
        let p: Vec<f32> = m.init_params(1);
        let mut e2 = Engine::<f32>::new(m.clone(), 2);
        let mut probs = Vec::new();
        e2.predict(&p, &x, n, &mut probs);
        assert_eq!(probs.len(), n * 2 * 5);
        for row in probs.chunks_exact(5) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // One row alone gives the same probabilities as within the batch.
        let mut e1 = Engine::<f32>::new(m, 1);
        let mut one = Vec::new();
        e1.predict(&p, &x[3 * 3..4 * 3], 1, &mut one);
        for (a, b) in one.iter().zip(&probs[3 * 10..4 * 10]) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
