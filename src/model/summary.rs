//! Keras-style summaries of a model (`model.summary()`): one row per layer with its output
//! shape and parameter count.

use super::{DecoderKind, Network, Seq2Seq};
use crate::nn::rnn::RnnLayer;
use crate::nn::transformer::Transformer;

impl Seq2Seq {
    /// A table like Keras's `model.summary()`.
    pub fn summary(&self) -> String {
        let rnn = match &self.net {
            Network::Transformer(tr) => return self.transformer_summary(tr),
            Network::Recurrent(rnn) => rnn,
        };
        let h = self.cfg.hidden;
        let cell = self.cfg.cell.keras_name();
        let count =
            |l: &RnnLayer| l.w_ih.len + l.w_hh.len + l.b_ih.len + l.b_hh.map_or(0, |b| b.len);
        let mut rows = Vec::new();
        if let Some(e) = &rnn.embedding {
            rows.push((
                "embedding (Embedding)".to_string(),
                format!("(None, {}, {})", self.t_in, e.dim),
                e.weight.len,
            ));
        }
        rows.push((
            format!("encoder ({cell})"),
            format!("(None, {})", rnn.encoder.hidden),
            count(&rnn.encoder),
        ));
        if self.cfg.decoder == DecoderKind::Repeat {
            rows.push((
                "repeat_vector (RepeatVector)".to_string(),
                format!("(None, {}, {})", self.t_out, rnn.encoder.hidden),
                0,
            ));
        }
        for (l, d) in rnn.decoders.iter().enumerate() {
            let what = if l == 0 && self.cfg.decoder == DecoderKind::TeacherForced {
                format!("decoder_l{l} ({cell}, teacher-forced)")
            } else {
                format!("decoder_l{l} ({cell})")
            };
            rows.push((what, format!("(None, {}, {h})", self.t_out), count(d)));
        }
        if let Some(a) = &rnn.attention {
            rows.push((
                "attention (Luong, general)".to_string(),
                format!("(None, {}, {h})", self.t_out),
                a.w_a.len + a.w_c.len + a.b_c.len,
            ));
        }
        rows.push((
            "head (TimeDistributed(Dense))".to_string(),
            format!("(None, {}, {})", self.t_out, self.vocab),
            rnn.head.weight.len + rnn.head.bias.len,
        ));
        let title = format!(
            "Model: \"seq2seq\" (input: (None, {}, {}) {})",
            self.t_in,
            self.vocab,
            if rnn.embedding.is_some() {
                "symbol indices"
            } else {
                "one-hot"
            }
        );
        summary_table(&title, &rows, self.param_count())
    }

    /// The transformer's summary table.
    fn transformer_summary(&self, tr: &Transformer) -> String {
        let count = |prefix: &str| -> usize {
            self.layout
                .specs
                .iter()
                .filter(|s| s.name.starts_with(prefix))
                .map(|s| s.range().len())
                .sum()
        };
        let (d, t) = (tr.cfg.dim, self.t_in + self.t_out);
        let mut rows = vec![
            (
                "tok (Embedding)".to_string(),
                format!("(None, {t}, {d})"),
                count("tok."),
            ),
            (
                "seg (Embedding, positions)".to_string(),
                format!("(None, {t}, {d})"),
                count("seg."),
            ),
        ];
        for l in 0..tr.cfg.layers {
            rows.push((
                format!("block_{l} ({} heads, FFN {})", tr.cfg.heads, tr.cfg.ffn),
                format!("(None, {t}, {d})"),
                count(&format!("blocks.{l}.")),
            ));
        }
        rows.push((
            "norm + head (Dense)".to_string(),
            format!("(None, {}, {})", self.t_out, tr.vocab),
            count("nf.") + count("head."),
        ));
        let title = format!(
            "Model: \"transformer\" (input: question, start symbol, answer: {t} tokens of {} symbols)",
            tr.vocab
        );
        summary_table(&title, &rows, self.param_count())
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
