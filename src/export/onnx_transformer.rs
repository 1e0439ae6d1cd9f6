//! The decoder-only seq2seq transformer as an ONNX graph (opset 17, plain operators).
//!
//! Greedy decoding is unrolled as for the teacher-forced RNN decoder: step `s` runs the whole
//! causal forward pass over `question, START, a_0 .. a_{s-1}` (`T_in + 1 + s` tokens) and
//! keeps the last row's logits over the `V` answer symbols; their argmax (the first maximum,
//! as seqcalc) is appended for the next step. Recomputing the prefix at every step costs more
//! than seqcalc's key/value caches but needs no state between steps; the weights are stored
//! once. The constant parts of the attention (the relative bias of every query and key pair,
//! the `c ln(i + 1)` scales, the causal mask) are precomputed for the longest sequence and
//! sliced per step.
//!
//! ```text
//! x      = tok[tokens] + seg[0..L]
//! block  : h = rmsnorm(x) n1;  [q|k|v] = h qkv^T  (heads of D/NH)
//!          s = (q k^T / sqrt(D/NH) + bias[h, bucket(i, j)]) * c[h] ln(i + 1), j <= i
//!          x += (softmax(s) v) o^T;   [g|u] = rmsnorm(x) n2 w_in^T;  x += (gelu_tanh(g) u) w_out^T
//! logits = rmsnorm(x_last) nf head^T
//! ```

use super::onnx::{int, ints, transpose, Graph};
use crate::nn::mha::bucket;
use crate::nn::transformer::Transformer;

/// Writes the transformer's greedy decoding of `question` into `logits` and `probs`.
pub(super) fn transformer_greedy(
    g: &mut Graph,
    tr: &Transformer,
    p: &[f32],
    v: usize,
    t_in: usize,
    t_out: usize,
) {
    let (d, nh, f) = (tr.cfg.dim, tr.cfg.heads, tr.cfg.ffn);
    let dh = d / nh;
    let t = t_in + t_out;
    let tok = g.init_f32("tok.weight", &[tr.vocab, d], tr.tok.weight.of(p));
    let seg = g.init_f32("seg.weight", &[tr.segments, d], tr.seg.weight.of(p));
    // Per block: the bias of each (query, key) pair [NH, T, T], each row's scale [NH, T, 1].
    let mut blocks = Vec::with_capacity(tr.blocks.len());
    for (b, blk) in tr.blocks.iter().enumerate() {
        let a = &blk.attn;
        let (bias, c) = (a.bias.of(p), a.c.of(p));
        let mut pair = vec![0.0f32; nh * t * t];
        let mut scale = vec![0.0f32; nh * t];
        for h in 0..nh {
            for i in 0..t {
                scale[h * t + i] = c[h] * ((i + 1) as f32).ln();
                for j in 0..t {
                    pair[(h * t + i) * t + j] = bias[h * 6 + bucket(i as u32, j as u32)];
                }
            }
        }
        let pre = format!("blocks.{b}");
        blocks.push(BlockNames {
            n1: g.init_f32(&format!("{pre}.n1.weight"), &[d], blk.n1.weight.of(p)),
            qkv_t: g.init_f32(
                &format!("{pre}.qkv.weight_t"),
                &[d, 3 * d],
                &transpose(a.qkv.of(p), 3 * d, d),
            ),
            o_t: g.init_f32(
                &format!("{pre}.o.weight_t"),
                &[d, d],
                &transpose(a.o.of(p), d, d),
            ),
            pair: g.init_f32(&format!("{pre}.pair_bias"), &[nh, t, t], &pair),
            scale: g.init_f32(&format!("{pre}.row_scale"), &[nh, t, 1], &scale),
            n2: g.init_f32(&format!("{pre}.n2.weight"), &[d], blk.n2.weight.of(p)),
            w_in_t: g.init_f32(
                &format!("{pre}.w_in.weight_t"),
                &[d, 2 * f],
                &transpose(blk.ffn.w_in.of(p), 2 * f, d),
            ),
            w_out_t: g.init_f32(
                &format!("{pre}.w_out.weight_t"),
                &[f, d],
                &transpose(blk.ffn.w_out.of(p), d, f),
            ),
            eps: blk.n1.eps as f32,
        });
    }
    let nf = g.init_f32("nf.weight", &[d], tr.nf.weight.of(p));
    let head_t = g.init_f32(
        "head.weight_t",
        &[d, tr.vocab],
        &transpose(tr.head.of(p), tr.vocab, d),
    );
    let mut mask = vec![0.0f32; t * t];
    for i in 0..t {
        for j in i + 1..t {
            mask[i * t + j] = -1e30;
        }
    }
    let mask = g.init_f32("causal_mask", &[t, t], &mask);
    let inv_sqrt = g.init_f32("inv_sqrt_head_dim", &[], &[1.0 / (dh as f32).sqrt()]);
    let half = g.init_f32("half", &[], &[0.5]);
    let one_f = g.init_f32("one_f", &[], &[1.0]);
    let gelu_a = g.init_f32("gelu_a", &[], &[(2.0 / std::f64::consts::PI).sqrt() as f32]);
    let gelu_b = g.init_f32("gelu_b", &[], &[0.044715]);
    let three = g.init_f32("three", &[], &[3.0]);

    // The start column [N, 1] filled with V.
    let shape = g.node("Shape", &["question"], vec![]);
    let zero = g.const_i64("zero", &[0]);
    let one = g.const_i64("one", &[1]);
    let n = g.node("Slice", &[&shape, &zero, &one], vec![]);
    let col_shape = g.node("Concat", &[&n, &one], vec![int("axis", 0)]);
    let v_const = g.const_i64("start_symbol", &[v as i64]);
    let start = g.node("Expand", &[&v_const, &col_shape], vec![]);
    let mut tokens = g.node("Concat", &["question", &start], vec![int("axis", 1)]);

    let norm = |g: &mut Graph, x: &str, w: &str, eps: f32| -> String {
        let sq = g.node("Mul", &[x, x], vec![]);
        let ms = g.node(
            "ReduceMean",
            &[&sq],
            vec![ints("axes", &[-1]), int("keepdims", 1)],
        );
        let eps = g.init_once(&format!("eps_{eps:e}"), &[], || vec![eps]);
        let ms = g.node("Add", &[&ms, &eps], vec![]);
        let r = g.node("Sqrt", &[&ms], vec![]);
        let y = g.node("Div", &[x, &r], vec![]);
        g.node("Mul", &[&y, w], vec![])
    };
    let mut logits_steps = Vec::with_capacity(t_out);
    let mut probs_steps = Vec::with_capacity(t_out);
    for s in 0..t_out {
        let l = (t_in + 1 + s) as i64;
        let len = g.const_i64(&format!("len_{l}"), &[l]);
        let len2 = g.const_i64(&format!("len2_{l}"), &[l, l]);
        let zero2 = g.const_i64("zero2", &[0, 0]);
        let axes12 = g.const_i64("axes_1_2", &[1, 2]);
        let axes01 = g.const_i64("axes_0_1", &[0, 1]);
        let e = g.node("Gather", &[&tok, &tokens], vec![]); // [N, L, D]
        let pos = g.node("Slice", &[&seg, &zero, &len], vec![]); // [L, D]
        let mut x = g.node("Add", &[&e, &pos], vec![]);
        let mask_l = g.node("Slice", &[&mask, &zero2, &len2, &axes01], vec![]); // [L, L]
        for bn in &blocks {
            let h = norm(g, &x, &bn.n1, bn.eps);
            let qkv = g.node("MatMul", &[&h, &bn.qkv_t], vec![]); // [N, L, 3D]
            let split = g.const_i64(&format!("qkv_shape_{l}"), &[0, l, 3, nh as i64, dh as i64]);
            let qkv = g.node("Reshape", &[&qkv, &split], vec![]);
            let qkv = g.node("Transpose", &[&qkv], vec![ints("perm", &[2, 0, 3, 1, 4])]);
            let pick = |g: &mut Graph, k: i64| {
                let idx = g.const_i64_scalar(&format!("index_{k}"), k);
                g.node("Gather", &[&qkv, &idx], vec![int("axis", 0)]) // [N, NH, L, Dh]
            };
            let (q, k, vv) = (pick(g, 0), pick(g, 1), pick(g, 2));
            let kt = g.node("Transpose", &[&k], vec![ints("perm", &[0, 1, 3, 2])]);
            let qk = g.node("MatMul", &[&q, &kt], vec![]);
            let qk = g.node("Mul", &[&qk, &inv_sqrt], vec![]);
            let pair = g.node("Slice", &[&bn.pair, &zero2, &len2, &axes12], vec![]); // [NH, L, L]
            let pre = g.node("Add", &[&qk, &pair], vec![]);
            let scale = g.node("Slice", &[&bn.scale, &zero, &len, &one], vec![]); // [NH, L, 1]
            let sc = g.node("Mul", &[&pre, &scale], vec![]);
            let sc = g.node("Add", &[&sc, &mask_l], vec![]);
            let att = g.node("Softmax", &[&sc], vec![int("axis", -1)]);
            let y = g.node("MatMul", &[&att, &vv], vec![]); // [N, NH, L, Dh]
            let y = g.node("Transpose", &[&y], vec![ints("perm", &[0, 2, 1, 3])]);
            let merge = g.const_i64(&format!("merge_shape_{l}"), &[0, l, d as i64]);
            let y = g.node("Reshape", &[&y, &merge], vec![]);
            let y = g.node("MatMul", &[&y, &bn.o_t], vec![]);
            x = g.node("Add", &[&x, &y], vec![]);
            let h2 = norm(g, &x, &bn.n2, bn.eps);
            let gu = g.node("MatMul", &[&h2, &bn.w_in_t], vec![]); // [N, L, 2F]
            let (f0, f1, f2) = (
                g.const_i64("ffn_0", &[0]),
                g.const_i64("ffn_f", &[f as i64]),
                g.const_i64("ffn_2f", &[2 * f as i64]),
            );
            let last = g.const_i64("axis_last", &[-1]);
            let gate = g.node("Slice", &[&gu, &f0, &f1, &last], vec![]);
            let up = g.node("Slice", &[&gu, &f1, &f2, &last], vec![]);
            // gelu_tanh(g) = g/2 (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
            let cube = g.node("Pow", &[&gate, &three], vec![]);
            let cube = g.node("Mul", &[&cube, &gelu_b], vec![]);
            let inner = g.node("Add", &[&gate, &cube], vec![]);
            let inner = g.node("Mul", &[&inner, &gelu_a], vec![]);
            let th = g.node("Tanh", &[&inner], vec![]);
            let th = g.node("Add", &[&th, &one_f], vec![]);
            let gl = g.node("Mul", &[&gate, &th], vec![]);
            let gl = g.node("Mul", &[&gl, &half], vec![]);
            let act = g.node("Mul", &[&gl, &up], vec![]);
            let y = g.node("MatMul", &[&act, &bn.w_out_t], vec![]);
            x = g.node("Add", &[&x, &y], vec![]);
        }
        let last_row = g.const_i64(&format!("last_row_{l}"), &[l - 1]);
        let xl = g.node("Gather", &[&x, &last_row], vec![int("axis", 1)]); // [N, 1, D]
        let hf = norm(g, &xl, &nf, tr.nf.eps as f32);
        let all = g.node("MatMul", &[&hf, &head_t], vec![]); // [N, 1, V + 1]
                                                             // The start symbol is never an answer: logits over the V answer symbols.
        let (s0, sv) = (g.const_i64("zero", &[0]), g.const_i64("vocab", &[v as i64]));
        let last = g.const_i64("axis_last", &[-1]);
        let logits = g.node("Slice", &[&all, &s0, &sv, &last], vec![]);
        let probs = g.node("Softmax", &[&logits], vec![int("axis", -1)]);
        let chosen = g.node(
            "ArgMax",
            &[&logits],
            vec![
                int("axis", -1),
                int("keepdims", 0),
                int("select_last_index", 0),
            ],
        ); // [N, 1]
        tokens = g.node("Concat", &[&tokens, &chosen], vec![int("axis", 1)]);
        logits_steps.push(logits);
        probs_steps.push(probs);
    }
    let refs: Vec<&str> = logits_steps.iter().map(String::as_str).collect();
    g.node_named("Concat", &refs, vec![int("axis", 1)], "logits");
    let refs: Vec<&str> = probs_steps.iter().map(String::as_str).collect();
    g.node_named("Concat", &refs, vec![int("axis", 1)], "probs");
}

/// One block's initialiser names.
struct BlockNames {
    n1: String,
    qkv_t: String,
    o_t: String,
    pair: String,
    scale: String,
    n2: String,
    w_in_t: String,
    w_out_t: String,
    eps: f32,
}
