//! Plain reference twins of the fast kernels: one sample, one step, one unit at a time, exact
//! activations, f64 throughout, written straight from the equations in `rnn.rs` and `dense.rs`.
//! Tests check the fused kernels against these.

use super::rnn::{CellKind, RnnInput, RnnLayer};
use super::Real;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Reference forward of a recurrent layer; returns the outputs `[T, B, H]` in f64.
pub fn rnn_forward_ref<R: Real>(
    layer: &RnnLayer,
    p: &[R],
    input: RnnInput<R>,
    b: usize,
    t: usize,
) -> Vec<f64> {
    let (h, i_sz) = (layer.hidden, layer.input);
    let gh = layer.gh();
    let w_ih: Vec<f64> = layer.w_ih.of(p).iter().map(|v| v.to_f64()).collect();
    let w_hh: Vec<f64> = layer.w_hh.of(p).iter().map(|v| v.to_f64()).collect();
    let b_ih: Vec<f64> = layer.b_ih.of(p).iter().map(|v| v.to_f64()).collect();
    let b_hh: Vec<f64> = layer
        .b_hh
        .map(|r| r.of(p).iter().map(|v| v.to_f64()).collect())
        .unwrap_or_else(|| vec![0.0; gh]);
    let mut out = vec![0.0; t * b * h];
    for row in 0..b {
        let mut hv = vec![0.0; h];
        let mut cv = vec![0.0; h];
        for s in 0..t {
            // x_t as a dense vector (one-hot for symbols).
            let x: Vec<f64> = match input {
                RnnInput::Symbols(sym) => {
                    let mut v = vec![0.0; i_sz];
                    v[sym[s * b + row] as usize] = 1.0;
                    v
                }
                RnnInput::Seq(x) => x[(s * b + row) * i_sz..(s * b + row + 1) * i_sz]
                    .iter()
                    .map(|v| v.to_f64())
                    .collect(),
                RnnInput::Repeat(x) => x[row * i_sz..(row + 1) * i_sz]
                    .iter()
                    .map(|v| v.to_f64())
                    .collect(),
            };
            let xw = |g: usize| (0..i_sz).map(|k| w_ih[g * i_sz + k] * x[k]).sum::<f64>() + b_ih[g];
            let hw = |g: usize, hv: &[f64]| {
                (0..h).map(|k| w_hh[g * h + k] * hv[k]).sum::<f64>() + b_hh[g]
            };
            let mut hn = vec![0.0; h];
            for j in 0..h {
                match layer.cell {
                    CellKind::Lstm => {
                        let i = sigmoid(xw(j) + hw(j, &hv));
                        let f = sigmoid(xw(h + j) + hw(h + j, &hv));
                        let g = (xw(2 * h + j) + hw(2 * h + j, &hv)).tanh();
                        let o = sigmoid(xw(3 * h + j) + hw(3 * h + j, &hv));
                        cv[j] = f * cv[j] + i * g;
                        hn[j] = o * cv[j].tanh();
                    }
                    CellKind::Gru => {
                        let r = sigmoid(xw(j) + hw(j, &hv));
                        let z = sigmoid(xw(h + j) + hw(h + j, &hv));
                        let n = (xw(2 * h + j) + r * hw(2 * h + j, &hv)).tanh();
                        hn[j] = (1.0 - z) * n + z * hv[j];
                    }
                    CellKind::SimpleRnn => hn[j] = (xw(j) + hw(j, &hv)).tanh(),
                }
            }
            hv = hn;
            out[(s * b + row) * h..(s * b + row + 1) * h].copy_from_slice(&hv);
        }
    }
    out
}
