#!/usr/bin/env python3
"""seqcalc's coupled transformer on the two-level scratchpad formats, in PyTorch.

A twin of the `coupled-transformer` run kind for the tasks `many-operand-addition` and
`multiplication`: the same formats (question and working as tokens, segments and two-level
coupled positions), the same network (token + segment embeddings, pre-norm blocks of relative
self-attention and a GEGLU feed-forward layer, a final RMSNorm and the head; 68,508 parameters
for the many-operand-addition experiment, 134,392 for multiplication), the same loss
(cross-entropy over every row the model writes, from the `=` on, averaged) and AdamW with the
config's learning rate, betas, warm-up-cosine schedule and global-norm clipping.

Attention, per head `h`, query row `i`, key row `j <= i` that `i` sees:

    s[i,j] = (q_i . k_j / sqrt(Dh) + bias[h, bucket(pos_i, pos_j)]) * c[h] * ln(keys i sees)

`bucket` is the clipped digit-position difference `clip(d_j - d_i, -2, 2) + 2`, or 5 when
either token has no position (BOS, EOS) or no digit position (a multiplier digit); under the
local window `W` a query sees a key when their digit positions are within `W` (or either has
none) and their levels within one (or either has none). Buckets and masks are dense [T, T]
tensors built from the positions; every sequence of a batch shares them.

Three modes:

    # greedy working of a seqcalc run, checked against `seqcalc predict --jsonl`
    python bench/reference/pytorch_levels.py --check RUN --n 200
    # the mean loss of the true working of questions of one shape under a run's weights
    # (seqcalc's: cargo run --release --example levels_loss -- RUN 123+45+6 999+1+5)
    python bench/reference/pytorch_levels.py --loss RUN 123+45+6 999+1+5
    # K training steps of batch 64 on fresh questions (the shapes seqcalc's training draws)
    python bench/reference/pytorch_levels.py --train --config many.toml --steps 300 --threads 2

The training pass computes attention with `F.scaled_dot_product_attention` (the bias, scaled,
as a float mask; the query scaled by `c ln(keys) / sqrt(Dh)`), or with `--attention manual` as
written out above; the two give the same gradients to about 1e-8, and the fused one was faster.
Decoding (`--check`) runs one row at a time against key/value caches.

`--train` prints one line `train steps=K secs=S s_per_step=X draw_s_per_step=Z
tokens_per_sec=Y`: the time of the steps, drawing each batch included as seqcalc counts it
(`draw_s_per_step` the drawing alone: questions, their sequences, the tensors), and tokens as
seqcalc counts them (the rows a sequence feeds the model, every token but the last).
"""
import argparse
import json
import math
import os
import random
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --- the format (src/codec/levels.rs, src/nn/mha.rs) ------------------------------------------

PLUS, EQUALS, BOS, EOS, SEMI, TIMES = 10, 11, 12, 13, 14, 15
VOCAB = 16
SEGMENTS = 14  # multiplication
SUM_SEGMENTS = 11  # many-operand addition (the table a model of it is built with)
NO_POSITION = 0xFFFFFFFF
LEVEL_FLAG = 1 << 30
NO_DIGIT = 0xFFFF
NO_LEVEL = 0x3FFF
LEVEL_WINDOW = 1
BUCKETS = 6
SPECIAL_BUCKET = 5
MAX_LEVELS = NO_LEVEL - 1
MAX_WIDTH = NO_DIGIT - 3
MAX_OPERANDS = 1000
MAX_DIGITS = 10_000

SEG_OTHER, SEG_MULTIPLICAND = 0, 10


def seg_operand(level):
    return 1 + level % 3


def seg_sum(level):
    return 4 + level % 3


def seg_multiplier(level):
    return 7 + level % 3


def seg_carry(level):
    return 11 + level % 3


def at(level, digit):
    return LEVEL_FLAG | (level << 16) | digit


def decimal_digits(k):
    return len(str(k))


def add_into(x, y):
    """x += y digit by digit (least significant first; the carry out of the top dropped)."""
    carry = 0
    for i in range(len(x)):
        t = x[i] + (y[i] if i < len(y) else 0) + carry
        x[i], carry = t % 10, t // 10


class Sum:
    """`a_1 + ... + a_k`: operands least significant first, zero-padded to the longest."""

    def __init__(self, ops):
        self.ops = ops

    @staticmethod
    def from_decimal(parts):
        l = max(1, max(len(p) for p in parts))
        return Sum([[int(c) for c in reversed(p)] + [0] * (l - len(p)) for p in parts])

    def shape(self):
        return (len(self.ops), len(self.ops[0]))

    def width(self):
        return len(self.ops[0]) + decimal_digits(len(self.ops))

    def running_sums(self):
        s = list(self.ops[0]) + [0] * (self.width() - len(self.ops[0]))
        out = []
        for a in self.ops[1:]:
            add_into(s, a)
            out.append(list(s))
        return out

    def text(self):
        return "+".join(to_decimal(o) for o in self.ops)


class Product:
    """`a * b`, each least significant first."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    @staticmethod
    def from_decimal(a, b):
        return Product([int(c) for c in reversed(a)], [int(c) for c in reversed(b)])

    def shape(self):
        return (len(self.a), len(self.b))

    def partial(self, d):
        out, carries, carry = [], [], 0
        for x in self.a:
            t = x * d + carry
            out.append(t % 10)
            carry = t // 10
            carries.append(carry)
        out.append(carry)
        return out, carries

    def open_rows(self):
        q = [0] * (len(self.a) + 1)
        rows = []
        for d in self.b:
            partial, _ = self.partial(d)
            nxt = q[1:] + [0]
            add_into(nxt, partial)
            q = nxt
            rows.append((partial, list(q)))
        return rows

    def text(self):
        return f"{to_decimal(self.a)}*{to_decimal(self.b)}"


def to_decimal(lsb_first):
    s = "".join(str(d) for d in reversed(lsb_first)).lstrip("0")
    return s or "0"


class Sequence:
    """Tokens (the true working, EOS last), segments, coupled positions, the prompt's length
    (through `=`) and the rows of the answer's digits."""

    def __init__(self):
        self.tokens, self.seg, self.pos = [], [], []
        self.prompt = 0
        self.answer_rows = []

    def push(self, token, seg, pos):
        self.tokens.append(token)
        self.seg.append(seg)
        self.pos.append(pos)

    def is_digit_row(self, r):
        return r >= self.prompt and self.tokens[r] < 10


def sequence(q):
    s = Sequence()
    s.push(BOS, SEG_OTHER, NO_POSITION)
    if isinstance(q, Sum):
        w = q.width()
        for j0, a in enumerate(q.ops):
            j = j0 + 1
            if j > 1:
                s.push(PLUS, seg_operand(j), at(j, 1))
            seg = seg_sum(1) if j == 1 else seg_operand(j)
            for i in reversed(range(w)):
                s.push(a[i] if i < len(a) else 0, seg, at(j, 2 + i))
        for j0, sm in enumerate(q.running_sums()):
            j = j0 + 2
            s.push(EQUALS if j == 2 else SEMI, seg_sum(j), at(j, 1))
            if j == 2:
                s.prompt = len(s.tokens)
            s.answer_rows = []
            for i, d in enumerate(sm):
                s.answer_rows.append(len(s.tokens))
                s.push(d, seg_sum(j), at(j, 2 + i))
    else:
        for i in reversed(range(len(q.a))):
            s.push(q.a[i], SEG_MULTIPLICAND, at(NO_LEVEL, 2 + i))
        s.push(TIMES, SEG_OTHER, at(NO_LEVEL, 1))
        for j in reversed(range(len(q.b))):
            s.push(q.b[j], seg_multiplier(j + 1), at(j + 1, NO_DIGIT))
        rows = q.open_rows()
        last = len(rows) - 1
        for j0, (partial, opened) in enumerate(rows):
            j = j0 + 1
            s.push(EQUALS if j == 1 else SEMI, seg_operand(j), at(j, 1))
            if j == 1:
                s.prompt = len(s.tokens)
            _, carries = q.partial(q.b[j0])
            for i, d in enumerate(partial):
                if i < len(q.a):
                    s.push(0 if i == 0 else carries[i - 1], seg_carry(j), at(j, 2 + i))
                s.push(d, seg_operand(j), at(j, 2 + i))
            s.push(SEMI, seg_sum(j), at(j, 1))
            for i, d in enumerate(opened):
                if i == 0 or j0 == last:
                    s.answer_rows.append(len(s.tokens))
                s.push(d, seg_sum(j), at(j, 2 + i))
    s.push(EOS, SEG_OTHER, NO_POSITION)
    return s


def work_text(seq, written):
    return "".join(str(t) if t < 10 else (";" if t == SEMI else "?") for t in written[seq.prompt : len(written) - 1])


def read_answer(seq, written):
    return [min(written[r], 10) for r in seq.answer_rows]


def parse_question(text, product):
    """A typed question (`12+345+6` or `1234*567`); ValueError with the CLI's reason."""
    t = text.strip()
    sep, example = ("*", "1234*567") if product else ("+", "12+345+6789")
    if not t:
        raise ValueError(f"empty question; ask like {example}")
    for i, ch in enumerate(t):
        if not (ch.isdigit() and ch.isascii() or ch in (sep, " ")):
            raise ValueError(f"unknown character {ch!r} at column {i + 1}; this model answers {example}")
    parts = [p.strip() for p in t.split(sep)]
    if any(not p for p in parts):
        raise ValueError(f"a number is missing next to a '{sep}'")
    if any(" " in p for p in parts):
        raise ValueError("a number has a space inside")
    if any(len(p) > MAX_DIGITS for p in parts):
        raise ValueError(f"a number is longer than the {MAX_DIGITS} digits this command answers")
    if product:
        if len(parts) != 2:
            raise ValueError(f"expected a*b; found {len(parts) - 1} '*'")
        q = Product.from_decimal(parts[0], parts[1])
        levels, width = len(q.b), len(q.a) + 1
    else:
        if not 2 <= len(parts) <= MAX_OPERANDS:
            raise ValueError(f"expected 2..={MAX_OPERANDS} numbers joined by '+'; found {len(parts)}")
        q = Sum.from_decimal(parts)
        levels, width = len(q.ops), q.width()
    if levels > MAX_LEVELS or width > MAX_WIDTH:
        raise ValueError(f"the format holds at most {MAX_LEVELS} operands or multiplier digits and {MAX_WIDTH} digits a line")
    return q


def geometry(pq, pk, window):
    """For query positions `pq [R]` and key positions `pk [T]` (int64, seqcalc's u32 values):
    the bias bucket of each pair `[R, T]` and whether the query sees the key under `window`
    (None: every key), causality left to the caller (`sees` in src/nn/mha.rs)."""
    q, k = pq[:, None], pk[None, :]
    none = (q == NO_POSITION) | (k == NO_POSITION)
    fq, fk = (q & LEVEL_FLAG) != 0, (k & LEVEL_FLAG) != 0
    dq = torch.where(fq, q & 0xFFFF, q)
    dk = torch.where(fk, k & 0xFFFF, k)
    lq, lk = (q >> 16) & NO_LEVEL, (k >> 16) & NO_LEVEL
    no_digit = (fq | fk) & ((dq == NO_DIGIT) | (dk == NO_DIGIT))
    bucket = (dk - dq).clamp(-2, 2) + 2
    bucket = torch.where(none | no_digit, torch.full_like(bucket, SPECIAL_BUCKET), bucket)
    if window is None:
        sees = torch.ones_like(none)
    else:
        one_level = ~(fq | fk)
        near_one = (q - k).abs() <= window
        apart = fq & fk & (lq != NO_LEVEL) & (lk != NO_LEVEL) & ((lq - lk).abs() > LEVEL_WINDOW)
        near_two = ~apart & ((dq == NO_DIGIT) | (dk == NO_DIGIT) | ((dq - dk).abs() <= window))
        sees = none | torch.where(one_level, near_one, near_two)
    return bucket, sees


class Layout:
    """What every sequence of one shape shares: segments, positions, and the dense [T, T]
    bias buckets, visibility (window and causality) and `ln(keys each row sees)`."""

    def __init__(self, seq, window):
        self.seq = seq
        pos = torch.tensor(seq.pos, dtype=torch.int64)
        t = len(seq.pos)
        self.pos = pos
        self.seg = torch.tensor(seq.seg, dtype=torch.long)
        self.window = window
        # In blocks of rows, so that a long sequence's int64 temporaries stay small.
        self.bucket = torch.empty(t, t, dtype=torch.long)
        self.allowed = torch.empty(t, t, dtype=torch.bool)
        rows = torch.arange(t)
        for a in range(0, t, 256):
            bucket, sees = geometry(pos[a : a + 256], pos, window)
            self.bucket[a : a + 256] = bucket
            self.allowed[a : a + 256] = sees & (rows[None, :] <= rows[a : a + 256, None])
        self.ln_keys = torch.log(self.allowed.sum(dim=1).to(torch.float64)).to(torch.float32)


# --- the network (src/nn/transformer.rs, mha.rs, ffn.rs, norm.rs) -----------------------------


class Block(nn.Module):
    """`x += o(attn(n1(x)))`, `x += w_out(gelu_tanh(g) * u)` with `[g | u] = w_in(n2(x))`;
    tensors named as in seqcalc's weight files (`blocks.0.qkv.weight`, `blocks.0.bias`, ...)."""

    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads = heads
        self.sdpa = False
        self.n1 = nn.RMSNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(heads, BUCKETS))
        self.c = nn.Parameter(torch.full((heads,), 1.0 / math.log(32.0)))
        self.n2 = nn.RMSNorm(dim, eps=1e-6)
        self.w_in = nn.Linear(dim, 2 * ffn, bias=False)
        self.w_out = nn.Linear(ffn, dim, bias=False)

    def ffn(self, h):
        g, u = self.w_in(h).chunk(2, dim=-1)
        return self.w_out(F.gelu(g, approximate="tanh") * u)

    def forward(self, x, lay, q_from):
        """x `[N, T, D]` -> `[N, T - q_from, D]`: only rows `q_from..T` are queried."""
        n, t, d = x.shape
        nh, dh = self.heads, d // self.heads
        qkv = self.qkv(self.n1(x)).view(n, t, 3, nh, dh)
        q = qkv[:, q_from:, 0].transpose(1, 2)  # [N, H, Tq, Dh]
        k = qkv[:, :, 1].transpose(1, 2)  # [N, H, T, Dh]
        v = qkv[:, :, 2].transpose(1, 2)
        lam = self.c[:, None, None] * lay.ln_keys[q_from:][None, :, None]  # [H, Tq, 1]
        if self.sdpa:
            # The same scores, (q.k / sqrt(Dh)) lam + bias lam, through PyTorch's fused kernel.
            mask = (self.bias[:, lay.bucket[q_from:]] * lam).masked_fill(~lay.allowed[q_from:], float("-inf"))
            y = F.scaled_dot_product_attention(q * (lam / math.sqrt(dh)), k, v, attn_mask=mask, scale=1.0)
        else:
            pre = q @ k.transpose(-1, -2) / math.sqrt(dh) + self.bias[:, lay.bucket[q_from:]]
            s = (pre * lam).masked_fill(~lay.allowed[q_from:], float("-inf"))
            y = torch.softmax(s, dim=-1) @ v
        y = y.transpose(1, 2).reshape(n, t - q_from, d)
        x = x[:, q_from:] + self.o(y)
        return x + self.ffn(self.n2(x))

    def step(self, x, cache, i, bucket, allowed, ln_k):
        """One new row `i` per sequence (`x [N, D]`) against the keys and values of rows
        `0..i` in `cache` (`[2, N, H, cap, Dh]`)."""
        n, d = x.shape
        nh, dh = self.heads, d // self.heads
        q, k, v = self.qkv(self.n1(x)).view(n, 3, nh, dh).unbind(1)
        cache[0, :, :, i] = k
        cache[1, :, :, i] = v
        keys, vals = cache[0, :, :, : i + 1], cache[1, :, :, : i + 1]
        pre = (keys @ q[..., None])[..., 0] / math.sqrt(dh) + self.bias[:, bucket]  # [N, H, i+1]
        s = (pre * (self.c[:, None] * ln_k)).masked_fill(~allowed, float("-inf"))
        y = (torch.softmax(s, dim=-1)[:, :, None, :] @ vals)[:, :, 0].reshape(n, d)
        x = x + self.o(y)
        return x + self.ffn(self.n2(x))


class LevelsTransformer(nn.Module):
    def __init__(self, dim, heads, ffn, layers, window, segments):
        super().__init__()
        self.window = window if window > 0 else None
        self.tok = nn.Embedding(VOCAB, dim)
        self.seg = nn.Embedding(segments, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, ffn) for _ in range(layers))
        self.nf = nn.RMSNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, VOCAB, bias=False)

    def init_like_seqcalc(self, seed):
        """Matrices and tables normal with std 0.02, norm gains one, biases zero, c = 1/ln 32
        (the same distributions as seqcalc's initialisation, not its bits)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(".c"):
                    p.fill_(1.0 / math.log(32.0))
                elif name.endswith(".bias"):
                    p.zero_()
                elif p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02, generator=g)

    def use_sdpa(self, on):
        """Training-pass attention through `F.scaled_dot_product_attention` (the same scores)."""
        for b in self.blocks:
            b.sdpa = on
        return self

    def logits(self, tokens, lay, q_from):
        """Logits `[N, T - q_from, V]` of `tokens [N, T]` sharing the layout `lay`."""
        x = self.tok(tokens) + self.seg(lay.seg)[None]
        last = len(self.blocks) - 1
        for l, blk in enumerate(self.blocks):
            x = blk(x, lay, q_from if l == last else 0)
        return self.head(self.nf(x))


def model_from_config(cfg):
    m, task = cfg["lengthgen"]["model"], cfg["lengthgen"]["task"]
    if task not in ("many-operand-addition", "multiplication") or cfg["lengthgen"].get("format", "coupled") != "coupled":
        raise ValueError(f"task {task!r} is not a two-level scratchpad task (many-operand-addition, multiplication)")
    segments = SEGMENTS if task == "multiplication" else SUM_SEGMENTS
    return LevelsTransformer(int(m["dim"]), int(m["heads"]), int(m["ffn"]), int(m["layers"]), int(m["local_window"]), segments)


# --- files -------------------------------------------------------------------------------------


def load_safetensors(path):
    """`{name: numpy array}` of a safetensors file of F32 tensors (an 8-byte little-endian
    header length, a JSON header, then the raw little-endian bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a valid safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: not a valid safetensors file (header past the end)")
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(info["shape"])
    return out


def read_config(path):
    if path.endswith(".toml"):
        import tomllib

        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    else:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    if cfg.get("kind") != "coupled-transformer":
        raise ValueError(f"{path}: kind {cfg.get('kind')!r}, expected coupled-transformer")
    return cfg


def load_run(run_dir):
    cfg = read_config(os.path.join(run_dir, "config.json"))
    model = model_from_config(cfg)
    state = {k: torch.from_numpy(v.copy()) for k, v in load_safetensors(os.path.join(run_dir, "weights.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    return cfg, model


# --- greedy decoding (src/model/coupled.rs greedy_layout) --------------------------------------


@torch.no_grad()
def greedy(model, questions):
    """Each question's whole written sequence: at every row after the prompt, the most likely
    digit where the format has a digit, the format's token elsewhere. Questions of one shape
    are decoded together, one row at a time against key/value caches."""
    out = [None] * len(questions)
    groups = {}
    for i, q in enumerate(questions):
        groups.setdefault((type(q).__name__, q.shape()), []).append(i)
    for idx in groups.values():
        seqs = [sequence(questions[i]) for i in idx]
        lay = seqs[0]
        t, n = len(lay.tokens), len(idx)
        geo = Layout(lay, model.window)
        written = torch.tensor([s.tokens[: lay.prompt] + [0] * (t - lay.prompt) for s in seqs], dtype=torch.long)
        d = model.tok.weight.shape[1]
        caches = [torch.zeros(2, n, b.heads, t, d // b.heads) for b in model.blocks]
        logits = None
        for i in range(t - 1):
            if i >= lay.prompt:
                written[:, i] = logits[:, :10].argmax(dim=-1) if lay.is_digit_row(i) else lay.tokens[i]
            bucket, allowed, ln_k = geo.bucket[i, : i + 1], geo.allowed[i, : i + 1], geo.ln_keys[i]
            x = model.tok(written[:, i]) + model.seg.weight[lay.seg[i]]
            for blk, cache in zip(model.blocks, caches):
                x = blk.step(x, cache, i, bucket, allowed, ln_k)
            logits = model.head(model.nf(x))
        written[:, t - 1] = lay.tokens[t - 1]
        for k, i in enumerate(idx):
            out[i] = (seqs[k], written[k].tolist())
    return out


# --- training batches (src/train/level_nets.rs, src/task/many_operands.rs) ---------------------


def operand(rng, length, width):
    """A uniform operand of exactly `length` digits, least significant first, padded to `width`."""
    d = [rng.randrange(10) for _ in range(length - 1)] + [rng.randrange(1, 10)]
    return d + [0] * (width - length)


def addition_batch(rng, tr):
    lo, hi = tr["min_digits"], tr["max_digits"]
    k = rng.randint(tr.get("min_operands", 2), tr.get("max_operands", 2))
    l = rng.randint(lo, hi)
    qs = []
    for _ in range(tr["batch_size"]):
        longest = rng.randrange(k)
        qs.append(Sum([operand(rng, l if i == longest else rng.randint(lo, l), l) for i in range(k)]))
    fraction = tr.get("stress_fraction", 0.0)
    for q in qs:
        if fraction > 0 and rng.random() < fraction:
            if rng.random() < 0.5:
                q.ops = [[9] * l for _ in q.ops]
            else:
                rest = sum(int(to_decimal(o)) for o in q.ops[:-1]) % 10**l
                last = (10**l - rest) % 10**l
                q.ops[-1] = [int(c) for c in reversed(str(last).zfill(l))]
    if tr.get("pad_fraction", 0.0) > 0 and rng.random() < tr["pad_fraction"]:
        padded = rng.randint(l, max(tr.get("pad_to_digits", 0), l))
        for q in qs:
            q.ops = [o + [0] * (padded - len(o)) for o in q.ops]
    return qs


def product_batch(rng, tr):
    lo, hi = tr["min_digits"], tr["max_digits"]
    la, lb = rng.randint(lo, hi), rng.randint(lo, hi)
    return [Product(operand(rng, la, la), operand(rng, lb, lb)) for _ in range(tr["batch_size"])]


def batch_tensors(qs, window, layouts=None):
    """Tokens `[N, T + 1]` of one batch (the last row only a target), its layout over `T`
    rows (kept in `layouts` by shape: every batch of a shape has the same), and the first
    scored row (the `=`)."""
    seqs = [sequence(q) for q in qs]
    lay = seqs[0]
    tokens = torch.tensor([s.tokens for s in seqs], dtype=torch.long)
    key = (type(qs[0]).__name__, qs[0].shape())
    if layouts is None or key not in layouts:
        inputs = Sequence()
        inputs.tokens, inputs.seg, inputs.pos, inputs.prompt = lay.tokens[:-1], lay.seg[:-1], lay.pos[:-1], lay.prompt
        built = Layout(inputs, window)
        if layouts is None:
            return tokens, built, lay.prompt - 1
        layouts[key] = built
    return tokens, layouts[key], lay.prompt - 1


def batch_loss(model, tokens, lay, q_from):
    """Mean cross-entropy of the rows the model writes: rows `q_from..T` predict tokens
    `q_from + 1..=T`."""
    logits = model.logits(tokens[:, :-1], lay, q_from)
    return F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, q_from + 1 :].reshape(-1))


def warmup_cosine(progress, peak, warmup, floor):
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return peak * progress / warmup
    f = min((progress - warmup) / max(1.0 - warmup, 1e-12), 1.0)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * f)))


def train(cfg, steps, seed, log_every, sdpa=False):
    """`steps` AdamW steps on fresh batches; returns the seconds of the steps (drawing the
    batch included, as seqcalc counts them), the seconds of drawing alone, and the tokens."""
    tr = cfg["lengthgen"]["train"]
    product = cfg["lengthgen"]["task"] == "multiplication"
    model = model_from_config(cfg).use_sdpa(sdpa)
    model.init_like_seqcalc(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.endswith(".bias")]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.endswith(".bias"))]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=1e-8,
    )
    rng = random.Random(seed)
    secs, draw_secs, tokens, ema, layouts = 0.0, 0.0, 0, None, {}
    for step in range(steps):
        t0 = time.perf_counter()
        qs = product_batch(rng, tr) if product else addition_batch(rng, tr)
        toks, lay, q_from = batch_tensors(qs, model.window, layouts)
        draw_secs += time.perf_counter() - t0
        # seqcalc's schedule: progress is the fraction of steps done before this one.
        lr = warmup_cosine(step / steps, tr["lr"], tr["warmup"], tr["min_lr_fraction"])
        for g in opt.param_groups:
            g["lr"] = lr
        loss = batch_loss(model, toks, lay, q_from)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr["clip_norm"])
        opt.step()
        secs += time.perf_counter() - t0
        tokens += toks.shape[0] * (toks.shape[1] - 1)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1:>6}  {secs:7.1f}s  lr {lr:.2e}  loss {ema:.4f}", flush=True)
    return secs, draw_secs, tokens


# --- the check against seqcalc predict ----------------------------------------------------------


def check_questions(product, n, seed):
    """`n` questions over shapes inside and beyond the training range (1..10 digits; addition
    2..10 operands), as typed text."""
    rng = random.Random(seed)
    if product:
        shapes = [(1, 1), (3, 2), (5, 5), (10, 10), (2, 9), (12, 7), (15, 15), (20, 15), (30, 30)]
    else:
        shapes = [(2, 1), (2, 10), (3, 4), (5, 7), (10, 10), (4, 15), (12, 6), (20, 20), (30, 30)]
    out = []
    for i in range(n):
        x, y = shapes[i % len(shapes)]
        if product:
            out.append(Product(operand(rng, x, x), operand(rng, y, y)).text())
        else:
            out.append(Sum([operand(rng, rng.randint(1, y), y) for _ in range(x)]).text())
    return out


def run_check(a):
    cfg, model = load_run(a.check)
    product = cfg["lengthgen"]["task"] == "multiplication"
    count = sum(p.numel() for p in model.parameters())
    questions = a.questions or check_questions(product, a.n, a.seed)
    r = subprocess.run([a.seqcalc, "predict", "--model", a.check, "--jsonl"], input="\n".join(questions) + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"pytorch_levels: seqcalc predict failed: {r.stderr.strip()}")
    want = [json.loads(line) for line in r.stdout.splitlines()]
    t0 = time.perf_counter()
    parsed = [parse_question(q, product) for q in questions]
    got = greedy(model, parsed)
    secs = time.perf_counter() - t0
    same, right = 0, 0
    for q, w, (seq, written) in zip(questions, want, got):
        mine = work_text(seq, written)
        right += read_answer(seq, written) == read_answer(seq, seq.tokens)
        if mine == w.get("work"):
            same += 1
        elif a.verbose:
            print(f"differs: {q}\n  seqcalc {w.get('work')}\n  torch   {mine}")
    print(f"{a.check}: {count} parameters; working equal to seqcalc predict's for {same}/{len(questions)} questions "
          f"({right} answers right; torch decoding {secs:.1f} s)")
    return 0 if same == len(questions) == len(want) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="RUN", help="decode questions with RUN's weights and compare with seqcalc predict --jsonl")
    mode.add_argument("--loss", metavar="RUN", help="print the mean loss of the true working of the questions given, with RUN's weights")
    mode.add_argument("--train", action="store_true", help="time training steps on fresh batches")
    ap.add_argument("questions", nargs="*", help="questions for --check or --loss (default for --check: --n drawn ones)")
    ap.add_argument("--n", type=int, default=200, help="--check: questions drawn (default 200)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--seqcalc", default=os.environ.get("SEQCALC_BIN", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target", "release", "seqcalc")),
                    help="the seqcalc binary (default: target/release/seqcalc of this checkout; env SEQCALC_BIN)")
    ap.add_argument("--config", help="--train: a seqcalc coupled-transformer config (TOML or JSON) for the model and its training settings")
    ap.add_argument("--steps", type=int, help="--train: steps (default: the config's)")
    ap.add_argument("--threads", type=int, help="torch threads (default 2 for --train, else 1: decoding small batches row by row gains nothing from more)")
    ap.add_argument("--attention", choices=("sdpa", "manual"), default="sdpa",
                    help="--train, --loss: attention through F.scaled_dot_product_attention with the bias as a "
                         "float mask (default), or written out (softmax of masked scores); the same scores")
    ap.add_argument("--log-every", type=int, default=0, help="--train: a progress line every this many steps")
    ap.add_argument("-v", "--verbose", action="store_true", help="--check: print every question whose working differs")
    a = ap.parse_args()
    if a.threads is not None and not 1 <= a.threads <= 256:
        sys.exit("pytorch_levels: --threads must be in 1..=256")
    if a.n < 1 or a.steps is not None and a.steps < 1:
        sys.exit("pytorch_levels: --n and --steps must be at least 1")
    torch.set_num_threads(a.threads or (2 if a.train else 1))
    if a.check:
        return run_check(a)
    if a.loss:
        cfg, model = load_run(a.loss)
        model.use_sdpa(a.attention == "sdpa")
        product = cfg["lengthgen"]["task"] == "multiplication"
        qs = [parse_question(q, product) for q in a.questions]
        if not qs or len({q.shape() for q in qs}) != 1:
            sys.exit("pytorch_levels: --loss takes one or more questions of one shape")
        with torch.no_grad():
            toks, lay, q_from = batch_tensors(qs, model.window)
            print(f"loss={batch_loss(model, toks, lay, q_from).item():.8f}")
        return 0
    if not a.config:
        sys.exit("pytorch_levels: --train needs --config FILE (e.g. from `seqcalc experiment show many-operand-addition`)")
    cfg = read_config(a.config)
    steps = a.steps or int(cfg["lengthgen"]["train"]["steps"])
    model = model_from_config(cfg)
    print(f"model: {sum(p.numel() for p in model.parameters())} parameters; {torch.get_num_threads()} thread(s); "
          f"attention {a.attention}; torch {torch.__version__}", flush=True)
    secs, draw_secs, tokens = train(cfg, steps, a.seed, a.log_every, a.attention == "sdpa")
    print(f"train steps={steps} secs={secs:.3f} s_per_step={secs / steps:.5f} "
          f"draw_s_per_step={draw_secs / steps:.5f} tokens_per_sec={tokens / secs:.0f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as e:
        sys.exit(f"pytorch_levels: {e}")
