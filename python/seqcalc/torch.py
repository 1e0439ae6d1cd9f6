"""seqcalc's models as plain ``torch.nn`` modules.

A pure-Python twin of the run directories seqcalc writes: it reads a run's ``config.json`` (or
``config.toml``) and ``weights.safetensors``, builds the equivalent ``torch.nn`` model, loads the
weights with ``load_state_dict(strict=True)`` and answers questions the way ``seqcalc predict``
does (greedy decoding, the run's codec for padding, reversal and end symbols). It needs only
``torch``; it imports nothing from seqcalc's native extension.

Run kinds it expresses: ``seq2seq`` runs with the recurrent encoder-decoder (LSTM, GRU or
SimpleRNN; one-hot or embedding input; repeat-vector or teacher-forced decoder; any number of
decoder layers; Luong attention; masking) and with the decoder-only transformer. The tensor
mapping is in the repository's ``docs/pytorch.md``.

>>> from seqcalc.torch import load
>>> model = load("runs/keras-addition")            # doctest: +SKIP
>>> model.predict(["12+345", "7+8"])               # doctest: +SKIP
[{'output': '357', 'confidence': 0.998...}, {'output': '15', 'confidence': 0.99...}]
>>> model.module                                   # the torch.nn.Module   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import struct

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["load", "load_safetensors", "build_module", "Codec", "TorchRun", "UnsupportedRun"]


class UnsupportedRun(ValueError):
    """The run's kind or model has no ``torch.nn`` twin here."""


# --- files ----------------------------------------------------------------------------------


def load_safetensors(path: str) -> dict:
    """Reads a safetensors file of F32 tensors into ``{name: torch.Tensor}``.

    A few lines of the format (an 8-byte little-endian header length, a JSON header with each
    tensor's dtype, shape and byte offsets, then the bytes) rather than a dependency.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a valid safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: not a valid safetensors file (header past the end)")
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]) if info["shape"] else t.reshape(())
    return out


def _pytorch_names(state: dict) -> dict:
    """Weights written before seqcalc used PyTorch's names keep Keras's single recurrent bias
    as ``X.bias_lN``: it becomes ``X.bias_ih_lN`` with ``X.bias_hh_lN`` zeros, as seqcalc now
    writes it (PyTorch adds the two, which gives Keras's bias exactly)."""
    out = {}
    for name, t in state.items():
        head, _, tail = name.rpartition(".bias_l")
        if head and tail.isdigit():
            out[f"{head}.bias_ih_l{tail}"] = t
            out[f"{head}.bias_hh_l{tail}"] = torch.zeros_like(t)
        else:
            out[name] = t
    return out


def _load_config(run_dir: str) -> dict:
    for name in ("config.json", "config.toml"):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            if name.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            import tomllib

            with open(path, "rb") as f:
                return tomllib.load(f)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    raise FileNotFoundError(f"{os.path.join(run_dir, 'config.json')}: missing (not a run directory?)")


# --- codec ----------------------------------------------------------------------------------

STEP_SEP, PART_SEP = ";", ","


def _reverse_numbers(text: str) -> str:
    out, num = [], []
    for ch in text:
        if ch in (STEP_SEP, PART_SEP):
            out.extend(reversed(num))
            out.append(ch)
            num = []
        else:
            num.append(ch)
    out.extend(reversed(num))
    return "".join(out)


class Codec:
    """A run's resolved codec: questions to symbol indices, output indices to answers."""

    def __init__(self, cfg: dict):
        if not cfg.get("alphabet") or not cfg.get("input_len") or not cfg.get("output_len"):
            raise UnsupportedRun("the run's codec is not resolved (config.json of a trained run has it)")
        self.alphabet = cfg["alphabet"]
        self.index = {c: i for i, c in enumerate(self.alphabet)}
        self.input_len = int(cfg["input_len"])
        self.output_len = int(cfg["output_len"])
        self.pad = cfg.get("pad", " ")
        self.pad_side = cfg.get("pad_side", "right")
        self.reverse_input = bool(cfg.get("reverse_input", True))
        self.reverse_output = bool(cfg.get("reverse_output", False))
        self.scratchpad = bool(cfg.get("scratchpad", False))
        eos = cfg.get("eos")
        self.eos_index = self.index[eos] if eos is not None else None
        self.pad_index = self.index[self.pad]

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def encode_question(self, question: str) -> list:
        """Indices ``[input_len]`` of a question as typed; ``ValueError`` with the CLI's message."""
        q = question.strip()
        if not q:
            raise ValueError("empty question")
        idx = []
        for col, ch in enumerate(q, start=1):
            if ch not in self.index:
                raise ValueError(
                    f"unknown character {_rust_char(ch)} at column {col}; this model knows `{self.alphabet}`"
                )
            idx.append(self.index[ch])
        if len(idx) > self.input_len:
            raise ValueError(
                f"question is {len(idx)} characters long; this model takes at most {self.input_len}"
            )
        fill = [self.pad_index] * (self.input_len - len(idx))
        idx = idx + fill if self.pad_side == "right" else fill + idx
        if self.reverse_input:
            idx.reverse()
        return idx

    def decode(self, probs: torch.Tensor) -> tuple:
        """The answer and confidence from per-step probabilities ``[output_len, V]``, as
        ``seqcalc predict`` decodes them (argmax per step, up to the end symbol)."""
        best = probs.argmax(dim=1).tolist()
        chosen = probs.max(dim=1).values.double().tolist()
        indices, confidence = [], 1.0
        for k, p in zip(best, chosen):
            indices.append(k)
            confidence *= max(p, 0.0)
            if k == self.eos_index:
                break
        if self.eos_index is not None and self.eos_index in indices:
            indices = indices[: indices.index(self.eos_index)]
        text = "".join(self.alphabet[i] for i in indices).strip(self.pad)
        if self.scratchpad:
            text = text.replace(PART_SEP, STEP_SEP).rsplit(STEP_SEP, 1)[-1] if text else text
        if self.reverse_output:
            text = text[::-1]
        return text, confidence


def _rust_char(ch: str) -> str:
    """A character as Rust's ``{:?}`` writes it in the CLI's messages."""
    esc = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
    return "'" + esc.get(ch, ch) + "'"


# --- networks -------------------------------------------------------------------------------

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "simplernn": nn.RNN, "simple_rnn": nn.RNN, "rnn": nn.RNN}


class LuongAttention(nn.Module):
    """Luong "general" attention: ``q = h W_a``, ``a = softmax_s(q . e_s)``,
    ``out = tanh([sum_s a_s e_s ; h] W_c^T + b_c)``."""

    def __init__(self, hidden: int, enc: int):
        super().__init__()
        self.weight_a = nn.Parameter(torch.zeros(hidden, enc))
        self.weight_c = nn.Parameter(torch.zeros(hidden, enc + hidden))
        self.bias_c = nn.Parameter(torch.zeros(hidden))

    def forward(self, dec: torch.Tensor, enc: torch.Tensor, mask) -> torch.Tensor:
        # dec [B, T_out, H], enc [B, T_in, E], mask [B, T_in] (True: a symbol) or None.
        scores = torch.einsum("bte,bse->bts", dec @ self.weight_a, enc)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ enc
        return torch.tanh(torch.cat([ctx, dec], dim=-1) @ self.weight_c.T + self.bias_c)


class RecurrentSeq2Seq(nn.Module):
    """The Keras ``addition_rnn`` family: encoder RNN, repeat-vector or teacher-forced decoder
    RNNs (one ``nn.LSTM``/``GRU``/``RNN`` with ``num_layers``), optional attention, a Dense head."""

    def __init__(self, model: dict, vocab: int, t_in: int, t_out: int, pad: int, eos):
        super().__init__()
        cell = _CELLS.get(model.get("cell", "lstm"))
        if cell is None:
            raise UnsupportedRun(f"unknown cell {model.get('cell')!r}")
        self.cell = model.get("cell", "lstm")
        hidden = int(model["hidden"])
        enc_h = int(model.get("encoder_hidden") or hidden)
        self.teacher_forced = model.get("decoder", "repeat") == "teacher-forced"
        self.mask = bool(model.get("mask", False))
        self.vocab, self.t_in, self.t_out, self.pad, self.eos = vocab, t_in, t_out, pad, eos
        if model.get("input", "one-hot") == "embedding":
            self.embedding = nn.Embedding(vocab, int(model["embed_dim"]))
            enc_in = int(model["embed_dim"])
        else:
            self.embedding = None
            enc_in = vocab
        kw = {"batch_first": True}
        if cell is nn.RNN:
            kw["nonlinearity"] = "tanh"
        self.encoder = cell(enc_in, enc_h, **kw)
        dec_in = vocab + 1 if self.teacher_forced else enc_h
        self.decoder = cell(dec_in, hidden, num_layers=int(model.get("layers", 1)), **kw)
        self.attention = LuongAttention(hidden, enc_h) if model.get("attention") else None
        self.head = nn.Linear(hidden, vocab)

    def _encode(self, x: torch.Tensor):
        """Encoder outputs ``[B, T_in, E]``, final state, and the question mask."""
        inp = self.embedding(x) if self.embedding is not None else F.one_hot(x, self.vocab).float()
        if not self.mask:
            out, state = self.encoder(inp)
            return out, state, None
        # Masking: a step on padding leaves the state (and output) as it was.
        mask = x != self.pad
        b = x.shape[0]
        h = inp.new_zeros(1, b, self.encoder.hidden_size)
        state = (h, h.clone()) if self.cell == "lstm" else h
        outs = []
        for t in range(x.shape[1]):
            o, new = self.encoder(inp[:, t : t + 1], state)
            keep = mask[:, t][None, :, None]
            if self.cell == "lstm":
                state = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1]))
                outs.append(state[0][0])
            else:
                state = torch.where(keep, new, state)
                outs.append(state[0])
        return torch.stack(outs, dim=1), state, mask

    def _top(self, dec_out, enc_out, mask):
        if self.attention is not None:
            dec_out = self.attention(dec_out, enc_out, mask)
        return self.head(dec_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Question indices ``[B, T_in]`` to per-step probabilities ``[B, T_out, V]`` (greedy
        for a teacher-forced decoder, each step reading the symbol chosen before)."""
        enc_out, state, mask = self._encode(x)
        layers = self.decoder.num_layers
        if not self.teacher_forced:
            rep = enc_out[:, -1:, :].expand(-1, self.t_out, -1)
            dec_out, _ = self.decoder(rep)
            return torch.softmax(self._top(dec_out, enc_out, mask), dim=-1)

        # The decoder starts from the encoder's final state (layer 0; the others from zeros).
        def first(s):
            z = s.new_zeros(layers - 1, *s.shape[1:])
            return torch.cat([s, z], dim=0)

        st = tuple(first(s) for s in state) if self.cell == "lstm" else first(state)
        sym = torch.full((x.shape[0],), self.vocab, dtype=torch.long, device=x.device)
        steps = []
        for _ in range(self.t_out):
            o, st = self.decoder(F.one_hot(sym, self.vocab + 1).float()[:, None, :], st)
            p = torch.softmax(self._top(o, enc_out, mask), dim=-1)[:, 0]
            steps.append(p)
            sym = p.argmax(dim=-1)
        return torch.stack(steps, dim=1)


class Block(nn.Module):
    """A pre-norm block: ``x += attn(rmsnorm1(x))``; ``x += ffn(rmsnorm2(x))``.

    Attention: causal, multi-head, a learned relative bias and Scalable-Softmax,
    ``s_ij = (q_i.k_j / sqrt(Dh) + bias[h, clip(j - i, -2, 2) + 2]) * c[h] * ln(i + 1)``,
    ``[q | k | v] = x qkv^T``, ``out = y o^T``. FFN (GEGLU): ``[g | u] = x w_in^T``,
    ``y = (gelu_tanh(g) * u) w_out^T``. The tensors sit on the block itself, as seqcalc names
    them (``blocks.0.qkv.weight``, ``blocks.0.bias``, ``blocks.0.w_in.weight``, ...).
    """

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.n1 = nn.RMSNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(heads, 6))
        self.c = nn.Parameter(torch.zeros(heads))
        self.n2 = nn.RMSNorm(dim, eps=1e-6)
        self.w_in = nn.Linear(dim, 2 * ffn, bias=False)
        self.w_out = nn.Linear(ffn, dim, bias=False)

    def attn(self, h: torch.Tensor) -> torch.Tensor:
        n, t, d = h.shape
        nh, dh = self.heads, d // self.heads
        q, k, v = self.qkv(h).view(n, t, 3, nh, dh).permute(2, 0, 3, 1, 4)
        i = torch.arange(t, device=h.device)
        bucket = (i[None, :] - i[:, None]).clamp(-2, 2) + 2  # [T_q, T_k]
        pre = q @ k.transpose(-1, -2) / math.sqrt(dh) + self.bias[:, bucket][None]
        lam = self.c[:, None, None] * torch.log((i + 1).to(h.dtype))[None, :, None]
        s = (pre * lam[None]).masked_fill(i[None, :] > i[:, None], float("-inf"))
        y = torch.softmax(s, dim=-1) @ v
        return self.o(y.transpose(1, 2).reshape(n, t, d))

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(F.gelu(g, approximate="tanh") * u)

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.ffn(self.n2(x))


class TransformerSeq2Seq(nn.Module):
    """The decoder-only transformer over ``question, START, answer`` (START = index V):
    ``x = tok[token] + seg[position]``, pre-norm blocks, ``logits = rmsnorm(x) head^T``."""

    def __init__(self, model: dict, vocab: int, t_in: int, t_out: int):
        super().__init__()
        d = int(model["hidden"])
        self.vocab, self.t_in, self.t_out = vocab, t_in, t_out
        self.tok = nn.Embedding(vocab + 1, d)
        self.seg = nn.Embedding(t_in + t_out, d)
        ffn = int(model.get("ffn") or 4 * d)
        self.blocks = nn.ModuleList(
            Block(d, int(model["heads"]), ffn) for _ in range(int(model["layers"]))
        )
        self.nf = nn.RMSNorm(d, eps=1e-6)
        self.head = nn.Linear(d, vocab + 1, bias=False)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, V + 1]`` of a (causal) token sequence ``[B, T]``."""
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.seg(pos)[None]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.nf(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Question indices ``[B, T_in]`` to greedy per-step probabilities ``[B, T_out, V]``
        (over the V answer symbols: the start symbol is never an answer)."""
        start = torch.full((x.shape[0], 1), self.vocab, dtype=torch.long, device=x.device)
        seq = torch.cat([x, start], dim=1)
        steps = []
        for _ in range(self.t_out):
            logit = self.logits(seq)[:, -1, : self.vocab]
            p = torch.softmax(logit, dim=-1)
            steps.append(p)
            seq = torch.cat([seq, p.argmax(dim=-1, keepdim=True)], dim=1)
        return torch.stack(steps, dim=1)


def build_module(config: dict) -> tuple:
    """The ``(torch.nn.Module, Codec)`` of a run's config (as read from its config.json)."""
    kind = config.get("kind", "seq2seq")
    if kind != "seq2seq":
        raise UnsupportedRun(
            f"a {kind} run has no torch.nn twin here (supported: seq2seq runs, recurrent or transformer)"
        )
    codec = Codec(config["codec"])
    model = config["model"]
    v, t_in, t_out = codec.vocab_size, codec.input_len, codec.output_len
    if model.get("kind", "repeat-seq2seq") == "transformer":
        return TransformerSeq2Seq(model, v, t_in, t_out), codec
    return RecurrentSeq2Seq(model, v, t_in, t_out, codec.pad_index, codec.eos_index), codec


# --- runs -----------------------------------------------------------------------------------


class TorchRun:
    """A run directory read into ``torch.nn``: ``module``, ``codec``, ``config``, ``predict``."""

    def __init__(self, run_dir: str, device: str = "cpu"):
        self.run_dir = run_dir
        self.config = _load_config(run_dir)
        self.module, self.codec = build_module(self.config)
        weights = os.path.join(run_dir, "weights.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{weights}: missing (a run writes it at the end of its first epoch)")
        state = _pytorch_names(load_safetensors(weights))
        self.module.load_state_dict(state, strict=True)
        self.module.to(device).eval()
        self.device = device

    @torch.no_grad()
    def probabilities(self, questions, batch_size: int = 1024) -> torch.Tensor:
        """Per-step probabilities ``[N, T_out, V]`` of valid questions (raises on the first bad one)."""
        x = torch.tensor([self.codec.encode_question(q) for q in questions], dtype=torch.long)
        outs = [
            self.module(x[i : i + batch_size].to(self.device)).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(outs) if outs else torch.zeros(0, self.codec.output_len, self.codec.vocab_size)

    def predict(self, questions, batch_size: int = 1024) -> list:
        """``[{"output", "confidence"} | {"error"}]`` per question, as ``seqcalc predict --jsonl``."""
        results, valid, rows = [], [], []
        for q in questions:
            try:
                rows.append(self.codec.encode_question(q))
                valid.append(len(results))
                results.append(None)
            except ValueError as e:
                results.append({"error": str(e)})
        if rows:
            x = torch.tensor(rows, dtype=torch.long)
            with torch.no_grad():
                probs = torch.cat(
                    [self.module(x[i : i + batch_size].to(self.device)).cpu() for i in range(0, len(x), batch_size)]
                )
            for k, i in enumerate(valid):
                out, conf = self.codec.decode(probs[k])
                results[i] = {"output": out, "confidence": round(conf * 1e6) / 1e6}
        return results


def load(run_dir: str, device: str = "cpu") -> TorchRun:
    """Reads a seqcalc run directory into ``torch.nn`` (weights loaded with ``strict=True``)."""
    return TorchRun(os.fspath(run_dir), device)
