#!/usr/bin/env python3
"""Answer arithmetic questions with a seqcalc model exported to ONNX, in onnxruntime.

    seqcalc export --format onnx runs/keras-addition -o keras-addition.onnx
    python bench/onnx/predict.py keras-addition.onnx "12+345" "7+8"
    seqcalc data --format questions --n 100 | python bench/onnx/predict.py keras-addition.onnx --jsonl

End to end from question text to answer: the model file carries its codec (metadata
`seqcalc.codec`: alphabet, widths, padding, reversal, end symbol), this script encodes each
question into symbol indices as seqcalc does, runs the graph (`question` int64 [N, T_in] ->
`logits`, `probs` float [N, T_out, V]) and decodes the most likely symbol of each step, as
`seqcalc predict` does. Needs only numpy and onnxruntime.
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort

STEP_SEP, PART_SEP = ";", ","


class Codec:
    """The run's codec, read from the model's metadata."""

    def __init__(self, cfg):
        self.alphabet = cfg["alphabet"]
        self.index = {c: i for i, c in enumerate(self.alphabet)}
        self.input_len, self.output_len = cfg["input_len"], cfg["output_len"]
        self.pad, self.pad_side = cfg["pad"], cfg["pad_side"]
        self.reverse_input, self.reverse_output = cfg["reverse_input"], cfg["reverse_output"]
        self.scratchpad = cfg.get("scratchpad", False)
        self.eos = self.index[cfg["eos"]] if cfg.get("eos") is not None else None

    def encode(self, question):
        """Symbol indices [T_in] of a question as typed; ValueError with seqcalc's message."""
        q = question.strip()
        if not q:
            raise ValueError("empty question")
        for col, ch in enumerate(q, start=1):
            if ch not in self.index:
                raise ValueError(f"unknown character {ch!r} at column {col}; this model knows `{self.alphabet}`")
        if len(q) > self.input_len:
            raise ValueError(f"question is {len(q)} characters long; this model takes at most {self.input_len}")
        fill = self.pad * (self.input_len - len(q))
        text = q + fill if self.pad_side == "right" else fill + q
        if self.reverse_input:
            text = text[::-1]
        return [self.index[c] for c in text]

    def decode(self, probs):
        """Answer and confidence from per-step probabilities [T_out, V]."""
        best = probs.argmax(axis=1)
        indices, confidence = [], 1.0
        for k, p in zip(best, probs[np.arange(len(best)), best]):
            indices.append(int(k))
            confidence *= max(float(p), 0.0)
            if k == self.eos:
                indices.pop()
                break
        text = "".join(self.alphabet[i] for i in indices).strip(self.pad)
        if self.scratchpad:
            text = text.replace(PART_SEP, STEP_SEP).rsplit(STEP_SEP, 1)[-1]
        if self.reverse_output:
            text = text[::-1]
        return text, confidence


class OnnxModel:
    def __init__(self, path, threads=0):
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.codec = Codec(json.loads(meta["seqcalc.codec"]))

    def run(self, indices, batch=4096):
        """logits, probs [N, T_out, V] of encoded questions [N, T_in]."""
        outs = [self.session.run(["logits", "probs"], {"question": indices[i : i + batch]}) for i in range(0, len(indices), batch)]
        if not outs:
            shape = (0, self.codec.output_len, len(self.codec.alphabet))
            return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def predict(self, questions):
        """One dict per question: output and confidence, or error (as `predict --jsonl`)."""
        results, rows, where = [], [], []
        for q in questions:
            try:
                rows.append(self.codec.encode(q))
                where.append(len(results))
                results.append(None)
            except ValueError as e:
                results.append({"input": q, "error": str(e)})
        _, probs = self.run(np.array(rows, dtype=np.int64).reshape(-1, self.codec.input_len))
        for i, p in zip(where, probs):
            out, conf = self.codec.decode(p)
            results[i] = {"input": questions[i], "output": out, "confidence": round(conf * 1e6) / 1e6}
        return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="an ONNX file written by `seqcalc export --format onnx`")
    ap.add_argument("questions", nargs="*", help="questions as a person writes them; none: one per line of stdin")
    ap.add_argument("--jsonl", action="store_true", help="one JSON object per question")
    args = ap.parse_args()
    model = OnnxModel(args.model)
    questions = args.questions or [line.rstrip("\r\n") for line in sys.stdin]
    failed = False
    for r in model.predict(questions):
        failed |= "error" in r
        if args.jsonl:
            print(json.dumps(r))
        elif "error" in r:
            print(f"error: {r['input']!r}: {r['error']}", file=sys.stderr)
        else:
            print(f"{r['input']} = {r['output']}   (confidence {r['confidence']:.3f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
