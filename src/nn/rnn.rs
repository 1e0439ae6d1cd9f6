//! Recurrent layers (LSTM, GRU, SimpleRNN) with fused forward and backward passes.
//!
//! The three cells share one time loop, packed weights and workspace here; their fused
//! per-step gate arithmetic is in `rnn/cells.rs`, the tests in `rnn/tests.rs`. A kernel file,
//! longer than most: the time loop's forward and backward share the packed-weight layout.
//!
//! Shapes (time-major): input symbols `[T, B]` or features `[T, B, I]` or one repeated feature
//! row `[B, I]`; hidden states `hs` `[T+1, B, H]` with `hs[0]` the initial state (zeros), so
//! `hs[t+1]` is the output of step `t`.
//!
//! Cells, with `x_t W` meaning `x_t @ weight_ih^T` (PyTorch layout, Keras semantics):
//! - LSTM (gates i, f, g, o; one bias, forget-gate bias initialised to 1):
//!   `z = x W_ih + h W_hh + b`; `i,f,o = σ(z_i,z_f,z_o)`, `g = tanh(z_g)`;
//!   `c' = f c + i g`; `h' = o tanh(c')`.
//! - GRU (Keras 3 `reset_after=True` = PyTorch; gates r, z, n; `bias_ih` and `bias_hh`):
//!   `a = x W_ih + b_ih`, `p = h W_hh + b_hh`; `r = σ(a_r + p_r)`, `z = σ(a_z + p_z)`,
//!   `n = tanh(a_n + r p_n)`; `h' = (1 - z) n + z h`.
//! - SimpleRNN: `h' = tanh(x W_ih + h W_hh + b)`.
//!
//! The fast path follows DESIGN.md: the input projection of all steps is one GEMM (a row gather
//! for symbol inputs, computed once for repeated inputs), all gates come from one recurrent GEMM
//! per step, the gate arithmetic is one fused elementwise pass, buffers are preallocated in
//! [`RnnCache`], and the weight gradients are one GEMM over all steps after the backward sweep.

use super::avec::AVec;
use super::gemm::{gemm, Op};
use super::packed::{gemm_packed, PackedB};
use super::params::{glorot_uniform, orthogonal, ParamLayout, ParamRef};
use super::Real;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The recurrent cell type.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    Lstm,
    Gru,
    #[serde(alias = "simple_rnn", alias = "rnn")]
    SimpleRnn,
}

impl CellKind {
    /// Gates per unit (G).
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::SimpleRnn => 1,
        }
    }
    /// Keras's class name, for the model summary.
    pub fn keras_name(self) -> &'static str {
        match self {
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
            CellKind::SimpleRnn => "SimpleRNN",
        }
    }
}

impl std::str::FromStr for CellKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            "simplernn" | "simple_rnn" | "rnn" => Ok(CellKind::SimpleRnn),
            _ => Err(format!(
                "unknown cell {s:?}; expected lstm, gru or simplernn"
            )),
        }
    }
}

/// Input to a recurrent layer for a batch slice of `B` rows and `T` steps.
#[derive(Clone, Copy, Debug)]
pub enum RnnInput<'a, R> {
    /// Symbol indices `[T, B]`: the one-hot product is a row gather of `weight_ih^T`.
    Symbols(&'a [u8]),
    /// Dense features `[T, B, I]`.
    Seq(&'a [R]),
    /// The same features `[B, I]` at every step (Keras `RepeatVector`): projected once.
    Repeat(&'a [R]),
}

/// Where the gradient with respect to the layer's input goes.
pub enum RnnInputGrad<'a, R> {
    /// No input gradient (symbol inputs: their weights get a scatter-add instead).
    None,
    /// `[T, B, I]` for `Seq`, `[B, I]` for `Repeat`; overwritten.
    Dense(&'a mut [R]),
}

/// One recurrent layer: handles to its weights in the model's flat parameter vector.
#[derive(Clone, Debug)]
pub struct RnnLayer {
    pub cell: CellKind,
    /// I (for symbol inputs: the vocabulary size V).
    pub input: usize,
    /// H.
    pub hidden: usize,
    /// `weight_ih` `[G*H, I]`.
    pub w_ih: ParamRef,
    /// `weight_hh` `[G*H, H]`.
    pub w_hh: ParamRef,
    /// `bias_ih` `[G*H]` (for LSTM and SimpleRNN, Keras's single bias).
    pub b_ih: ParamRef,
    /// GRU only: `bias_hh` `[G*H]`.
    pub b_hh: Option<ParamRef>,
}

/// A layer's weights packed for the products of one training step: `fwd` is `weight_hh^T`
/// (`[H, G*H]`, for `h @ W_hh^T`), `bwd` is `weight_hh` (`[G*H, H]`, for `dz @ W_hh`);
/// `ih_fwd` and `ih_bwd` are `weight_ih^T` and `weight_ih`, for a dense input's projection
/// `x @ W_ih^T` and its gradient `dz @ W_ih` (unused with symbol input).
#[derive(Clone, Debug, Default)]
pub struct RnnPack<R> {
    pub fwd: PackedB<R>,
    pub bwd: PackedB<R>,
    pub ih_fwd: PackedB<R>,
    pub ih_bwd: PackedB<R>,
    /// With symbol input, `weight_ih^T + bias` (`[V, G*H]`: row `v` holds the pre-activations
    /// symbol `v` adds), built by the first forward that needs it after each packing and read
    /// by every worker and chunk after it (each used to build its own: a scalar transpose that
    /// was 2% of inference).
    pub table: OnceLock<Vec<R>>,
}

/// One packing: `op(src)` (`[k, n]`) into the packed matrix.
pub struct PackJob<'a, R>(
    pub &'a mut PackedB<R>,
    pub &'a [R],
    pub usize,
    pub usize,
    pub Op,
);

impl<R: Real> PackJob<'_, R> {
    pub fn run(self) {
        let PackJob(out, src, k, n, op) = self;
        out.pack_from(src, k, n, op);
    }
}

impl RnnLayer {
    /// Packs this layer's kernels from `p` into `pack` (reusing its buffers). The input
    /// kernel is packed too: a general GEMM would repack it on every call (the repeated
    /// decoder input's projection ran at half the speed of the recurrent products of the same
    /// shape); with symbol input it is `[G*H, V]`, a few thousand values.
    pub fn pack<R: Real>(&self, p: &[R], pack: &mut RnnPack<R>) {
        for job in self.pack_jobs(p, pack) {
            job.run();
        }
    }

    /// The four packings [`RnnLayer::pack`] runs, as independent jobs (to spread over threads):
    /// the forward's two kernels first, then the backward's two.
    pub fn pack_jobs<'a, R: Real>(
        &self,
        p: &'a [R],
        pack: &'a mut RnnPack<R>,
    ) -> [PackJob<'a, R>; 4] {
        let (h, gh, input) = (self.hidden, self.gh(), self.input);
        let (w, w_ih) = (self.w_hh.of(p), self.w_ih.of(p));
        let RnnPack {
            fwd,
            bwd,
            ih_fwd,
            ih_bwd,
            table,
        } = pack;
        // (Built again from these weights when a forward first needs it.)
        table.take();
        [
            PackJob(fwd, w, h, gh, Op::T),
            PackJob(ih_fwd, w_ih, input, gh, Op::T),
            PackJob(bwd, w, gh, h, Op::N),
            PackJob(ih_bwd, w_ih, gh, input, Op::N),
        ]
    }

    /// Registers the layer's tensors as `{prefix}.weight_ih{suffix}` etc. (PyTorch names
    /// `encoder.weight_ih_l0` with prefix `encoder`, suffix `_l0`).
    pub fn new(
        layout: &mut ParamLayout,
        prefix: &str,
        suffix: &str,
        cell: CellKind,
        input: usize,
        hidden: usize,
    ) -> RnnLayer {
        let gh = cell.gates() * hidden;
        let w_ih = layout.add(format!("{prefix}.weight_ih{suffix}"), &[gh, input]);
        let w_hh = layout.add(format!("{prefix}.weight_hh{suffix}"), &[gh, hidden]);
        // LSTM and SimpleRNN keep Keras's single bias under PyTorch's name `bias_ih`; weight
        // files add PyTorch's `bias_hh` as zeros (see `rundir`), which computes the same.
        let b_ih = layout.add(format!("{prefix}.bias_ih{suffix}"), &[gh]);
        let b_hh =
            (cell == CellKind::Gru).then(|| layout.add(format!("{prefix}.bias_hh{suffix}"), &[gh]));
        RnnLayer {
            cell,
            input,
            hidden,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        }
    }

    /// Keras initialisation: Glorot-uniform input kernel (fans I and G*H), orthogonal recurrent
    /// kernel, zero biases, LSTM forget-gate bias 1.
    pub fn init<R: Real>(&self, flat: &mut [R], rng: &mut impl Rng) {
        let (h, gh) = (self.hidden, self.gh());
        glorot_uniform(rng, self.w_ih.of_mut(flat), self.input, gh);
        orthogonal(rng, self.w_hh.of_mut(flat), gh, h);
        let b = self.b_ih.of_mut(flat);
        b.fill(R::ZERO);
        if self.cell == CellKind::Lstm {
            b[h..2 * h].fill(R::ONE);
        }
        if let Some(bh) = self.b_hh {
            bh.of_mut(flat).fill(R::ZERO);
        }
    }

    /// G*H.
    pub fn gh(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    /// Forward over `t` steps for `b` rows; fills `cache` (read the outputs from `cache.hs`).
    /// `pack` must have been packed from these `p` (its kernels and its symbol table are read
    /// instead of `p`'s).
    pub fn forward<R: Real>(
        &self,
        p: &[R],
        pack: &RnnPack<R>,
        input: RnnInput<R>,
        b: usize,
        t: usize,
        cache: &mut RnnCache<R>,
    ) {
        let (h, gh) = (self.hidden, self.gh());
        cache.ensure(self, b, t);
        let w_ih = self.w_ih.of(p);
        let bias = self.b_ih.of(p);
        let act = &mut cache.act[..t * b * gh];
        // An LSTM's steps that run the recurrent product add their input projection (a row of
        // the symbol table or of the repeated projection) inside the step kernel, instead of
        // having it copied into `act` for the product to add to: one pass less over
        // `[T, B, 4H]`, 9% of inference (same bits: the product's tile and the projection are
        // added in one rounding either way). Only a step without a product gets the copy.
        let fuse = self.cell == CellKind::Lstm
            && matches!(input, RnnInput::Symbols(_) | RnnInput::Repeat(_));
        let init = cache.has_init;
        let copied = if fuse && !init {
            b * gh * t.min(1)
        } else if fuse {
            0
        } else {
            t * b * gh
        };
        // Without a backward pass to come, such an LSTM needs one step's gates at a time: every
        // step reuses the first step's `[B, 4H]`, which stays in cache (inference; +5%
        // answers/s; the buffer keeps its size).
        let one_slot = fuse && cache.no_backward;
        cache.gates_kept = !cache.no_backward;
        // table[v] = weight_ih[:, v] + bias (see `RnnPack::table`), then row copies.
        let table: &[R] = match input {
            RnnInput::Symbols(_) => pack.table.get_or_init(|| {
                let mut table = vec![R::ZERO; self.input * gh];
                for g in 0..gh {
                    for v in 0..self.input {
                        table[v * gh + g] = w_ih[g * self.input + v] + bias[g];
                    }
                }
                table
            }),
            _ => &[],
        };
        let x_rows = &mut cache.x_rows;
        x_rows.clear();
        // 1. Input projections (+ bias), written into `act` as pre-activations (for the fused
        // LSTM only step 0's, when no product runs there; the others go in `x_rows`).
        match input {
            RnnInput::Symbols(sym) => {
                assert_eq!(sym.len(), t * b);
                for (row, &s) in act[..copied].chunks_exact_mut(gh).zip(sym) {
                    let s = s as usize;
                    row.copy_from_slice(&table[s * gh..(s + 1) * gh]);
                }
                if fuse {
                    x_rows.extend(sym.iter().map(|&s| s as u32));
                }
            }
            RnnInput::Seq(x) => {
                assert_eq!(x.len(), t * b * self.input);
                gemm_packed(t * b, x, &pack.ih_fwd, act, false);
                for row in act.chunks_exact_mut(gh) {
                    add_assign(row, bias);
                }
            }
            RnnInput::Repeat(x) => {
                assert_eq!(x.len(), b * self.input);
                let xp = &mut cache.xp[..b * gh];
                gemm_packed(b, x, &pack.ih_fwd, xp, false);
                for row in xp.chunks_exact_mut(gh) {
                    add_assign(row, bias);
                }
                for step in act[..copied].chunks_exact_mut(b * gh) {
                    step.copy_from_slice(xp);
                }
                if fuse {
                    x_rows.extend((0..t).flat_map(|_| 0..b as u32));
                }
            }
        }
        // 2. The recurrence, from the initial state (zeros unless one was set).
        if init {
            assert_eq!(
                cache.init_h.len(),
                b * h,
                "initial state of another batch size"
            );
            cache.hs[..b * h].copy_from_slice(&cache.init_h);
            if self.cell == CellKind::Lstm {
                cache.cs[..b * h].copy_from_slice(&cache.init_c);
            }
        } else {
            cache.hs[..b * h].fill(R::ZERO);
            if self.cell == CellKind::Lstm {
                cache.cs[..b * h].fill(R::ZERO);
            }
        }
        for s in 0..t {
            let (hs_prev, hs_next) = cache.hs[s * b * h..(s + 2) * b * h].split_at_mut(b * h);
            let slot = if one_slot { 0 } else { s };
            let a = &mut cache.act[slot * b * gh..(slot + 1) * b * gh];
            match self.cell {
                CellKind::Lstm | CellKind::SimpleRnn => {
                    let product = s > 0 || init;
                    if product {
                        gemm_packed(b, hs_prev, &pack.fwd, a, !fuse);
                    }
                    if self.cell == CellKind::Lstm {
                        let (cs_prev, cs_next) =
                            cache.cs[s * b * h..(s + 2) * b * h].split_at_mut(b * h);
                        let (x, x_rows): (&[R], &[u32]) = match input {
                            _ if !(fuse && product) => (&[], &[]),
                            RnnInput::Symbols(_) => (table, &cache.x_rows[s * b..(s + 1) * b]),
                            _ => (&cache.xp, &cache.x_rows[s * b..(s + 1) * b]),
                        };
                        lstm_step_forward(a, x, x_rows, cs_prev, cs_next, hs_next, h);
                    } else {
                        tanh_step_forward(a, hs_next);
                    }
                }
                CellKind::Gru => {
                    let b_hh = self.b_hh.expect("GRU has bias_hh").of(p);
                    let hp = &mut cache.hp[..b * gh];
                    if s > 0 || init {
                        gemm_packed(b, hs_prev, &pack.fwd, hp, false);
                    } else {
                        hp.fill(R::ZERO);
                    }
                    let hpn = &mut cache.hpn[s * b * h..(s + 1) * b * h];
                    gru_step_forward(a, hp, b_hh, hs_prev, hpn, hs_next, h);
                }
            }
            if cache.has_mask {
                assert_eq!(cache.mask.len(), t * b, "mask of another shape");
                for r in 0..b {
                    if cache.mask[s * b + r] != 0 {
                        continue;
                    }
                    let (prev, next) = cache.hs[s * b * h..(s + 2) * b * h].split_at_mut(b * h);
                    next[r * h..(r + 1) * h].copy_from_slice(&prev[r * h..(r + 1) * h]);
                    if self.cell == CellKind::Lstm {
                        let (prev, next) = cache.cs[s * b * h..(s + 2) * b * h].split_at_mut(b * h);
                        next[r * h..(r + 1) * h].copy_from_slice(&prev[r * h..(r + 1) * h]);
                    }
                }
            }
        }
    }

    /// The outputs of all steps `[T, B, H]` after `forward`.
    pub fn outputs<'c, R: Real>(&self, cache: &'c RnnCache<R>, b: usize, t: usize) -> &'c [R] {
        &cache.hs[b * self.hidden..(t + 1) * b * self.hidden]
    }

    /// The LSTM's last cell state `[B, H]` after `forward`.
    pub fn last_cell<'c, R: Real>(&self, cache: &'c RnnCache<R>, b: usize, t: usize) -> &'c [R] {
        assert_eq!(self.cell, CellKind::Lstm, "only an LSTM has a cell state");
        &cache.cs[t * b * self.hidden..(t + 1) * b * self.hidden]
    }

    /// The last step's output `[B, H]` after `forward`.
    pub fn last_output<'c, R: Real>(&self, cache: &'c RnnCache<R>, b: usize, t: usize) -> &'c [R] {
        &cache.hs[t * b * self.hidden..(t + 1) * b * self.hidden]
    }

    /// Backward through time. `d_seq` (`[T, B, H]`) is the loss gradient for every step's output,
    /// `d_last` (`[B, H]`) an extra gradient for the last output; either may be absent. Weight
    /// gradients are added into `grad` (same layout as `p`); the input gradient goes to `d_input`.
    /// The weights are read from `pack` (packed from `p`). An LSTM's backward consumes its
    /// forward (it writes the gradients over the gates): one backward per forward.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        _p: &[R],
        pack: &RnnPack<R>,
        input: RnnInput<R>,
        b: usize,
        t: usize,
        cache: &mut RnnCache<R>,
        d_seq: Option<&[R]>,
        d_last: Option<&[R]>,
        grad: &mut [R],
        d_input: RnnInputGrad<R>,
    ) {
        let (h, gh) = (self.hidden, self.gh());
        assert!(
            cache.gates_kept,
            "backward without a forward that kept its gates (none run, set_no_backward, or an \
             LSTM backward already ran on them)"
        );
        cache.ensure_backward(self, b, t);
        let RnnCache {
            act,
            hs,
            cs,
            hpn,
            dz,
            dzh,
            dh,
            dc,
            table,
            xp,
            has_init,
            d_last_c,
            mask,
            has_mask,
            keep,
            gates_kept,
            ..
        } = cache;
        let masked = |s: usize, r: usize| *has_mask && mask[s * b + r] == 0;
        if *has_mask {
            keep.resize(2 * b * h, R::ZERO);
        }
        let init = *has_init;
        let dh = &mut dh[..b * h];
        let dc = &mut dc[..b * h];
        match d_last {
            Some(d) => dh.copy_from_slice(d),
            None => dh.fill(R::ZERO),
        }
        if d_last_c.is_empty() {
            dc.fill(R::ZERO);
        } else {
            assert_eq!(d_last_c.len(), b * h, "cell gradient of another batch size");
            dc.copy_from_slice(d_last_c);
        }
        // The input's gradient sums, accumulated step by step while each step's `dz` is in
        // cache (a pass over all of `dz` after the loop, in plain SSE, was 3% of an LSTM step):
        // with symbol input the `[V, G*H]` sum of `dz` rows per symbol, with a repeated input
        // the `[B, G*H]` sum over steps. The bias gradient is then the sum of those few rows.
        let input_sum: &mut [R] = match input {
            RnnInput::Symbols(_) => {
                table.clear();
                table.resize(self.input * gh, R::ZERO);
                table
            }
            RnnInput::Repeat(_) => {
                let dsum = &mut xp[..b * gh];
                dsum.fill(R::ZERO);
                dsum
            }
            RnnInput::Seq(_) => &mut [],
        };
        // An LSTM writes each step's dz over that step's gates, which it has just read and
        // needs no more: no second `[T, B, 4H]` buffer to stream through the caches (its step
        // kernel is bound by memory, not arithmetic).
        let dz_in_act = self.cell == CellKind::Lstm;
        for s in (0..t).rev() {
            if let Some(d) = d_seq {
                add_assign(dh, &d[s * b * h..(s + 1) * b * h]);
            }
            let a = &mut act[s * b * gh..(s + 1) * b * gh];
            // (Empty for an LSTM, whose dz goes over `a`.)
            let dzs: &mut [R] = if dz_in_act {
                &mut []
            } else {
                &mut dz[s * b * gh..(s + 1) * b * gh]
            };
            let h_prev = &hs[s * b * h..(s + 1) * b * h];
            // A masked row's state passed through this step unchanged: keep its gradients aside,
            // zero its pre-activation gradients, and put them back after the step.
            let any_masked = (0..b).any(|r| masked(s, r));
            if any_masked {
                for r in (0..b).filter(|&r| masked(s, r)) {
                    keep[r * h..(r + 1) * h].copy_from_slice(&dh[r * h..(r + 1) * h]);
                    keep[(b + r) * h..(b + r + 1) * h].copy_from_slice(&dc[r * h..(r + 1) * h]);
                }
            }
            let zero_masked = |d: &mut [R]| {
                for r in (0..b).filter(|&r| masked(s, r)) {
                    d[r * gh..(r + 1) * gh].fill(R::ZERO);
                }
            };
            match self.cell {
                CellKind::Lstm => {
                    let c_prev = &cs[s * b * h..(s + 1) * b * h];
                    let c_now = &cs[(s + 1) * b * h..(s + 2) * b * h];
                    // dz replaces the gates in `act` (see `dz_in_act`).
                    lstm_step_backward(a, c_prev, c_now, dh, dc, h);
                    if any_masked {
                        zero_masked(a);
                    }
                    if s > 0 || init {
                        gemm_packed(b, a, &pack.bwd, dh, false);
                    }
                }
                CellKind::SimpleRnn => {
                    tanh_step_backward(a, dh, dzs);
                    if any_masked {
                        zero_masked(dzs);
                    }
                    if s > 0 || init {
                        gemm_packed(b, dzs, &pack.bwd, dh, false);
                    }
                }
                CellKind::Gru => {
                    let dzhs = &mut dzh[s * b * gh..(s + 1) * b * gh];
                    let hpn_s = &hpn[s * b * h..(s + 1) * b * h];
                    gru_step_backward(a, hpn_s, h_prev, dh, dzs, dzhs, h);
                    if any_masked {
                        zero_masked(dzs);
                        zero_masked(dzhs);
                    }
                    // dh now holds the direct path dh*z; add the recurrent-projection path.
                    if s > 0 || init {
                        gemm_packed(b, dzhs, &pack.bwd, dh, true);
                    }
                }
            }
            if any_masked {
                for r in (0..b).filter(|&r| masked(s, r)) {
                    dh[r * h..(r + 1) * h].copy_from_slice(&keep[r * h..(r + 1) * h]);
                    dc[r * h..(r + 1) * h].copy_from_slice(&keep[(b + r) * h..(b + r + 1) * h]);
                }
            }
            let dz_step: &[R] = if dz_in_act { a } else { dzs };
            match input {
                RnnInput::Symbols(sym) => {
                    add_rows_by_index(input_sum, dz_step, &sym[s * b..(s + 1) * b], gh)
                }
                RnnInput::Repeat(_) => add_assign_simd(input_sum, dz_step),
                RnnInput::Seq(_) => {}
            }
        }
        // The gates are gone: a second backward needs a new forward.
        *gates_kept = !dz_in_act;
        // Weight gradients, one GEMM over all steps. hs[0] = 0, so step 0 adds nothing to dW_hh.
        let dz_all = if dz_in_act {
            &act[..t * b * gh]
        } else {
            &dz[..t * b * gh]
        };
        let dzh_all: &[R] = if self.cell == CellKind::Gru {
            &dzh[..t * b * gh]
        } else {
            dz_all
        };
        // (With an initial state, step 0 contributes too; dh and dc are then its gradient.)
        let first = if init { 0 } else { 1 };
        if t > first {
            gemm(
                gh,
                (t - first) * b,
                h,
                R::ONE,
                &dzh_all[first * b * gh..],
                Op::T,
                &hs[first * b * h..t * b * h],
                Op::N,
                R::ONE,
                self.w_hh.of_mut(grad),
            );
        }
        if let Some(bh) = self.b_hh {
            col_sum_add(dzh_all, gh, bh.of_mut(grad));
        }
        match input {
            RnnInput::Seq(_) => col_sum_add(dz_all, gh, self.b_ih.of_mut(grad)),
            _ => col_sum_add(input_sum, gh, self.b_ih.of_mut(grad)),
        }
        match (input, d_input) {
            (RnnInput::Symbols(_), _) => {
                // dW_ih[:, v] += the sum of dz rows whose symbol is v (accumulated in the loop).
                let gw = self.w_ih.of_mut(grad);
                for g in 0..gh {
                    for v in 0..self.input {
                        gw[g * self.input + v] += table[v * gh + g];
                    }
                }
            }
            (RnnInput::Seq(x), d_in) => {
                gemm(
                    gh,
                    t * b,
                    self.input,
                    R::ONE,
                    dz_all,
                    Op::T,
                    x,
                    Op::N,
                    R::ONE,
                    self.w_ih.of_mut(grad),
                );
                if let RnnInputGrad::Dense(dx) = d_in {
                    gemm_packed(t * b, dz_all, &pack.ih_bwd, dx, false);
                }
            }
            (RnnInput::Repeat(x), d_in) => {
                // The sum of dz over steps (accumulated in the loop).
                let dsum: &[R] = input_sum;
                gemm(
                    gh,
                    b,
                    self.input,
                    R::ONE,
                    dsum,
                    Op::T,
                    x,
                    Op::N,
                    R::ONE,
                    self.w_ih.of_mut(grad),
                );
                if let RnnInputGrad::Dense(dx) = d_in {
                    gemm_packed(b, dsum, &pack.ih_bwd, dx, false);
                }
            }
        }
    }
}

/// Preallocated activations and scratch for one layer; grows on demand, never shrinks.
#[derive(Clone, Debug, Default)]
pub struct RnnCache<R> {
    /// `[T, B, G*H]` pre-activations, then gate activations (LSTM i,f,g,o; GRU r,z,n; RNN h);
    /// after a forward without backward to come, a fused LSTM's last step's are in slot 0;
    /// after an LSTM's backward, the gates' gradients (its `dz`).
    act: AVec<R>,
    /// `[T+1, B, H]`.
    hs: AVec<R>,
    /// LSTM `[T+1, B, H]` cell states.
    cs: AVec<R>,
    /// GRU `[T, B, H]`: `h W_hn^T + b_hn`, kept for backward.
    hpn: AVec<R>,
    /// `[B, G*H]`: repeated-input projection; in backward, its summed gradient.
    xp: AVec<R>,
    /// GRU `[B, G*H]` recurrent projection of one step.
    hp: AVec<R>,
    /// `[V, G*H]` symbol gradient accumulator (backward; the forward's table is `RnnPack::table`).
    table: AVec<R>,
    /// `[T, B, G*H]` gradients of the input-side pre-activations (GRU and SimpleRNN; an LSTM
    /// writes them over its gates in `act`, and leaves this empty).
    dz: AVec<R>,
    /// GRU `[T, B, G*H]` gradients of the recurrent-side pre-activations.
    dzh: AVec<R>,
    dh: AVec<R>,
    dc: AVec<R>,
    /// The initial state `[B, H]` (h, and c for an LSTM) when `has_init`; zeros otherwise.
    init_h: AVec<R>,
    init_c: AVec<R>,
    has_init: bool,
    /// An extra gradient for the LSTM's last cell state (empty: none).
    d_last_c: AVec<R>,
    /// `[T, B]` step mask when `has_mask` (0: padding, the row keeps its state through the step).
    mask: Vec<u8>,
    has_mask: bool,
    /// Backward scratch: the state gradients of masked rows, carried past their step.
    keep: AVec<R>,
    /// `[T, B]`: which row of the symbol table (`RnnPack::table`) or of `xp` each LSTM row adds
    /// in its step kernel.
    x_rows: Vec<u32>,
    /// Set by `set_no_backward`; `gates_kept`: whether the last forward kept every step's gates
    /// (and no LSTM backward has overwritten them with their gradients since).
    no_backward: bool,
    gates_kept: bool,
}

impl<R: Real> RnnCache<R> {
    /// Starts the next `forward` from this state instead of zeros (`c0` only for an LSTM;
    /// `None` there means a zero cell). After `backward`, `initial_state_grad` holds its gradient.
    pub fn set_initial_state(&mut self, h0: &[R], c0: Option<&[R]>) {
        self.init_h.clear();
        self.init_h.extend_from_slice(h0);
        self.init_c.clear();
        match c0 {
            Some(c) => self.init_c.extend_from_slice(c),
            None => self.init_c.resize(h0.len(), R::ZERO),
        }
        self.has_init = true;
    }

    /// [`RnnCache::set_initial_state`] with row `r` of the state taken from row `rows[r]` of
    /// `h_all` (and `c_all`), `[_, H]` each: states shared by several rows, gathered.
    pub fn set_initial_state_gathered(
        &mut self,
        h_all: &[R],
        c_all: Option<&[R]>,
        rows: &[u32],
        h: usize,
    ) {
        let gather = |dst: &mut AVec<R>, src: &[R]| {
            dst.resize(rows.len() * h, R::ZERO);
            for (d, &r) in dst.chunks_exact_mut(h).zip(rows) {
                d.copy_from_slice(&src[r as usize * h..(r as usize + 1) * h]);
            }
        };
        gather(&mut self.init_h, h_all);
        match c_all {
            Some(c) => gather(&mut self.init_c, c),
            None => {
                self.init_c.clear();
                self.init_c.resize(rows.len() * h, R::ZERO);
            }
        }
        self.has_init = true;
    }

    /// Masks steps of the next `forward` and `backward`: where `mask[s * B + r]` is 0, row `r`
    /// skips step `s` (state and output carried over unchanged, no gradient to the weights;
    /// Keras `Masking`). `None` runs every step.
    pub fn set_mask(&mut self, mask: Option<&[u8]>) {
        self.mask.clear();
        if let Some(m) = mask {
            self.mask.extend_from_slice(m);
        }
        self.has_mask = mask.is_some();
    }

    /// Back to a zero initial state.
    pub fn clear_initial_state(&mut self) {
        self.has_init = false;
    }

    /// Promises that no `backward` follows the next forward passes (inference), so that they
    /// need not keep every step's gates; `backward` after such a pass panics.
    pub fn set_no_backward(&mut self, yes: bool) {
        self.no_backward = yes;
    }

    /// An extra loss gradient for the LSTM's last cell state, used by the next `backward`
    /// (`None`: no gradient reaches the cell directly).
    pub fn set_last_cell_grad(&mut self, dc: Option<&[R]>) {
        self.d_last_c.clear();
        if let Some(d) = dc {
            self.d_last_c.extend_from_slice(d);
        }
    }

    /// After `backward` with an initial state: the gradients of h0 and (LSTM) c0, `[B, H]` each.
    pub fn initial_state_grad(&self, b: usize, h: usize) -> (&[R], &[R]) {
        assert!(self.has_init, "no initial state was set");
        (&self.dh[..b * h], &self.dc[..b * h])
    }
    fn ensure(&mut self, layer: &RnnLayer, b: usize, t: usize) {
        let (h, gh) = (layer.hidden, layer.gh());
        let grow = |v: &mut AVec<R>, n: usize| {
            if v.len() < n {
                v.resize(n, R::ZERO)
            }
        };
        grow(&mut self.act, t * b * gh);
        grow(&mut self.hs, (t + 1) * b * h);
        grow(&mut self.xp, b * gh);
        if layer.cell == CellKind::Lstm {
            grow(&mut self.cs, (t + 1) * b * h);
        }
        if layer.cell == CellKind::Gru {
            grow(&mut self.hpn, t * b * h);
            grow(&mut self.hp, b * gh);
        }
    }

    /// The gradient buffers, allocated only when a backward pass runs (inference never pays).
    fn ensure_backward(&mut self, layer: &RnnLayer, b: usize, t: usize) {
        let (h, gh) = (layer.hidden, layer.gh());
        let grow = |v: &mut AVec<R>, n: usize| {
            if v.len() < n {
                v.resize(n, R::ZERO)
            }
        };
        if layer.cell != CellKind::Lstm {
            grow(&mut self.dz, t * b * gh);
        }
        grow(&mut self.dh, b * h);
        grow(&mut self.dc, b * h);
        if layer.cell == CellKind::Gru {
            grow(&mut self.dzh, t * b * gh);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<R>()
            * [
                &self.act,
                &self.hs,
                &self.cs,
                &self.hpn,
                &self.xp,
                &self.hp,
                &self.table,
                &self.dz,
                &self.dzh,
                &self.dh,
                &self.dc,
                &self.init_h,
                &self.init_c,
                &self.d_last_c,
                &self.keep,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
    }
}

#[inline(always)]
pub(crate) fn add_assign<R: Real>(dst: &mut [R], src: &[R]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

/// `out[j] += sum over rows of m[row, j]` for a row-major `[rows, cols]` matrix.
#[inline]
pub(crate) fn col_sum_add<R: Real>(m: &[R], cols: usize, out: &mut [R]) {
    for row in m.chunks_exact(cols) {
        add_assign(out, row);
    }
}

simd_dispatch!(add_assign_simd, add_assign_avx512, add_assign_avx2, add_assign, (dst: &mut [R], src: &[R]));
simd_dispatch!(add_rows_by_index, add_rows_by_index_avx512, add_rows_by_index_avx2, add_rows_by_index_generic, (out: &mut [R], rows: &[R], index: &[u8], cols: usize));

/// `out[index[r]] += rows[r]` for each row `r` of a row-major `[n, cols]` matrix, in order.
#[inline(always)]
fn add_rows_by_index_generic<R: Real>(out: &mut [R], rows: &[R], index: &[u8], cols: usize) {
    for (row, &v) in rows.chunks_exact(cols).zip(index) {
        add_assign(&mut out[v as usize * cols..(v as usize + 1) * cols], row);
    }
}

mod cells;
use cells::*;

#[cfg(test)]
mod tests;
