"""Answers per second through Python (`Model.predict`) and through `seqcalc predict --jsonl`
on the same questions, with one and two threads. The command's time includes starting the
process and loading the model; its cost per answer is also given without them, as the
difference between N and 5N questions.

    python python/bench/predict_speed.py RUN_DIR [--n 10000] [--repeats 9] [--bin target/release/seqcalc]
"""

import argparse
import subprocess
import time

import seqcalc


def best_of_interleaved(repeats, *fs):
    """The best time of each of `fs`, run in turns (a busy machine slows them alike)."""
    best = [float("inf")] * len(fs)
    for _ in range(repeats):
        for i, f in enumerate(fs):
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
    many = [p["question"] for p in seqcalc.generate(5 * a.n, seed=7)]
    questions = many[: a.n]
    text = "\n".join(questions) + "\n"
    text_many = "\n".join(many) + "\n"
    print(f"{a.n} questions (3-digit additions, seed 7), best of {a.repeats}")
    for threads in (1, 2):
        model = seqcalc.load(a.run_dir, threads=threads)
        model.predict(questions[:100])
        cmd = [a.bin, "predict", "--model", a.run_dir, "--jsonl", "--threads", str(threads)]

        def cli(t):
            return lambda: subprocess.run(cmd, input=t, capture_output=True, text=True, check=True)

        py, one, five = best_of_interleaved(
            a.repeats, lambda: model.predict(questions), cli(text), cli(text_many)
        )
        marginal = (five - one) / (4 * a.n)
        print(
            f"threads {threads}: Python {a.n / py:,.0f} answers/s ({py * 1e6 / a.n:.2f} us each); "
            f"predict --jsonl {a.n / one:,.0f} answers/s ({one * 1e6 / a.n:.2f} us each with start-up, "
            f"{marginal * 1e6:.2f} us each without); Python / predict: {one / py:.2f} with start-up, "
            f"{marginal * a.n / py:.2f} without"
        )


if __name__ == "__main__":
    main()
