//! A decoder-only transformer over token, segment and coupled-position sequences (pre-norm).
//!
//! ```text
//! x      = tok[token] + seg[segment]                          [N*T, D]   (no position table)
//! block  : x = x + attn(rmsnorm1(x), pos)                     RelSelfAttention (mha.rs)
//!          x = x + ffn(rmsnorm2(x))                           GatedFfn (ffn.rs)
//! logits = rmsnorm_f(x) @ head^T                              [N*Tq, V]
//! ```
//! Positions reach the model only through the attention's relative bias buckets, so nothing it
//! learns is tied to absolute lengths. The last block computes queries, FFN and logits only for
//! rows `q_from..T` (the scored rows); earlier blocks compute every row.
//!
//! Tensor names follow the PyTorch reference (`tok.weight`, `seg.weight`,
//! `blocks.0.qkv.weight`, `blocks.0.bias`, `blocks.0.c`, `nf.weight`, `head.weight`, ...).
//! [`Transformer::decode_step`] runs one row per sequence against key/value caches (linear work
//! per generated token); a test checks it against the full forward pass.

use super::embedding::Embedding;
use super::ffn::{grow, FfnCache, GatedFfn};
use super::gemm::{gemm, Op};
use super::loss::{softmax_xent_forward_backward, LossSums};
use super::mha::{KvCache, MhaCache, RelSelfAttention};
use super::norm::RmsNorm;
use super::params::{standard_normal, ParamLayout, ParamRef};
use super::Real;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The transformer's sizes (vocabulary and segments come from the format).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    /// Model width D.
    pub dim: usize,
    pub heads: usize,
    /// Feed-forward width F.
    pub ffn: usize,
    pub layers: usize,
    /// Local attention: each query sees only keys within this coupled-position distance (and
    /// tokens without a position, BOS and EOS), and its length scale counts only those. 0: every
    /// earlier key (the PyTorch reference).
    pub local_window: usize,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        TransformerConfig {
            dim: 128,
            heads: 4,
            ffn: 512,
            layers: 1,
            local_window: 0,
        }
    }
}

impl TransformerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.dim == 0 || self.heads == 0 || self.ffn == 0 || self.layers == 0 {
            return Err("transformer dim, heads, ffn and layers must be at least 1".into());
        }
        if !self.dim.is_multiple_of(self.heads) {
            return Err(format!(
                "transformer dim {} does not divide into {} heads",
                self.dim, self.heads
            ));
        }
        if self.dim > 4096 || self.ffn > 16384 || self.layers > 64 || self.heads > 64 {
            return Err(
                "transformer too large (dim <= 4096, ffn <= 16384, layers and heads <= 64)".into(),
            );
        }
        Ok(())
    }
}

/// One pre-norm block.
#[derive(Clone, Debug)]
pub struct Block {
    pub n1: RmsNorm,
    pub attn: RelSelfAttention,
    pub n2: RmsNorm,
    pub ffn: GatedFfn,
}

/// The model: handles into one flat parameter vector.
#[derive(Clone, Debug)]
pub struct Transformer {
    pub cfg: TransformerConfig,
    pub vocab: usize,
    pub segments: usize,
    pub layout: ParamLayout,
    pub tok: Embedding,
    pub seg: Embedding,
    pub blocks: Vec<Block>,
    pub nf: RmsNorm,
    pub head: ParamRef,
    /// Run the first block's norm and `[q | k | v]` projection once per distinct (token,
    /// segment) pair instead of once per row, when there are at most half as many pairs as rows.
    /// Its input is `tok[token] + seg[segment]` and nothing else (positions enter only through
    /// the attention bias), so every row of a pair has the same projection; the backward pass
    /// sums the rows' gradients per pair first. Same numbers up to summation order; `false`
    /// computes every row (the reference path the tests compare against).
    pub class_inputs: bool,
}

/// One block's activations.
#[derive(Clone, Debug, Default)]
struct LayerCache<R> {
    /// `[N*T, D]` block input (not written for the first block run per class).
    x_in: Vec<R>,
    /// `[N*T, D]` rmsnorm1(x_in), `[N*T]` its rstd; `[classes, D]` and `[classes]` for the
    /// first block run per class.
    h1: Vec<R>,
    r1: Vec<R>,
    attn: MhaCache<R>,
    /// `[N*Tq, D]` after the attention residual.
    x_mid: Vec<R>,
    h2: Vec<R>,
    r2: Vec<R>,
    ffn: FfnCache<R>,
}

/// Activations and scratch of one worker; grows on demand, reused across batches.
#[derive(Clone, Debug, Default)]
pub struct Workspace<R> {
    layers: Vec<LayerCache<R>>,
    /// `[N*Tq, D]` the last block's output, its final norm and rstd.
    x_out: Vec<R>,
    hf: Vec<R>,
    rf: Vec<R>,
    /// `[N*Tq, V]` logits (after `loss_backward`: their gradient).
    pub logits: Vec<R>,
    tmp: Vec<R>,
    dx: Vec<R>,
    dx_in: Vec<R>,
    dh: Vec<R>,
    /// `[N*Tq]` argmax of each scored row.
    pub argmax: Vec<u8>,
    /// With [`Transformer::class_inputs`]: each row's (token, segment) class `[N*T]`, each
    /// class's input `[classes, D]`, and its gradient.
    class: Vec<u16>,
    /// `[classes]` each class's token and segment.
    class_tok: Vec<u8>,
    class_seg: Vec<u8>,
    class_x: Vec<R>,
    class_dx: Vec<R>,
    /// Classes the last forward ran the first block over (0: it ran every row).
    classes: usize,
    // The shape of the last forward.
    n: usize,
    t: usize,
    q_from: usize,
}

/// Incremental decoding state of `N` sequences.
#[derive(Clone, Debug)]
pub struct DecodeState<R> {
    pub n: usize,
    kv: Vec<KvCache<R>>,
    attn: MhaCache<R>,
    ffn: FfnCache<R>,
    x: Vec<R>,
    h: Vec<R>,
    r: Vec<R>,
    tmp: Vec<R>,
}

impl DecodeState<f32> {
    /// Bytes held by the key/value caches (for sizing decoding batches).
    pub fn bytes_per_sequence(dim: usize, layers: usize, cap: usize) -> usize {
        layers * cap * (2 * dim * 4 + 4)
    }
}

impl Transformer {
    pub fn new(cfg: &TransformerConfig, vocab: usize, segments: usize) -> Result<Self, String> {
        cfg.validate()?;
        let mut layout = ParamLayout::default();
        let d = cfg.dim;
        let tok = Embedding::new(&mut layout, "tok", vocab, d);
        let seg = Embedding::new(&mut layout, "seg", segments, d);
        let blocks = (0..cfg.layers)
            .map(|l| {
                let pre = format!("blocks.{l}");
                Block {
                    n1: RmsNorm::new(&mut layout, &format!("{pre}.n1"), d),
                    attn: RelSelfAttention {
                        window: (cfg.local_window > 0).then_some(cfg.local_window as u32),
                        ..RelSelfAttention::new(&mut layout, &pre, d, cfg.heads)
                    },
                    n2: RmsNorm::new(&mut layout, &format!("{pre}.n2"), d),
                    ffn: GatedFfn::new(&mut layout, &pre, d, cfg.ffn),
                }
            })
            .collect();
        let nf = RmsNorm::new(&mut layout, "nf", d);
        let head = layout.add("head.weight", &[vocab, d]);
        Ok(Transformer {
            cfg: cfg.clone(),
            vocab,
            segments,
            layout,
            tok,
            seg,
            blocks,
            nf,
            head,
            class_inputs: true,
        })
    }

    pub fn param_count(&self) -> usize {
        self.layout.total
    }

    /// The reference's initialisation: every matrix and table normal with std 0.02, norm gains
    /// one, attention biases zero, `c = 1 / ln 32`.
    pub fn init_params<R: Real>(&self, seed: u64) -> Vec<R> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![R::ZERO; self.layout.total];
        let std = 0.02;
        let normal = |r: ParamRef, p: &mut [R], rng: &mut rand_chacha::ChaCha8Rng| {
            for v in r.of_mut(p) {
                *v = R::from_f64(std * standard_normal(rng));
            }
        };
        normal(self.tok.weight, &mut p, &mut rng);
        normal(self.seg.weight, &mut p, &mut rng);
        for b in &self.blocks {
            b.n1.init(&mut p);
            b.attn.init(&mut p, &mut rng, std);
            b.n2.init(&mut p);
            normal(b.ffn.w_in, &mut p, &mut rng);
            normal(b.ffn.w_out, &mut p, &mut rng);
        }
        self.nf.init(&mut p);
        normal(self.head, &mut p, &mut rng);
        p
    }

    /// Ranges of the parameters that weight decay applies to (matrices and tables, not norm
    /// gains, attention biases or scales).
    pub fn decay_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.layout
            .specs
            .iter()
            .filter(|s| s.shape.len() == 2 && !s.name.ends_with(".bias"))
            .map(|s| s.range())
            .collect()
    }

    /// `x = tok[tokens] + seg[segs]`, one row per symbol pair (`tmp` is scratch).
    fn embed<R: Real>(
        &self,
        p: &[R],
        tokens: &[u8],
        segs: &[u8],
        x: &mut Vec<R>,
        tmp: &mut Vec<R>,
    ) {
        let len = tokens.len() * self.cfg.dim;
        grow(x, len);
        self.tok.forward(p, tokens, x);
        grow(tmp, len);
        self.seg.forward(p, segs, tmp);
        for (a, b) in x[..len].iter_mut().zip(&tmp[..len]) {
            *a += *b;
        }
    }

    /// Forward over `n` sequences of `t` tokens (`tokens`, `segs`, `pos` each `[N*T]`), scoring
    /// rows `q_from..T`: logits `[N*Tq, V]` are left in `ws.logits`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<R: Real>(
        &self,
        p: &[R],
        ws: &mut Workspace<R>,
        tokens: &[u8],
        segs: &[u8],
        pos: &[u32],
        n: usize,
        t: usize,
        q_from: usize,
    ) {
        assert!(q_from < t && tokens.len() >= n * t && segs.len() >= n * t && pos.len() >= n * t);
        let d = self.cfg.dim;
        let nl = self.blocks.len();
        (ws.n, ws.t, ws.q_from) = (n, t, q_from);
        ws.layers.resize_with(nl, LayerCache::default);
        let nc = self.vocab * self.segments;
        ws.classes = if self.class_inputs
            && 2 * nc <= n * t
            && nc <= u16::MAX as usize
            && self.vocab <= 256
            && self.segments <= 256
        {
            nc
        } else {
            0
        };
        if ws.classes > 0 {
            let s = self.segments;
            ws.class.clear();
            ws.class.extend(
                tokens[..n * t]
                    .iter()
                    .zip(&segs[..n * t])
                    .map(|(&tk, &sg)| {
                        assert!(
                            (tk as usize) < self.vocab && (sg as usize) < s,
                            "token {tk} or segment {sg} outside the embeddings"
                        );
                        (tk as usize * s + sg as usize) as u16
                    }),
            );
            // Class k is token k / S in segment k % S.
            ws.class_tok.clear();
            ws.class_tok.extend((0..nc).map(|k| (k / s) as u8));
            ws.class_seg.clear();
            ws.class_seg.extend((0..nc).map(|k| (k % s) as u8));
            self.embed(
                p,
                &ws.class_tok,
                &ws.class_seg,
                &mut ws.class_x,
                &mut ws.tmp,
            );
        } else {
            self.embed(
                p,
                &tokens[..n * t],
                &segs[..n * t],
                &mut ws.layers[0].x_in,
                &mut ws.tmp,
            );
        }
        for (l, blk) in self.blocks.iter().enumerate() {
            let qf = if l + 1 == nl { q_from } else { 0 };
            let tq = t - qf;
            let (head, tail) = ws.layers.split_at_mut(l + 1);
            let lc = &mut head[l];
            let nc = if l == 0 { ws.classes } else { 0 };
            if nc > 0 {
                grow(&mut lc.h1, nc * d);
                grow(&mut lc.r1, nc);
                blk.n1.forward(p, &ws.class_x, nc, &mut lc.h1, &mut lc.r1);
                blk.attn
                    .project_classes(p, &lc.h1, nc, &ws.class, &mut lc.attn);
            } else {
                grow(&mut lc.h1, n * t * d);
                grow(&mut lc.r1, n * t);
                blk.n1.forward(p, &lc.x_in, n * t, &mut lc.h1, &mut lc.r1);
                blk.attn.project(p, &lc.h1, n * t, &mut lc.attn);
            }
            grow(&mut lc.x_mid, n * tq * d);
            blk.attn
                .attend(p, pos, n, t, qf, &mut lc.attn, &mut lc.x_mid);
            for b in 0..n {
                for r in 0..tq {
                    let row = b * t + qf + r;
                    let src = if nc > 0 {
                        let k = ws.class[row] as usize;
                        &ws.class_x[k * d..(k + 1) * d]
                    } else {
                        &lc.x_in[row * d..(row + 1) * d]
                    };
                    let dst = &mut lc.x_mid[(b * tq + r) * d..(b * tq + r + 1) * d];
                    for (a, s) in dst.iter_mut().zip(src) {
                        *a += *s;
                    }
                }
            }
            grow(&mut lc.h2, n * tq * d);
            grow(&mut lc.r2, n * tq);
            blk.n2.forward(p, &lc.x_mid, n * tq, &mut lc.h2, &mut lc.r2);
            let out = match tail.first_mut() {
                Some(next) => &mut next.x_in,
                None => &mut ws.x_out,
            };
            grow(out, n * tq * d);
            grow(&mut ws.tmp, n * tq * d);
            blk.ffn.forward(p, &lc.h2, n * tq, &mut lc.ffn, &mut ws.tmp);
            for ((o, m), f) in out[..n * tq * d].iter_mut().zip(&lc.x_mid).zip(&ws.tmp) {
                *o = *m + *f;
            }
        }
        let tq = t - q_from;
        grow(&mut ws.hf, n * tq * d);
        grow(&mut ws.rf, n * tq);
        self.nf
            .forward(p, &ws.x_out, n * tq, &mut ws.hf, &mut ws.rf);
        grow(&mut ws.logits, n * tq * self.vocab);
        gemm(
            n * tq,
            d,
            self.vocab,
            R::ONE,
            &ws.hf,
            Op::N,
            self.head.of(p),
            Op::T,
            R::ZERO,
            &mut ws.logits,
        );
    }

    /// After `forward`: softmax cross-entropy against `targets [N*Tq]` (loss summed, gradient
    /// scaled by `scale`), then the backward pass, adding every parameter's gradient into `grad`.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_backward<R: Real>(
        &self,
        p: &[R],
        ws: &mut Workspace<R>,
        tokens: &[u8],
        segs: &[u8],
        targets: &[u8],
        scale: R,
        grad: &mut [R],
    ) -> LossSums {
        let (n, t, q_from) = (ws.n, ws.t, ws.q_from);
        let (d, v) = (self.cfg.dim, self.vocab);
        let tq = t - q_from;
        let rows = n * tq;
        ws.argmax.resize(rows, 0);
        let sums = softmax_xent_forward_backward(
            &mut ws.logits[..rows * v],
            &targets[..rows],
            None,
            v,
            scale,
            &mut ws.argmax,
        );
        let dlogits = &ws.logits[..rows * v];
        gemm(
            v,
            rows,
            d,
            R::ONE,
            dlogits,
            Op::T,
            &ws.hf,
            Op::N,
            R::ONE,
            self.head.of_mut(grad),
        );
        grow(&mut ws.dh, rows * d);
        gemm(
            rows,
            v,
            d,
            R::ONE,
            dlogits,
            Op::N,
            self.head.of(p),
            Op::N,
            R::ZERO,
            &mut ws.dh,
        );
        grow(&mut ws.dx, rows * d);
        ws.dx[..rows * d].fill(R::ZERO);
        self.nf
            .backward(p, &ws.x_out, &ws.rf, &ws.dh, rows, grad, &mut ws.dx);
        let nl = self.blocks.len();
        for (l, blk) in self.blocks.iter().enumerate().rev() {
            let qf = if l + 1 == nl { q_from } else { 0 };
            let tq = t - qf;
            let lc = &mut ws.layers[l];
            // x_out = x_mid + ffn(n2(x_mid)): dx flows to x_mid directly and through the FFN.
            grow(&mut ws.dh, n * t * d);
            ws.dh[..n * tq * d].fill(R::ZERO);
            blk.ffn
                .backward(p, &lc.h2, &ws.dx, n * tq, &mut lc.ffn, grad, &mut ws.dh);
            blk.n2
                .backward(p, &lc.x_mid, &lc.r2, &ws.dh, n * tq, grad, &mut ws.dx);
            // x_mid = x_in[scored rows] + attn(n1(x_in)).
            let nc = if l == 0 { ws.classes } else { 0 };
            if nc > 0 {
                // The first block per class: x_in = tok[token] + seg[segment].
                blk.attn
                    .backward_attend(p, n, t, qf, &mut lc.attn, &ws.dx, grad);
                grow(&mut ws.dh, nc * d);
                blk.attn.backward_project_classes(
                    p,
                    &lc.h1,
                    nc,
                    &ws.class,
                    &mut lc.attn,
                    grad,
                    &mut ws.dh,
                );
                grow(&mut ws.class_dx, nc * d);
                let cdx = &mut ws.class_dx[..nc * d];
                cdx.fill(R::ZERO);
                for b in 0..n {
                    for r in 0..tq {
                        let k = ws.class[b * t + qf + r] as usize;
                        let src = &ws.dx[(b * tq + r) * d..(b * tq + r + 1) * d];
                        for (a, v) in cdx[k * d..(k + 1) * d].iter_mut().zip(src) {
                            *a += *v;
                        }
                    }
                }
                blk.n1
                    .backward(p, &ws.class_x, &lc.r1, &ws.dh, nc, grad, cdx);
                self.tok.backward(&ws.class_tok, cdx, grad);
                self.seg.backward(&ws.class_seg, cdx, grad);
                return sums;
            }
            grow(&mut ws.dx_in, n * t * d);
            ws.dx_in[..n * t * d].fill(R::ZERO);
            for b in 0..n {
                let src = &ws.dx[b * tq * d..(b + 1) * tq * d];
                ws.dx_in[(b * t + qf) * d..(b + 1) * t * d].copy_from_slice(src);
            }
            ws.dh[..n * t * d].fill(R::ZERO);
            blk.attn
                .backward(p, &lc.h1, n, t, qf, &mut lc.attn, &ws.dx, grad, &mut ws.dh);
            blk.n1
                .backward(p, &lc.x_in, &lc.r1, &ws.dh, n * t, grad, &mut ws.dx_in);
            std::mem::swap(&mut ws.dx, &mut ws.dx_in);
        }
        self.tok
            .backward(&tokens[..n * t], &ws.dx[..n * t * d], grad);
        self.seg.backward(&segs[..n * t], &ws.dx[..n * t * d], grad);
        sums
    }

    /// A decoding state for `n` sequences of up to `cap` tokens.
    pub fn decode_start<R: Real>(&self, n: usize, cap: usize) -> DecodeState<R> {
        DecodeState {
            n,
            kv: (0..self.blocks.len())
                .map(|_| KvCache::new(n, cap, self.cfg.dim))
                .collect(),
            attn: MhaCache::default(),
            ffn: FfnCache::default(),
            x: Vec::new(),
            h: Vec::new(),
            r: Vec::new(),
            tmp: Vec::new(),
        }
    }
    /// The attention weights of block `layer` in the last [`Transformer::forward`] of `ws`:
    /// `[N, H, Tq, T]`, each query row's softmax over the keys it sees (`Tq` is `T - q_from`
    /// for the last block, which computes the scored rows only, and `T` for the others).
    pub fn attention_probs<'a, R: Real>(&self, ws: &'a Workspace<R>, layer: usize) -> &'a [R] {
        let tq = if layer + 1 == self.blocks.len() {
            ws.t - ws.q_from
        } else {
            ws.t
        };
        let rows = ws.n * self.cfg.heads * tq * ws.t;
        &ws.layers[layer].attn.probs[..rows]
    }

    /// Feeds one token per sequence (`tokens`, `segs`, `pos` each `[N]`) and writes the logits of
    /// the next token, `[N, V]`, into `logits`.
    pub fn decode_step<R: Real>(
        &self,
        p: &[R],
        st: &mut DecodeState<R>,
        tokens: &[u8],
        segs: &[u8],
        pos: &[u32],
        logits: &mut [R],
    ) {
        let (n, d) = (st.n, self.cfg.dim);
        grow(&mut st.x, n * d);
        grow(&mut st.h, n * d);
        grow(&mut st.r, n);
        grow(&mut st.tmp, n * d);
        self.tok.forward(p, &tokens[..n], &mut st.x);
        self.seg.forward(p, &segs[..n], &mut st.tmp);
        for (a, b) in st.x[..n * d].iter_mut().zip(&st.tmp) {
            *a += *b;
        }
        for (blk, kv) in self.blocks.iter().zip(st.kv.iter_mut()) {
            blk.n1.forward(p, &st.x, n, &mut st.h, &mut st.r);
            blk.attn
                .step(p, &st.h, &pos[..n], kv, &mut st.attn, &mut st.tmp);
            for (a, b) in st.x[..n * d].iter_mut().zip(&st.tmp) {
                *a += *b;
            }
            blk.n2.forward(p, &st.x, n, &mut st.h, &mut st.r);
            blk.ffn.infer(p, &st.h, n, &mut st.ffn, &mut st.tmp);
            for (a, b) in st.x[..n * d].iter_mut().zip(&st.tmp) {
                *a += *b;
            }
        }
        self.nf.forward(p, &st.x, n, &mut st.h, &mut st.r);
        gemm(
            n,
            d,
            self.vocab,
            R::ONE,
            &st.h,
            Op::N,
            self.head.of(p),
            Op::T,
            R::ZERO,
            logits,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use crate::nn::mha::NO_POSITION;
    use rand::Rng;

    fn tiny(layers: usize) -> Transformer {
        let cfg = TransformerConfig {
            dim: 8,
            heads: 2,
            ffn: 6,
            layers,
            local_window: 0,
        };
        Transformer::new(&cfg, 7, 3).unwrap()
    }

    fn batch(rng: &mut impl Rng, n: usize, t: usize) -> (Vec<u8>, Vec<u8>, Vec<u32>) {
        let tokens: Vec<u8> = (0..n * t).map(|_| rng.random_range(0..7)).collect();
        let segs: Vec<u8> = (0..n * t).map(|_| rng.random_range(0..3)).collect();
        let pos: Vec<u32> = (0..n * t)
            .map(|k| {
                if k % t == 0 {
                    NO_POSITION
                } else {
                    rng.random_range(0..6)
                }
            })
            .collect();
        (tokens, segs, pos)
    }

    #[test]
    fn whole_model_gradients_match_finite_differences() {
        for layers in [1, 2] {
            let m = tiny(layers);
            let mut p: Vec<f64> = m.init_params(5);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
            // Larger weights than the 0.02 init so every path carries a visible gradient.
            for v in p.iter_mut() {
                *v += rng.random_range(-0.4..0.4);
            }
            // 12 rows: every row computed; 48 rows: the first block per (token, segment) class.
            for (n, t, q_from) in [(2, 6, 2), (4, 12, 5)] {
                let (tokens, segs, pos) = batch(&mut rng, n, t);
                let targets: Vec<u8> = (0..n * (t - q_from))
                    .map(|_| rng.random_range(0..7))
                    .collect();
                let loss = |pp: &[f64]| {
                    let mut ws = Workspace::default();
                    m.forward(pp, &mut ws, &tokens, &segs, &pos, n, t, q_from);
                    let mut g = vec![0.0; pp.len()];
                    m.loss_backward(pp, &mut ws, &tokens, &segs, &targets, 1.0, &mut g)
                        .loss
                };
                let mut ws = Workspace::default();
                m.forward(&p, &mut ws, &tokens, &segs, &pos, n, t, q_from);
                assert_eq!(ws.classes > 0, n * t >= 42, "{n}x{t}");
                let mut grad = vec![0.0; p.len()];
                m.loss_backward(&p, &mut ws, &tokens, &segs, &targets, 1.0, &mut grad);
                gradcheck::check(
                    &p,
                    &grad,
                    &gradcheck::sample_indices(p.len(), 3),
                    1e-5,
                    loss,
                    &format!("transformer, {layers} layers"),
                );
                // Every tensor receives a gradient (embedding rows of unused symbols aside).
                for s in &m.layout.specs {
                    assert!(
                        grad[s.range()].iter().any(|&g| g != 0.0),
                        "{} has no gradient",
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_reused_workspace_gives_the_bits_of_a_fresh_one() {
        // Buffers only grow: a larger batch run per class, then a smaller one per row, then per
        // class again must leave nothing stale behind (f32, window 2).
        let cfg = TransformerConfig {
            local_window: 2,
            ..tiny(1).cfg
        };
        let mut m = Transformer::new(&cfg, 7, 3).unwrap();
        let p: Vec<f32> = m.init_params(9);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let mut reused = Workspace::default();
        for (n, t, q_from, classes) in [(6, 14, 5, true), (3, 9, 2, false), (4, 12, 5, true)] {
            m.class_inputs = classes;
            let (tokens, segs, pos) = batch(&mut rng, n, t);
            let targets: Vec<u8> = (0..n * (t - q_from))
                .map(|_| rng.random_range(0..7))
                .collect();
            let run = |ws: &mut Workspace<f32>| {
                m.forward(&p, ws, &tokens, &segs, &pos, n, t, q_from);
                assert_eq!(ws.classes > 0, classes);
                let mut grad = vec![0.0f32; p.len()];
                m.loss_backward(&p, ws, &tokens, &segs, &targets, 1.0, &mut grad);
                grad
            };
            let fresh = run(&mut Workspace::default());
            assert_eq!(run(&mut reused), fresh, "{n}x{t} classes {classes}");
        }
    }

    #[test]
    fn first_block_per_class_matches_every_row() {
        for layers in [1, 2] {
            let mut m = tiny(layers);
            let mut p: Vec<f64> = m.init_params(7);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
            for v in p.iter_mut() {
                *v += rng.random_range(-0.4..0.4);
            }
            let (n, t, q_from) = (5, 11, 4);
            let (tokens, segs, pos) = batch(&mut rng, n, t);
            let targets: Vec<u8> = (0..n * (t - q_from))
                .map(|_| rng.random_range(0..7))
                .collect();
            let mut run = |classes: bool| {
                m.class_inputs = classes;
                let mut ws = Workspace::default();
                m.forward(&p, &mut ws, &tokens, &segs, &pos, n, t, q_from);
                assert_eq!(ws.classes > 0, classes);
                let logits = ws.logits[..n * (t - q_from) * 7].to_vec();
                let mut grad = vec![0.0; p.len()];
                let sums = m.loss_backward(&p, &mut ws, &tokens, &segs, &targets, 1.0, &mut grad);
                (sums.loss, logits, grad)
            };
            let (by_class, by_row) = (run(true), run(false));
            assert!((by_class.0 - by_row.0).abs() < 1e-12);
            for (x, y) in by_class
                .1
                .iter()
                .zip(&by_row.1)
                .chain(by_class.2.iter().zip(&by_row.2))
            {
                assert!(
                    (x - y).abs() < 1e-12 * (1.0 + y.abs()),
                    "{layers} layers: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn decoding_with_a_cache_matches_the_full_forward_pass() {
        let m = tiny(2);
        let mut p: Vec<f64> = m.init_params(8);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for v in p.iter_mut() {
            *v += rng.random_range(-0.4..0.4);
        }
        let (n, t) = (3, 11);
        let (tokens, segs, pos) = batch(&mut rng, n, t);
        let mut ws = Workspace::default();
        m.forward(&p, &mut ws, &tokens, &segs, &pos, n, t, 0);
        let mut st = m.decode_start::<f64>(n, t);
        let mut logits = vec![0.0; n * 7];
        for i in 0..t {
            let col = |v: &[u8]| (0..n).map(|b| v[b * t + i]).collect::<Vec<u8>>();
            let ps: Vec<u32> = (0..n).map(|b| pos[b * t + i]).collect();
            m.decode_step(&p, &mut st, &col(&tokens), &col(&segs), &ps, &mut logits);
            for b in 0..n {
                for k in 0..7 {
                    let want = ws.logits[(b * t + i) * 7 + k];
                    assert!(
                        (logits[b * 7 + k] - want).abs() < 1e-10,
                        "step {i}, seq {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn reference_sized_model_has_the_reference_parameter_count() {
        // coupling_rel.py with d 128, 4 heads, FFN 512, 1 layer, vocabulary 15 and 4 segments:
        // 266,908 parameters. The parameter count does not depend on anything else.
        let m = Transformer::new(&TransformerConfig::default(), 15, 4).unwrap();
        assert_eq!(m.param_count(), 266_908);
    }
}
