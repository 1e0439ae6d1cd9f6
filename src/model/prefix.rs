//! Prefix sharing in a forward without backward: questions that start alike reach the same
//! encoder state, so the encoder's first steps run once per distinct prefix.

use super::{Network, Seq2Seq};
use crate::nn::rnn::{CellKind, RnnCache, RnnInput, RnnPack};
use crate::nn::Real;

/// The encoder states of a slice's question prefixes ([`Seq2Seq::share_prefixes`]): the
/// encoder steps shared (0: none), the number of distinct prefixes at the last level, each of
/// the slice's rows' prefix there, and the prefixes' encoder states after their last step (one
/// step of `states`). The rest is scratch: the level before's states, and one level's
/// numbering, parents and symbols.
#[derive(Debug, Default)]
pub(super) struct Prefixes<R> {
    pub(super) shared: usize,
    pub(super) count: usize,
    pub(super) of: Vec<u32>,
    pub(super) states: RnnCache<R>,
    pub(super) prev: RnnCache<R>,
    pub(super) next: Vec<u32>,
    pub(super) parent: Vec<u32>,
    pub(super) sym: Vec<u8>,
}

impl Seq2Seq {
    /// Whether a forward may run the encoder's first steps once per distinct prefix of the
    /// questions: symbols straight into the encoder (no embedding), no masking, and no attention
    /// (which reads every step's output).
    pub(super) fn shares_prefixes(&self) -> bool {
        match &self.net {
            Network::Recurrent(rnn) => {
                rnn.embedding.is_none() && !self.cfg.mask && rnn.attention.is_none()
            }
            Network::Transformer(_) => false,
        }
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
    pub(super) fn share_prefixes<R: Real>(
        &self,
        p: &[R],
        packs: &[RnnPack<R>],
        pf: &mut Prefixes<R>,
        inputs: &[u8],
        n: usize,
    ) {
        let rnn = self.rnn();
        pf.shared = 0;
        let (t_in, v, h) = (self.t_in, rnn.encoder.input, rnn.encoder.hidden);
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
                let c = lstm.then(|| rnn.encoder.last_cell(prefix_prev, count, 1));
                let h0 = rnn.encoder.last_output(prefix_prev, count, 1);
                prefix.set_initial_state_gathered(h0, c, parent, h);
            }
            prefix.set_mask(None);
            prefix.set_no_backward(true);
            rnn.encoder
                .forward(p, &packs[0], RnnInput::Symbols(sym), fresh, 1, prefix);
            count = fresh;
            *shared = s + 1;
            *prefix_count = count;
        }
        if *shared == 1 {
            *shared = 0;
        }
    }
}
