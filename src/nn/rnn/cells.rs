//! The fused elementwise step kernels of the recurrent cells: each step's gate arithmetic in one
//! pass over the batch, forward and backward, compiled for the baseline target, AVX2 and AVX-512.

use crate::nn::Real;

// ---- Fused elementwise step kernels -------------------------------------------------------
//
// Each row kernel takes every gate as its own slice argument: distinct `&mut` arguments carry
// LLVM's no-alias guarantee, which is what lets the loops vectorise. Each step kernel runs its
// rows through the row kernel and is compiled for the baseline target, AVX2 and AVX-512
// (`simd_dispatch!`, chosen at run time), all with the same bits.

simd_dispatch!(pub(super) lstm_step_forward, lstm_step_forward_avx512, lstm_step_forward_avx2, lstm_step_forward_generic, (a: &mut [R], x: &[R], x_rows: &[u32], c_prev: &[R], c_next: &mut [R], h_next: &mut [R], h: usize));
simd_dispatch!(pub(super) lstm_step_backward, lstm_step_backward_avx512, lstm_step_backward_avx2, lstm_step_backward_generic, (a: &mut [R], c_prev: &[R], c_now: &[R], dh: &[R], dc: &mut [R], h: usize));
simd_dispatch!(pub(super) gru_step_forward, gru_step_forward_avx512, gru_step_forward_avx2, gru_step_forward_generic, (a: &mut [R], hp: &mut [R], b_hh: &[R], h_prev: &[R], hpn: &mut [R], h_next: &mut [R], h: usize));
simd_dispatch!(pub(super) gru_step_backward, gru_step_backward_avx512, gru_step_backward_avx2, gru_step_backward_generic, (a: &[R], hpn: &[R], h_prev: &[R], dh: &mut [R], dz: &mut [R], dzh: &mut [R], h: usize));
simd_dispatch!(pub(super) tanh_step_forward, tanh_step_forward_avx512, tanh_step_forward_avx2, tanh_step_forward_generic, (a: &mut [R], h_next: &mut [R]));
simd_dispatch!(pub(super) tanh_step_backward, tanh_step_backward_avx512, tanh_step_backward_avx2, tanh_step_backward_generic, (a: &[R], dh: &[R], dz: &mut [R]));

/// SimpleRNN step: `a` (`[B, H]`) pre-activations -> tanh, copied to `h_next`.
#[inline(always)]
pub(super) fn tanh_step_forward_generic<R: Real>(a: &mut [R], h_next: &mut [R]) {
    for (hn, z) in h_next.iter_mut().zip(a.iter_mut()) {
        *z = z.tanh_fast();
        *hn = *z;
    }
}

/// SimpleRNN step backward: `dz = dh (1 - y²)`.
#[inline(always)]
pub(super) fn tanh_step_backward_generic<R: Real>(a: &[R], dh: &[R], dz: &mut [R]) {
    for ((d, &y), &g) in dz.iter_mut().zip(a).zip(dh) {
        *d = g * (R::ONE - y * y);
    }
}

/// Splits a `[G*H]` gate row into its G slices of H.
macro_rules! gates {
    ($row:expr, $h:expr, mut 4) => {{
        let (x0, rest) = $row.split_at_mut($h);
        let (x1, rest) = rest.split_at_mut($h);
        let (x2, x3) = rest.split_at_mut($h);
        (x0, x1, x2, x3)
    }};
    ($row:expr, $h:expr, 4) => {{
        let (x0, rest) = $row.split_at($h);
        let (x1, rest) = rest.split_at($h);
        let (x2, x3) = rest.split_at($h);
        (x0, x1, x2, x3)
    }};
    ($row:expr, $h:expr, mut 3) => {{
        let (x0, rest) = $row.split_at_mut($h);
        let (x1, x2) = rest.split_at_mut($h);
        (x0, x1, x2)
    }};
    ($row:expr, $h:expr, 3) => {{
        let (x0, rest) = $row.split_at($h);
        let (x1, x2) = rest.split_at($h);
        (x0, x1, x2)
    }};
}

/// LSTM step: `a` (`[B, 4H]`) holds pre-activations on entry and i,f,g,o on exit. Unless
/// `x_rows` is empty, row `r` first adds row `x_rows[r]` of `x` (`[_, 4H]`) to its
/// pre-activations: the input projection, for steps whose recurrent product wrote `a`.
#[inline(always)]
pub(super) fn lstm_step_forward_generic<R: Real>(
    a: &mut [R],
    x: &[R],
    x_rows: &[u32],
    c_prev: &[R],
    c_next: &mut [R],
    h_next: &mut [R],
    h: usize,
) {
    let gh = 4 * h;
    for (r, (((row, cp), cn), hn)) in a
        .chunks_exact_mut(gh)
        .zip(c_prev.chunks_exact(h))
        .zip(c_next.chunks_exact_mut(h))
        .zip(h_next.chunks_exact_mut(h))
        .enumerate()
    {
        if let Some(&xr) = x_rows.get(r) {
            let xr = &x[xr as usize * gh..][..gh];
            for (v, &xv) in row.iter_mut().zip(xr) {
                *v += xv;
            }
        }
        let (ai, af, ag, ao) = gates!(row, h, mut 4);
        lstm_row_forward(ai, af, ag, ao, cp, cn, hn);
    }
}

#[inline(always)]
fn lstm_row_forward<R: Real>(
    ai: &mut [R],
    af: &mut [R],
    ag: &mut [R],
    ao: &mut [R],
    c_prev: &[R],
    c_next: &mut [R],
    h_next: &mut [R],
) {
    let h = c_prev.len();
    let (ai, af, ag, ao, c_next, h_next) = (
        &mut ai[..h],
        &mut af[..h],
        &mut ag[..h],
        &mut ao[..h],
        &mut c_next[..h],
        &mut h_next[..h],
    );
    let half = R::from_f64(0.5);
    for j in 0..h {
        // The three sigmoids as 0.5 tanh(x / 2) + 0.5, and the four tanh with one division.
        let [ti, tf, g, to] = R::tanh4_fast([half * ai[j], half * af[j], ag[j], half * ao[j]]);
        let (i, f, o) = (half * ti + half, half * tf + half, half * to + half);
        let c = f * c_prev[j] + i * g;
        ai[j] = i;
        af[j] = f;
        ag[j] = g;
        ao[j] = o;
        c_next[j] = c;
    }
    // h in a second pass: tanh(c) waits on every gate, and as one loop that chain (two
    // divisions and two polynomials deep) left too few iterations in flight to hide it.
    for j in 0..h {
        h_next[j] = ao[j] * c_next[j].tanh_fast();
    }
}

/// LSTM step backward: from `dh` and the running `dc` (updated to the previous step's),
/// overwrites the gates in `a` (`[B, 4H]`) with their pre-activation gradients `dz`.
#[inline(always)]
pub(super) fn lstm_step_backward_generic<R: Real>(
    a: &mut [R],
    c_prev: &[R],
    c_now: &[R],
    dh: &[R],
    dc: &mut [R],
    h: usize,
) {
    let rows = a
        .chunks_exact_mut(4 * h)
        .zip(c_prev.chunks_exact(h))
        .zip(c_now.chunks_exact(h))
        .zip(dh.chunks_exact(h))
        .zip(dc.chunks_exact_mut(h));
    for ((((row, cp), cn), dhr), dcr) in rows {
        let (ai, af, ag, ao) = gates!(row, h, mut 4);
        lstm_row_backward(ai, af, ag, ao, cp, cn, dhr, dcr);
    }
}

/// One row: reads the gates i, f, g, o and overwrites them with their pre-activation
/// gradients.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn lstm_row_backward<R: Real>(
    ai: &mut [R],
    af: &mut [R],
    ag: &mut [R],
    ao: &mut [R],
    c_prev: &[R],
    c_now: &[R],
    dh: &[R],
    dc: &mut [R],
) {
    let h = c_prev.len();
    let (ai, af, ag, ao, c_now, dh, dc) = (
        &mut ai[..h],
        &mut af[..h],
        &mut ag[..h],
        &mut ao[..h],
        &c_now[..h],
        &dh[..h],
        &mut dc[..h],
    );
    let one = R::ONE;
    for j in 0..h {
        let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
        let tc = c_now[j].tanh_fast();
        let dcj = dc[j] + dh[j] * o * (one - tc * tc);
        ao[j] = dh[j] * tc * o * (one - o);
        ai[j] = dcj * g * i * (one - i);
        ag[j] = dcj * i * (one - g * g);
        af[j] = dcj * c_prev[j] * f * (one - f);
        dc[j] = dcj * f;
    }
}

/// GRU step: `a` (`[B, 3H]`) holds `x W_ih + b_ih` on entry and r,z,n on exit; `hp` holds
/// `h W_hh` (without bias).
#[inline(always)]
pub(super) fn gru_step_forward_generic<R: Real>(
    a: &mut [R],
    hp: &mut [R],
    b_hh: &[R],
    h_prev: &[R],
    hpn: &mut [R],
    h_next: &mut [R],
    h: usize,
) {
    let (br, bz, bn) = gates!(b_hh, h, 3);
    let rows = a
        .chunks_exact_mut(3 * h)
        .zip(hp.chunks_exact(3 * h))
        .zip(h_prev.chunks_exact(h))
        .zip(hpn.chunks_exact_mut(h))
        .zip(h_next.chunks_exact_mut(h));
    for ((((row, prow), hpr), hpnr), hnr) in rows {
        let (ar, az, an) = gates!(row, h, mut 3);
        let (pr, pz, pn) = gates!(prow, h, 3);
        gru_row_forward(ar, az, an, pr, pz, pn, br, bz, bn, hpr, hpnr, hnr);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gru_row_forward<R: Real>(
    ar: &mut [R],
    az: &mut [R],
    an: &mut [R],
    pr: &[R],
    pz: &[R],
    pn: &[R],
    br: &[R],
    bz: &[R],
    bn: &[R],
    h_prev: &[R],
    hpn: &mut [R],
    h_next: &mut [R],
) {
    let h = h_prev.len();
    let (ar, az, an, pr, pz, pn, br, bz, bn, hpn, h_next) = (
        &mut ar[..h],
        &mut az[..h],
        &mut an[..h],
        &pr[..h],
        &pz[..h],
        &pn[..h],
        &br[..h],
        &bz[..h],
        &bn[..h],
        &mut hpn[..h],
        &mut h_next[..h],
    );
    for j in 0..h {
        let r = (ar[j] + pr[j] + br[j]).sigmoid_fast();
        let z = (az[j] + pz[j] + bz[j]).sigmoid_fast();
        let q = pn[j] + bn[j];
        let n = (an[j] + r * q).tanh_fast();
        ar[j] = r;
        az[j] = z;
        an[j] = n;
        hpn[j] = q;
        h_next[j] = (R::ONE - z) * n + z * h_prev[j];
    }
}

/// GRU step backward. On entry `dh` is the gradient of this step's output; on exit it holds the
/// direct part of the previous step's gradient (`dh * z`). Writes input-side (`dz`) and
/// recurrent-side (`dzh`) pre-activation gradients.
#[inline(always)]
pub(super) fn gru_step_backward_generic<R: Real>(
    a: &[R],
    hpn: &[R],
    h_prev: &[R],
    dh: &mut [R],
    dz: &mut [R],
    dzh: &mut [R],
    h: usize,
) {
    let rows = a
        .chunks_exact(3 * h)
        .zip(hpn.chunks_exact(h))
        .zip(h_prev.chunks_exact(h))
        .zip(dh.chunks_exact_mut(h))
        .zip(dz.chunks_exact_mut(3 * h))
        .zip(dzh.chunks_exact_mut(3 * h));
    for (((((row, hpnr), hpr), dhr), dzr), dzhr) in rows {
        let (ar, az, an) = gates!(row, h, 3);
        let (dr, dzz, dn) = gates!(dzr, h, mut 3);
        let (hr, hz, hn) = gates!(dzhr, h, mut 3);
        gru_row_backward(ar, az, an, hpnr, hpr, dhr, dr, dzz, dn, hr, hz, hn);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gru_row_backward<R: Real>(
    ar: &[R],
    az: &[R],
    an: &[R],
    hpn: &[R],
    h_prev: &[R],
    dh: &mut [R],
    dr: &mut [R],
    dzz: &mut [R],
    dn: &mut [R],
    hr: &mut [R],
    hz: &mut [R],
    hn: &mut [R],
) {
    let h = h_prev.len();
    let (ar, az, an, hpn, dh) = (&ar[..h], &az[..h], &an[..h], &hpn[..h], &mut dh[..h]);
    let (dr, dzz, dn, hr, hz, hn) = (
        &mut dr[..h],
        &mut dzz[..h],
        &mut dn[..h],
        &mut hr[..h],
        &mut hz[..h],
        &mut hn[..h],
    );
    let one = R::ONE;
    for j in 0..h {
        let (r, z, n) = (ar[j], az[j], an[j]);
        let g = dh[j];
        let dan = g * (one - z) * (one - n * n);
        let daz = g * (h_prev[j] - n) * z * (one - z);
        let dar = dan * hpn[j] * r * (one - r);
        dr[j] = dar;
        dzz[j] = daz;
        dn[j] = dan;
        hr[j] = dar;
        hz[j] = daz;
        hn[j] = dan * r;
        dh[j] = g * z;
    }
}
