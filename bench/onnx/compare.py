#!/usr/bin/env python3
"""Check an exported ONNX model against `seqcalc predict` on many questions.

    python bench/onnx/compare.py --seqcalc target/release/seqcalc --run runs/keras-addition \
        --onnx keras-addition.onnx [--n 100000 | --exhaustive]

Asks both the same questions (`seqcalc data` of the run's task, or with --exhaustive every
ordered pair of the run's operands, e.g. all 1,000,000 3-digit additions), and reports how many
answers are equal and the largest differences of the per-step probabilities and of their logs
(seqcalc's `predict --jsonl --probs` gives probabilities, the softmax of the logits; log p
equals the logit up to a per-step constant). Exits 1 unless every answer is equal and every
probability within --tolerance (default 1e-4).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from predict import OnnxModel  # noqa: E402


def questions(args, cfg):
    if args.exhaustive:
        task = cfg["task"]
        top = 10 ** task["digits"]
        return [f"{a}{task['op']}{b}" for a in range(top) for b in range(top)]
    out = subprocess.run(
        [args.seqcalc, "data", "--config", os.path.join(args.run, "config.json"), "--format", "questions", "--n", str(args.n), "--seed", str(args.seed)],
        capture_output=True, text=True, check=True,
    ).stdout
    return out.splitlines()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seqcalc", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--exhaustive", action="store_true")
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    with open(os.path.join(args.run, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    qs = questions(args, cfg)
    model = OnnxModel(args.onnx)
    same = total = 0
    max_dp = max_dlogp = max_dconf = 0.0
    first_diff = None
    t_seqcalc = t_onnx = 0.0
    for start in range(0, len(qs), args.chunk):
        chunk = qs[start : start + args.chunk]
        t = time.time()
        out = subprocess.run([args.seqcalc, "predict", "--model", args.run, "--jsonl", "--probs"],
                             input="\n".join(chunk) + "\n", capture_output=True, text=True)
        want = [json.loads(line) for line in out.stdout.splitlines()]
        t_seqcalc += time.time() - t
        ref = np.array([w["probs"] for w in want], dtype=np.float32)
        t = time.time()
        rows = np.array([model.codec.encode(q) for q in chunk], dtype=np.int64)
        _, probs = model.run(rows)
        got = [model.codec.decode(p) for p in probs]
        t_onnx += time.time() - t
        for q, w, (out_text, conf) in zip(chunk, want, got):
            total += 1
            if w["output"] == out_text:
                same += 1
            elif first_diff is None:
                first_diff = (q, w["output"], out_text)
            max_dconf = max(max_dconf, abs(w["confidence"] - round(conf * 1e6) / 1e6))
        max_dp = max(max_dp, float(np.abs(ref - probs).max()))
        big = ref > 1e-6
        max_dlogp = max(max_dlogp, float(np.abs(np.log(ref[big]) - np.log(np.maximum(probs[big], 1e-30))).max()))
    print(f"{args.onnx}: {same:,}/{total:,} answers equal to seqcalc predict's; "
          f"max |probability difference| {max_dp:.2e}, max |log-probability difference| "
          f"(probabilities > 1e-6) {max_dlogp:.2e}, max confidence difference {max_dconf:.2e}; "
          f"seqcalc {t_seqcalc:.1f} s, onnxruntime (with encoding and decoding) {t_onnx:.1f} s")
    if first_diff:
        print(f"first different answer: {first_diff[0]!r}: seqcalc {first_diff[1]!r}, onnx {first_diff[2]!r}")
    return 0 if same == total and max_dp <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
