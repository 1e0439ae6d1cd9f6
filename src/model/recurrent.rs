//! The recurrent network's passes over one slice of rows: the encoder (from shared question
//! prefixes when there are some), the repeat-vector or teacher-forced decoders, attention and
//! the head, the loss and the whole backward, greedy decoding, and a worker's buffers for them.

use super::prefix::Prefixes;
use super::{DecoderKind, Seq2Seq, SliceStats};
use crate::nn::attention::AttentionCache;
use crate::nn::avec::AVec;
use crate::nn::loss::{argmax, softmax_rows, softmax_xent_forward_backward};
use crate::nn::rnn::{CellKind, RnnCache, RnnInput, RnnInputGrad, RnnPack};
use crate::nn::Real;

impl Seq2Seq {
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
    pub(super) fn run_slice<R: Real>(
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
        let rnn = self.rnn();
        let (t_in, t_out, v, h) = (self.t_in, self.t_out, self.vocab, self.cfg.hidden);
        let teacher_forced = self.cfg.decoder == DecoderKind::TeacherForced;
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
        debug_assert!(rnn.attention.is_none() || t_enc == t_in);
        let Some(targets) = targets else {
            if teacher_forced {
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
        if teacher_forced {
            // The previous symbol at each step: start (index V), then the target shifted by one.
            ws.shifted[..b].fill(v as u8);
            for i in b..t_out * b {
                ws.shifted[i] = ws.tgt[i - b];
            }
            let enc_last = rnn.encoder.last_output(&ws.enc, b, t_enc);
            let enc_c = lstm.then(|| rnn.encoder.last_cell(&ws.enc, b, t_enc));
            ws.dec[0].set_initial_state(enc_last, enc_c);
            for l in 0..rnn.decoders.len() {
                let (done, rest) = ws.dec.split_at_mut(l);
                let input = if l == 0 {
                    RnnInput::Symbols(&ws.shifted[..t_out * b])
                } else {
                    rest[0].clear_initial_state();
                    RnnInput::Seq(rnn.decoders[l - 1].outputs(&done[l - 1], b, t_out))
                };
                rnn.decoders[l].forward(p, &packs[l + 1], input, b, t_out, &mut rest[0]);
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
            if teacher_forced {
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
        let last = rnn.decoders.len() - 1;
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
        let dec_out = rnn.decoders[last].outputs(&dec[last], b, t_out);
        let enc_out = rnn.encoder.outputs(enc, b, t_in);
        let e_h = rnn.encoder.hidden;
        if let Some(a) = &rnn.attention {
            let d_att = &mut d_dec[last + 1][..t_out * b * h];
            rnn.head.backward(
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
            rnn.head
                .backward(p, dec_out, logits, t_out * b, grad, Some(d_top));
        }
        let enc_last = rnn.encoder.last_output(enc, b, t_in);
        for l in (0..rnn.decoders.len()).rev() {
            let (below, here) = dec.split_at_mut(l);
            let (d_below, d_here) = d_dec.split_at_mut(l);
            let d_seq = &d_here[0][..t_out * b * h];
            if l == 0 {
                let (input, d_in) = if teacher_forced {
                    (RnnInput::Symbols(&shifted[..t_out * b]), RnnInputGrad::None)
                } else {
                    (
                        RnnInput::Repeat(enc_last),
                        RnnInputGrad::Dense(&mut d_enc[..b * e_h]),
                    )
                };
                rnn.decoders[0].backward(
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
                let x = rnn.decoders[l - 1].outputs(&below[l - 1], b, t_out);
                let d_in = RnnInputGrad::Dense(&mut d_below[l - 1][..t_out * b * h]);
                rnn.decoders[l].backward(
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
        if teacher_forced {
            // The decoder started from the encoder's final state: its gradient flows back.
            let (dh0, dc0) = dec[0].initial_state_grad(b, h);
            d_enc[..b * e_h].copy_from_slice(dh0);
            enc.set_last_cell_grad(lstm.then_some(dc0));
        } else {
            enc.set_last_cell_grad(None);
        }
        let d_seq_enc = rnn
            .attention
            .is_some()
            .then(|| &d_enc_seq[..t_in * b * e_h]);
        let (input, d_in) = match &rnn.embedding {
            Some(e) => (
                RnnInput::Seq(&emb[..t_in * b * e.dim]),
                RnnInputGrad::Dense(&mut d_emb[..t_in * b * e.dim]),
            ),
            None => (RnnInput::Symbols(&sym[..t_in * b]), RnnInputGrad::None),
        };
        rnn.encoder.backward(
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
        if let Some(e) = &rnn.embedding {
            e.backward(&sym[..t_in * b], &d_emb[..t_in * b * e.dim], grad);
        }
        stats
    }

    /// Rows whose answer is right: every step up to the end symbol (or every step without one).
    pub(super) fn exact_rows(&self, argmax: &[u8], tgt: &[u8], b: usize) -> usize {
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
    pub(super) fn encode<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        prefix: Option<(&Prefixes<R>, usize)>,
    ) -> usize {
        let rnn = self.rnn();
        let t_in = self.t_in;
        if let Some((pf, first)) = prefix.filter(|(pf, _)| pf.shared > 0) {
            let (k, u, h) = (pf.shared, pf.count, rnn.encoder.hidden);
            let c =
                (self.cfg.cell == CellKind::Lstm).then(|| rnn.encoder.last_cell(&pf.states, u, 1));
            ws.enc.set_initial_state_gathered(
                rnn.encoder.last_output(&pf.states, u, 1),
                c,
                &pf.of[first..first + b],
                h,
            );
            ws.enc.set_mask(None);
            let input = RnnInput::Symbols(&ws.sym[k * b..t_in * b]);
            rnn.encoder
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
        let input = match &rnn.embedding {
            Some(e) => {
                e.forward(p, &ws.sym[..t_in * b], &mut ws.emb);
                RnnInput::Seq(&ws.emb[..t_in * b * e.dim])
            }
            None => RnnInput::Symbols(&ws.sym[..t_in * b]),
        };
        rnn.encoder
            .forward(p, &packs[0], input, b, t_in, &mut ws.enc);
        t_in
    }

    /// The repeat-vector decoders over the encoder's last output (after its `t_enc` steps).
    pub(super) fn decode_repeat<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        t_enc: usize,
    ) {
        let rnn = self.rnn();
        let t_out = self.t_out;
        let enc_last = rnn.encoder.last_output(&ws.enc, b, t_enc);
        for l in 0..rnn.decoders.len() {
            let (done, rest) = ws.dec.split_at_mut(l);
            rest[0].clear_initial_state();
            let input = if l == 0 {
                RnnInput::Repeat(enc_last)
            } else {
                RnnInput::Seq(rnn.decoders[l - 1].outputs(&done[l - 1], b, t_out))
            };
            rnn.decoders[l].forward(p, &packs[l + 1], input, b, t_out, &mut rest[0]);
        }
    }

    /// Attention (if any) and the dense head over the top decoder's outputs into `ws.logits`.
    pub(super) fn head_forward<R: Real>(&self, p: &[R], ws: &mut Workspace<R>, b: usize) {
        let rnn = self.rnn();
        let (t_out, v) = (self.t_out, self.vocab);
        let last = rnn.decoders.len() - 1;
        let dec_out = rnn.decoders[last].outputs(&ws.dec[last], b, t_out);
        let top = match &rnn.attention {
            Some(a) => {
                let enc_out = rnn.encoder.outputs(&ws.enc, b, self.t_in);
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
        rnn.head
            .forward(p, top, t_out * b, &mut ws.logits[..t_out * b * v]);
    }

    /// Greedy decoding after `encode`: one step at a time, each step reading the symbol chosen
    /// at the step before. Leaves probabilities `[T_out, b, V]` in `ws.logits` and the chosen
    /// symbols in `ws.argmax`.
    pub(super) fn greedy<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        ws: &mut Workspace<R>,
        b: usize,
        t_enc: usize,
    ) {
        let rnn = self.rnn();
        let (t_in, t_out, v, h) = (self.t_in, self.t_out, self.vocab, self.cfg.hidden);
        let lstm = self.cfg.cell == CellKind::Lstm;
        let n_dec = rnn.decoders.len();
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
                state_h[l].extend_from_slice(rnn.encoder.last_output(enc, b, t_enc));
                if lstm {
                    state_c[l].extend_from_slice(rnn.encoder.last_cell(enc, b, t_enc));
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
        let enc_out = rnn.encoder.outputs(enc, b, t_enc);
        for s in 0..t_out {
            for l in 0..n_dec {
                let (done, rest) = dec.split_at_mut(l);
                let c0 = lstm.then_some(&state_c[l][..]);
                rest[0].set_initial_state(&state_h[l], c0);
                let input = if l == 0 {
                    RnnInput::Symbols(&step_sym[..b])
                } else {
                    RnnInput::Seq(rnn.decoders[l - 1].outputs(&done[l - 1], b, 1))
                };
                rnn.decoders[l].forward(p, &packs[l + 1], input, b, 1, &mut rest[0]);
                state_h[l].copy_from_slice(rnn.decoders[l].last_output(&rest[0], b, 1));
                if lstm {
                    state_c[l].copy_from_slice(rnn.decoders[l].last_cell(&rest[0], b, 1));
                }
            }
            let top_dec = rnn.decoders[n_dec - 1].outputs(&dec[n_dec - 1], b, 1);
            let top = match &rnn.attention {
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
            rnn.head.forward(p, top, b, out);
            softmax_rows(out, v);
            for (r, row) in out.chunks_exact(v).enumerate() {
                let k = argmax(row) as u8;
                step_sym[r] = k;
                chosen[s * b + r] = k;
            }
        }
    }
}

/// One worker's buffers; sized on first use, reused after.
#[derive(Debug, Default)]
pub struct Workspace<R> {
    pub(super) enc: RnnCache<R>,
    pub(super) dec: Vec<RnnCache<R>>,
    pub(super) sym: Vec<u8>,
    /// Masking: `[T_in, B]` 1 where the question has a symbol, 0 on padding (and as bools for
    /// attention); `[T_out, B]` 1 where the answer position is scored.
    pub(super) in_mask: Vec<u8>,
    pub(super) att_mask: Vec<bool>,
    pub(super) active: Vec<u8>,
    pub(super) tgt: Vec<u8>,
    pub(super) argmax: Vec<u8>,
    pub(super) logits: Vec<R>,
    /// Teacher forcing: the previous symbol of each step `[T_out, B]`.
    pub(super) shifted: Vec<u8>,
    /// Embedded questions `[T_in, B, D]` and their gradient.
    pub(super) emb: Vec<R>,
    pub(super) d_emb: Vec<R>,
    pub(super) att: AttentionCache<R>,
    /// Greedy decoding: the symbols fed at the next step, each layer's state, one step's attention.
    pub(super) step_sym: Vec<u8>,
    pub(super) state_h: Vec<Vec<R>>,
    pub(super) state_c: Vec<Vec<R>>,
    pub(super) att_step: AttentionCache<R>,
    /// When set, the attention weights of the last chunk run, `[T_out, B, T_in]`, are kept in
    /// `att_record` (and written into the engine's `out_attention`; `predict --explain`).
    pub(super) record_attention: bool,
    pub(super) att_record: Vec<R>,
    /// Decoder-output gradients, one per layer, plus one for the attention output.
    pub(super) d_dec: Vec<Vec<R>>,
    pub(super) d_enc: Vec<R>,
    /// Gradient of every encoder output (attention).
    pub(super) d_enc_seq: Vec<R>,
    /// This worker's gradient, the model's layout.
    pub grad: AVec<R>,
    pub(super) backward: bool,
}

impl<R: Real> Workspace<R> {
    /// Copies the last forward's time-major probabilities `[T_out, rows, V]` (and recorded
    /// attention) into `probs` (`[rows, T_out, V]`, row-major) and `att`.
    pub(super) fn write_outputs(&self, m: &Seq2Seq, rows: usize, probs: &mut [R], att: &mut [R]) {
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

    pub(super) fn ensure(&mut self, m: &Seq2Seq, b: usize) {
        let rnn = m.rnn();
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
        if let Some(e) = &rnn.embedding {
            grow(&mut self.emb, t_in * b * e.dim);
        }
        self.dec.resize_with(rnn.decoders.len(), RnnCache::default);
        self.d_dec.resize_with(rnn.decoders.len() + 1, Vec::new);
        if self.backward {
            for d in &mut self.d_dec {
                grow(d, t_out * b * h);
            }
            grow(&mut self.d_enc, b * rnn.encoder.hidden);
            if rnn.attention.is_some() {
                grow(&mut self.d_enc_seq, t_in * b * rnn.encoder.hidden);
            }
            if let Some(e) = &rnn.embedding {
                grow(&mut self.d_emb, t_in * b * e.dim);
            }
            if self.grad.len() < m.param_count() {
                self.grad.resize(m.param_count(), R::ZERO);
            }
        }
    }
}
