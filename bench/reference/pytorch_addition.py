#!/usr/bin/env python3
"""seqcalc's default experiment in PyTorch, for bench/compare.

The Keras `addition_rnn` model: nn.LSTM(chars -> 128) encoder; its last hidden state repeated
once per answer character (RepeatVector) into nn.LSTM(128 -> 128), zero initial state;
nn.Linear(128 -> chars) at every step; cross-entropy averaged over answers and positions; Adam
(lr 1e-3, eps 1e-7 as Keras); batch 128; the training set reshuffled every epoch. CPU only.

--init keras gives Keras's initialisation (Glorot-uniform input kernels, orthogonal recurrent
kernels, zero biases with forget-gate bias 1, Glorot-uniform dense layer); --init torch keeps
PyTorch's. One line per epoch on stdout and in --csv: fit_s is the wall time of the epoch's
training plus its validation pass (loss, per-character accuracy and exact match together).

    python bench/reference/pytorch_addition.py --init keras --threads 2 --epochs 40 --csv torch.csv
"""
import argparse
import csv
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from addition_data import CSV_COLUMNS, add_common_flags, make_dataset  # noqa: E402


class Seq2Seq(nn.Module):
    def __init__(self, n_chars, hidden, answer_len):
        super().__init__()
        self.answer_len = answer_len
        self.encoder = nn.LSTM(n_chars, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_chars)

    def forward(self, x):                                     # x: (B, T_in, C) one-hot
        _, (h, _) = self.encoder(x)                           # h: (1, B, H)
        repeated = h[-1].unsqueeze(1).expand(-1, self.answer_len, -1)
        y, _ = self.decoder(repeated)                         # (B, T_out, H)
        return self.head(y)                                   # logits (B, T_out, C)


def keras_init_(model):
    hidden = model.decoder.hidden_size
    for lstm in (model.encoder, model.decoder):
        nn.init.xavier_uniform_(lstm.weight_ih_l0)
        nn.init.orthogonal_(lstm.weight_hh_l0)
        nn.init.zeros_(lstm.bias_ih_l0)
        nn.init.zeros_(lstm.bias_hh_l0)
        with torch.no_grad():
            lstm.bias_ih_l0[hidden:2 * hidden].fill_(1.0)     # gates i, f, g, o: forget bias 1
    nn.init.xavier_uniform_(model.head.weight)
    nn.init.zeros_(model.head.bias)


def answers_per_sec(model, x, seconds):
    """Softmax outputs of batches of 1,024 questions, as seqcalc bench measures its inference."""
    batch = x[:1024] if len(x) >= 1024 else x.repeat(1024 // len(x) + 1, 1, 1)[:1024]
    model.eval()
    with torch.no_grad():
        for _ in range(5):
            model(batch).softmax(-1)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(batch).softmax(-1)
            n += len(batch)
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(ap)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--adam-eps", type=float, default=1e-7)
    ap.add_argument("--init", choices=["torch", "keras"], default="torch")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = make_dataset(args.digits, args.op, args.training_size, seed=args.seed)
    n_chars = len(data["chars"])
    x_train = torch.from_numpy(data["x_train"].astype(np.float32))
    y_train = torch.from_numpy(data["y_train"].argmax(-1).astype(np.int64))
    x_val = torch.from_numpy(data["x_val"].astype(np.float32))
    y_val = torch.from_numpy(data["y_val"].argmax(-1).astype(np.int64))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, init {args.init}; "
          f"{len(x_train)} train / {len(x_val)} validation, batch {args.batch_size}, seed {args.seed}", flush=True)

    model = Seq2Seq(n_chars, args.hidden, data["answer_len"])
    if args.init == "keras":
        keras_init_(model)
    print(f"# parameters {sum(p.numel() for p in model.parameters())}", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=args.adam_eps)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)

    out = open(args.csv, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    print(",".join(CSV_COLUMNS), flush=True)
    start, cum_fit, streak, n = time.perf_counter(), 0.0, 0, len(x_train)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, args.batch_size):
            idx = perm[s:s + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = loss_fn(logits.reshape(-1, n_chars), yb.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.detach().argmax(-1) == yb).sum().item()
        t1 = time.perf_counter()
        model.eval()
        val_loss, val_correct, val_exact = 0.0, 0, 0
        with torch.no_grad():
            for s in range(0, len(x_val), 1000):
                logits, yb = model(x_val[s:s + 1000]), y_val[s:s + 1000]
                val_loss += loss_fn(logits.reshape(-1, n_chars), yb.reshape(-1)).item() * len(yb)
                right = logits.argmax(-1) == yb
                val_correct += right.sum().item()
                val_exact += right.all(dim=1).sum().item()
        now = time.perf_counter()
        fit_s, eval_s = now - t0, now - t1
        cum_fit += fit_s
        exact = val_exact / len(x_val)
        answer_len = data["answer_len"]
        row = [epoch, f"{fit_s:.3f}", f"{total_loss / n:.5f}", f"{correct / (n * answer_len):.5f}",
               f"{val_loss / len(x_val):.5f}", f"{val_correct / (len(x_val) * answer_len):.5f}",
               f"{exact:.5f}", f"{eval_s:.3f}", f"{cum_fit:.3f}", f"{now - start:.3f}"]
        writer.writerow(row)
        out.flush()
        print(",".join(map(str, row)), flush=True)
        streak = streak + 1 if args.stop_at > 0 and exact >= args.stop_at else 0
        if args.stop_at > 0 and streak >= args.patience:
            print(f"# stopped: validation exact match >= {args.stop_at} for {args.patience} epochs", flush=True)
            break
    out.close()
    if args.infer_seconds > 0:
        print(f"answers_per_sec={answers_per_sec(model, x_val, args.infer_seconds):.1f}", flush=True)


if __name__ == "__main__":
    main()
