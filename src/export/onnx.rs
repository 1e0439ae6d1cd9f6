//! A seq2seq run as an ONNX graph (opset 17): the recurrent encoder-decoders on ONNX's own
//! `LSTM`, `GRU` and `RNN` operators (here), the transformer on plain operators
//! (`onnx_transformer`).
//!
//! ```text
//! question  int64 [N, T_in]   symbol indices, encoded by the run's codec (padded, reversed)
//! x         = Gather(eye(V) or embedding.weight, question^T)              [T_in, N, I]
//! encoder   = LSTM/GRU/RNN(x)              -> Y [T_in, 1, N, E], Y_h [1, N, E] (Y_c)
//! repeat:   d_0 = Expand(Y_h, [T_out, N, E]); d_l = RNN_l(d_{l-1})        [T_out, N, H]
//! greedy:   T_out unrolled steps; step s feeds one-hot(argmax probs_{s-1}) (start: index V)
//!           to layer 0 from the encoder's final state, layers above from zeros
//! top       = attention(d, Y) when the run has it, else d
//! logits    = top @ head.weight^T + head.bias        float [N, T_out, V]
//! probs     = Softmax(logits, axis -1)               float [N, T_out, V]
//! ```
//!
//! The repeat-vector decoder is a fixed-length graph: every output step is computed at once.
//! A teacher-forced decoder answers greedily, each step reading the symbol chosen before, so its
//! `T_out` steps are unrolled into the graph (one single-step RNN node per layer and step, the
//! states passed along), which keeps the graph free of `Loop` and runs in any ONNX runtime.
//!
//! Gate order: seqcalc (like PyTorch) stores LSTM gates as `i, f, g, o` and GRU gates as
//! `r, z, n`; ONNX wants `i, o, f, c` and `z, r, h`, so the blocks of rows are reordered. The
//! GRU uses `linear_before_reset = 1` (PyTorch's and Keras's `reset_after`). ONNX's bias `B` is
//! `[Wb | Rb]`: `bias_ih`, then `bias_hh` (zeros for LSTM and SimpleRNN, whose single Keras bias
//! is `bias_ih`).

use super::onnx_proto::*;
use super::ExportError;
use crate::model::{DecoderKind, Network, RecurrentNet};
use crate::nn::attention::Attention;
use crate::nn::rnn::{CellKind, RnnLayer};
use crate::rundir::LoadedRun;
use prost::Message;

/// ONNX operator set the graph is written for (onnxruntime 1.13 and newer run it).
pub const OPSET: i64 = 17;
/// ONNX IR version of opset 17.
const IR_VERSION: i64 = 8;

/// The ONNX model of a loaded seq2seq run, serialised.
pub fn to_onnx(run: &LoadedRun) -> Result<Vec<u8>, ExportError> {
    let m = &run.model;
    let rnn = match &m.net {
        Network::Recurrent(rnn) => Some(rnn),
        Network::Transformer(_) => None,
    };
    if m.cfg.mask {
        return Err(ExportError::Unsupported(
            "a masked encoder (model.mask), which ONNX export does not cover: ONNX's recurrent operators skip only trailing padding".into(),
        ));
    }
    let p = &run.params;
    let (v, t_in, t_out) = (m.vocab, m.t_in, m.t_out);
    let mut g = Graph::default();
    let question = "question";
    let rnn = match (rnn, &m.net) {
        (Some(rnn), _) => rnn,
        (None, Network::Transformer(tr)) => {
            super::onnx_transformer::transformer_greedy(&mut g, tr, p, v, t_in, t_out);
            return Ok(finish(run, g));
        }
        (None, Network::Recurrent(_)) => unreachable!("a recurrent network has its net"),
    };
    // x: [T_in, N, I].
    let q_t = g.node("Transpose", &[question], vec![ints("perm", &[1, 0])]);
    let table = match &rnn.embedding {
        Some(e) => g.init_f32("embedding.weight", &[e.vocab, e.dim], e.weight.of(p)),
        None => g.init_f32("one_hot", &[v, v], &eye(v)),
    };
    let x = g.node("Gather", &[&table, &q_t], vec![]);
    let enc = g.rnn("encoder", &rnn.encoder, p, &x, None);
    // Encoder outputs [T_in, N, E] (attention reads them).
    let enc_seq = g.squeeze1(&enc.y);
    match m.cfg.decoder {
        DecoderKind::Repeat => {
            let shape = g.init_i64("repeat_shape", &[3], &[t_out as i64, 1, 1]);
            let mut d = g.node("Expand", &[&enc.y_h, &shape], vec![]);
            for (l, layer) in rnn.decoders.iter().enumerate() {
                let out = g.rnn(&format!("decoder_l{l}"), layer, p, &d, None);
                d = g.squeeze1(&out.y);
            }
            // [T_out, N, H] -> [N, T_out, H].
            let d = g.node("Transpose", &[&d], vec![ints("perm", &[1, 0, 2])]);
            let top = g.attend(rnn.attention.as_ref(), p, &d, &enc_seq);
            let logits = g.head(rnn, p, &top, "logits");
            g.node_named("Softmax", &[&logits], vec![int("axis", -1)], "probs");
        }
        DecoderKind::TeacherForced => g.greedy(rnn, p, &enc, &enc_seq, v, t_out),
    }
    Ok(finish(run, g))
}

/// The model around the finished graph, serialised.
fn finish(run: &LoadedRun, g: Graph) -> Vec<u8> {
    let m = &run.model;
    let (v, t_in, t_out) = (m.vocab, m.t_in, m.t_out);
    let question = "question";
    let decoding = match (&m.net, m.cfg.decoder) {
        (Network::Transformer(_), _) => "greedy: output steps unrolled, each a causal pass over the question and the symbols chosen before",
        (_, DecoderKind::Repeat) => "repeat: all output steps at once",
        (_, DecoderKind::TeacherForced) => "greedy: output steps unrolled, each reading the symbol chosen before",
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "seqcalc".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "seqcalc run {:?}: question symbol indices [N, {t_in}] (the codec in metadata \
             seqcalc.codec) to answer logits and probabilities [N, {t_out}, {v}]",
            run.cfg.name
        ),
        graph: Some(GraphProto {
            name: run.cfg.name.clone(),
            input: vec![value_info(question, data_type::INT64, &[None, Some(t_in)])],
            output: vec![
                value_info("logits", data_type::FLOAT, &[None, Some(t_out), Some(v)]),
                value_info("probs", data_type::FLOAT, &[None, Some(t_out), Some(v)]),
            ],
            node: g.nodes,
            initializer: g.inits,
            ..Default::default()
        }),
        metadata_props: vec![
            entry(
                "seqcalc.codec",
                &serde_json::to_string(run.codec.config()).expect("codec serialises"),
            ),
            entry("seqcalc.decoding", decoding),
            entry("seqcalc.run", &run.cfg.name),
        ],
        ..Default::default()
    };
    model.encode_to_vec()
}

/// Outputs of one recurrent node.
struct RnnOut {
    /// `Y` `[T, 1, N, H]`.
    y: String,
    /// `Y_h` `[1, N, H]`.
    y_h: String,
    /// `Y_c` `[1, N, H]` (LSTM).
    y_c: Option<String>,
}

/// Nodes and initialisers under construction; value names are unique by a counter.
#[derive(Default)]
pub(super) struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    count: usize,
    /// The ONNX `W`, `R`, `B` initialisers of each recurrent layer, by prefix.
    weights: Vec<(String, [String; 3])>,
    /// The encoder outputs as `[N, T_in, E]` and `[N, E, T_in]` (attention), once made.
    enc_views: Option<(String, String)>,
}

impl Graph {
    fn fresh(&mut self, op: &str) -> String {
        self.count += 1;
        format!("{}_{}", op.to_lowercase(), self.count)
    }

    pub(super) fn init_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.into(),
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    fn init_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    fn push(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        outputs: Vec<String>,
    ) {
        let name = format!("{}_node_{}", op.to_lowercase(), self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            name,
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A float initialiser added the first time its name is asked for.
    pub(super) fn init_once(
        &mut self,
        name: &str,
        dims: &[usize],
        data: impl FnOnce() -> Vec<f32>,
    ) -> String {
        if self.inits.iter().any(|t| t.name == name) {
            return name.to_string();
        }
        self.init_f32(name, dims, &data())
    }

    /// A node with one output, named by the counter.
    pub(super) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(op);
        self.push(op, inputs, attrs, vec![out.clone()]);
        out
    }

    pub(super) fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        out: &str,
    ) {
        self.push(op, inputs, attrs, vec![out.to_string()]);
    }

    /// `[T, 1, N, H]` -> `[T, N, H]`.
    fn squeeze1(&mut self, y: &str) -> String {
        let axes = self.const_i64("axes_1", &[1]);
        self.node("Squeeze", &[y, &axes], vec![])
    }

    /// An int64 scalar constant shared by name.
    pub(super) fn const_i64_scalar(&mut self, name: &str, value: i64) -> String {
        if !self.inits.iter().any(|t| t.name == name) {
            self.init_i64(name, &[], &[value]);
        }
        name.into()
    }

    /// An int64 constant shared by name.
    pub(super) fn const_i64(&mut self, name: &str, data: &[i64]) -> String {
        if !self.inits.iter().any(|t| t.name == name) {
            self.init_i64(name, &[data.len()], data);
        }
        name.into()
    }

    /// One recurrent layer over `x` (`[T, N, I]`), from `initial` (`h`, and `c` for an LSTM)
    /// or zeros.
    fn rnn(
        &mut self,
        prefix: &str,
        layer: &RnnLayer,
        p: &[f32],
        x: &str,
        initial: Option<(&str, Option<&str>)>,
    ) -> RnnOut {
        let [w, r, b] = self.rnn_weights(prefix, layer, p);
        let op = match layer.cell {
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
            CellKind::SimpleRnn => "RNN",
        };
        let mut attrs = vec![int("hidden_size", layer.hidden as i64)];
        if layer.cell == CellKind::Gru {
            attrs.push(int("linear_before_reset", 1));
        }
        let mut inputs: Vec<&str> = vec![x, &w, &r, &b];
        if let Some((h, c)) = initial {
            inputs.push(""); // sequence_lens: every sequence is full length
            inputs.push(h);
            if let Some(c) = c {
                inputs.push(c);
            }
        }
        let (y, y_h) = (self.fresh(prefix), self.fresh(&format!("{prefix}_h")));
        let mut outputs = vec![y.clone(), y_h.clone()];
        let y_c = (layer.cell == CellKind::Lstm).then(|| self.fresh(&format!("{prefix}_c")));
        outputs.extend(y_c.clone());
        self.push(op, &inputs, attrs, outputs);
        RnnOut { y, y_h, y_c }
    }

    /// ONNX's `W` `[1, G*H, I]`, `R` `[1, G*H, H]` and `B` `[1, 2*G*H]` of a layer, gate blocks
    /// in ONNX's order (added once per layer, shared by the unrolled steps).
    fn rnn_weights(&mut self, prefix: &str, layer: &RnnLayer, p: &[f32]) -> [String; 3] {
        if let Some((_, names)) = self.weights.iter().find(|(n, _)| n == prefix) {
            return names.clone();
        }
        let order: &[usize] = match layer.cell {
            CellKind::Lstm => &[0, 3, 1, 2],
            CellKind::Gru => &[1, 0, 2],
            CellKind::SimpleRnn => &[0],
        };
        let (h, i, gh) = (layer.hidden, layer.input, layer.gh());
        let rows = |src: &[f32], width: usize| -> Vec<f32> {
            order
                .iter()
                .flat_map(|&k| src[k * h * width..(k + 1) * h * width].iter().copied())
                .collect()
        };
        let zeros = vec![0.0f32; gh];
        let b_hh = layer.b_hh.map_or(&zeros[..], |b| b.of(p));
        let mut bias = rows(layer.b_ih.of(p), 1);
        bias.extend(rows(b_hh, 1));
        let names = [
            self.init_f32(
                &format!("{prefix}.W"),
                &[1, gh, i],
                &rows(layer.w_ih.of(p), i),
            ),
            self.init_f32(
                &format!("{prefix}.R"),
                &[1, gh, h],
                &rows(layer.w_hh.of(p), h),
            ),
            self.init_f32(&format!("{prefix}.B"), &[1, 2 * gh], &bias),
        ];
        self.weights.push((prefix.to_string(), names.clone()));
        names
    }

    /// Luong attention of decoder outputs `d` (`[N, T, H]`) over encoder outputs `enc_seq`
    /// (`[T_in, N, E]`), or `d` itself without attention. Returns `[N, T, H]`.
    fn attend(&mut self, att: Option<&Attention>, p: &[f32], d: &str, enc_seq: &str) -> String {
        let Some(a) = att else {
            return d.to_string();
        };
        let (h, e) = (a.hidden, a.enc);
        let w_a = self.init_once("attention.weight_a", &[h, e], || a.w_a.of(p).to_vec());
        // weight_c [H, E + H] transposed to [E + H, H] for a MatMul.
        let w_c_t = self.init_once("attention.weight_c_t", &[e + h, h], || {
            transpose(a.w_c.of(p), h, e + h)
        });
        let b_c = self.init_once("attention.bias_c", &[h], || a.b_c.of(p).to_vec());
        // The encoder outputs as [N, T_in, E] and [N, E, T_in], once for all steps.
        let (enc_b, enc_bt) = match &self.enc_views {
            Some(views) => views.clone(),
            None => {
                let b = self.node("Transpose", &[enc_seq], vec![ints("perm", &[1, 0, 2])]);
                let bt = self.node("Transpose", &[enc_seq], vec![ints("perm", &[1, 2, 0])]);
                self.enc_views = Some((b.clone(), bt.clone()));
                (b, bt)
            }
        };
        let q = self.node("MatMul", &[d, &w_a], vec![]); // [N, T, E]
        let scores = self.node("MatMul", &[&q, &enc_bt], vec![]); // [N, T, T_in]
        let weights = self.node("Softmax", &[&scores], vec![int("axis", -1)]);
        let ctx = self.node("MatMul", &[&weights, &enc_b], vec![]); // [N, T, E]
        let cat = self.node("Concat", &[&ctx, d], vec![int("axis", -1)]);
        let z = self.node("MatMul", &[&cat, &w_c_t], vec![]);
        let z = self.node("Add", &[&z, &b_c], vec![]);
        self.node("Tanh", &[&z], vec![])
    }

    /// The dense head over `[N, T, H]` into logits `[N, T, V]` named `out`.
    fn head(&mut self, rnn: &RecurrentNet, p: &[f32], top: &str, out: &str) -> String {
        let hd = &rnn.head;
        let w_t = self.init_once("head.weight_t", &[hd.input, hd.output], || {
            transpose(hd.weight.of(p), hd.output, hd.input)
        });
        let b = self.init_once("head.bias", &[hd.output], || hd.bias.of(p).to_vec());
        let z = self.node("MatMul", &[top, &w_t], vec![]);
        self.node_named("Add", &[&z, &b], vec![], out);
        out.to_string()
    }

    /// Greedy decoding unrolled over `t_out` steps into `logits` and `probs`.
    fn greedy(
        &mut self,
        rnn: &RecurrentNet,
        p: &[f32],
        enc: &RnnOut,
        enc_seq: &str,
        v: usize,
        t_out: usize,
    ) {
        let lstm = rnn.encoder.cell == CellKind::Lstm;
        let eye = self.init_f32("one_hot_start", &[v + 1, v + 1], &eye(v + 1));
        // The start symbol (index V) for every row: [1, N] filled with V.
        let shape = self.node("Shape", &["question"], vec![]);
        let zero = self.const_i64("zero", &[0]);
        let one = self.const_i64("one", &[1]);
        let n = self.node("Slice", &[&shape, &zero, &one], vec![]);
        let start_shape = self.node("Concat", &[&one, &n], vec![int("axis", 0)]); // [1, N]
        let v_const = self.const_i64("start_symbol", &[v as i64]);
        let mut sym = self.node("Expand", &[&v_const, &start_shape], vec![]); // [1, N]
        let h_shape = self.node("Shape", &[&enc.y_h], vec![]);
        let zeros = self.node("ConstantOfShape", &[&h_shape], vec![]); // float zeros [1, N, H]
        let mut states: Vec<(String, Option<String>)> = (0..rnn.decoders.len())
            .map(|l| {
                if l == 0 {
                    (enc.y_h.clone(), enc.y_c.clone())
                } else {
                    (zeros.clone(), lstm.then(|| zeros.clone()))
                }
            })
            .collect();
        let mut logits_steps = Vec::with_capacity(t_out);
        let mut probs_steps = Vec::with_capacity(t_out);
        for s in 0..t_out {
            let mut x = self.node("Gather", &[&eye, &sym], vec![]); // [1, N, V+1]
            for (l, layer) in rnn.decoders.iter().enumerate() {
                let (h0, c0) = states[l].clone();
                let out = self.rnn(
                    &format!("decoder_l{l}"),
                    layer,
                    p,
                    &x,
                    Some((&h0, c0.as_deref())),
                );
                x = self.squeeze1(&out.y); // [1, N, H]
                states[l] = (out.y_h, out.y_c);
            }
            let d = self.node("Transpose", &[&x], vec![ints("perm", &[1, 0, 2])]); // [N, 1, H]
            let top = self.attend(rnn.attention.as_ref(), p, &d, enc_seq);
            let logits = self.head(rnn, p, &top, &format!("logits_step{s}"));
            let probs = self.node("Softmax", &[&logits], vec![int("axis", -1)]);
            // First maximum wins, as seqcalc's argmax.
            let chosen = self.node(
                "ArgMax",
                &[&probs],
                vec![
                    int("axis", -1),
                    int("keepdims", 0),
                    int("select_last_index", 0),
                ],
            ); // [N, 1]
            sym = self.node("Transpose", &[&chosen], vec![ints("perm", &[1, 0])]); // [1, N]
            logits_steps.push(logits);
            probs_steps.push(probs);
        }
        let refs: Vec<&str> = logits_steps.iter().map(String::as_str).collect();
        self.node_named("Concat", &refs, vec![int("axis", 1)], "logits");
        let refs: Vec<&str> = probs_steps.iter().map(String::as_str).collect();
        self.node_named("Concat", &refs, vec![int("axis", 1)], "probs");
    }
}

/// A row-major `[rows, cols]` matrix transposed to `[cols, rows]`.
pub(super) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// The identity matrix `[n, n]` (one-hot rows).
fn eye(n: usize) -> Vec<f32> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

pub(super) fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i,
        ..Default::default()
    }
}

pub(super) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.into(),
        value: value.into(),
    }
}

/// A graph input or output: element type and shape (`None`: the batch, named `N`).
fn value_info(name: &str, elem_type: i32, dims: &[Option<usize>]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => Value::DimValue(*n as i64),
                                None => Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
