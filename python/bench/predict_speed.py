"""Answers per second through Python (`Model.predict`) and through `seqcalc predict --jsonl`
on the same questions, one and two threads.

    python python/bench/predict_speed.py RUN_DIR [--n 10000] [--repeats 9] [--bin target/release/seqcalc]
"""

import argparse
import subprocess
import time

import seqcalc


def best_of_interleaved(repeats, a, b):
    """The best time of each of `a` and `b`, run in turns (a busy machine slows both alike)."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, f in enumerate((a, b)):
            t0 = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--bin", default="target/release/seqcalc")
    a = ap.parse_args()
    questions = [p["question"] for p in seqcalc.generate(a.n, seed=7)]
    text = "\n".join(questions) + "\n"
    print(f"{a.n} questions, best of {a.repeats}")
    for threads in (1, 2):
        model = seqcalc.load(a.run_dir, threads=threads)
        model.predict(questions[:100])
        cmd = [a.bin, "predict", "--model", a.run_dir, "--jsonl", "--threads", str(threads)]
        py, cli = best_of_interleaved(
            a.repeats,
            lambda: model.predict(questions),
            lambda: subprocess.run(cmd, input=text, capture_output=True, text=True, check=True),
        )
        print(
            f"threads {threads}: Python {a.n / py:,.0f} answers/s ({py * 1e6 / a.n:.2f} us each), "
            f"predict --jsonl {a.n / cli:,.0f} answers/s ({cli * 1e6 / a.n:.2f} us each, process start "
            f"and model load included); Python/CLI {cli / py:.2f}"
        )


if __name__ == "__main__":
    main()
