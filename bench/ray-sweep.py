"""The overhead Ray adds to `seqcalc sweep`: wall time of a 4-run sweep on a two-node loopback
cluster (a head and a worker, one CPU each) against the same sweep on this machine with
--parallel 2, and the cost per run of a sweep of runs that train almost nothing.

    python bench/ray-sweep.py [--reps 3] [--tiny-runs 16]     (a Python with ray; target/release/seqcalc)

It also times a node loss: a head without CPUs and two one-CPU workers, one run training on a
worker when that worker is killed; the seconds until the run trains again on the other.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray.cluster_utils import Cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = str(ROOT / "target" / "release" / "seqcalc")
# The 4-run sweep of tests/ray: 2-digit addition, 100 short epochs, a few seconds a run.
SWEEP = (
    "--grid hidden=32,64 --grid cell=lstm,gru --seeds 1 --digits 2 --size 2000 --epochs 100 "
    "--patience 0 --lr 0.005 --batch-size 64 --seed 3 --threads 1 --eval-n 200"
).split()
# Runs that train next to nothing: one epoch of 200 questions, 10 scored.
TINY = "--digits 2 --size 200 --epochs 1 --hidden 8 --threads 1 --eval-n 10".split()


def timed(cmd):
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.time() - t0
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    return secs


def sweep(runs, name, args, address=None):
    cmd = [BIN, "sweep", "--runs-dir", runs, "--name", name, *args]
    if address:
        cmd += ["--ray", address, "--python", sys.executable]
    return cmd


def node_loss(reps):
    sys.path.insert(0, str(ROOT / "tests" / "ray"))
    from test_ray_sweep import cells_under, epochs_done, run_of

    for rep in range(reps):
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        workers = [c.add_node(num_cpus=1), c.add_node(num_cpus=1)]
        c.wait_for_nodes()
        try:
            with tempfile.TemporaryDirectory() as d:
                args = [a for a in SWEEP]
                args[args.index("hidden=32,64")] = "hidden=64"
                args[args.index("cell=lstm,gru")] = "cell=lstm"
                proc = subprocess.Popen(sweep(d, "n", args, c.address), stdout=subprocess.DEVNULL)
                sweep_dir = Path(d) / "n"
                run = "hidden_64_cell_lstm_seed_3"
                lock = sweep_dir / "runs" / run / "lock"
                victim = None
                while victim is None:
                    for w in workers:
                        for pid in cells_under(w.all_processes["raylet"][0].process.pid):
                            if run_of(pid, sweep_dir) and epochs_done(sweep_dir, run) >= 5:
                                victim, old = w, str(pid)
                    time.sleep(0.02)
                t0 = time.time()
                c.remove_node(victim, allow_graceful=False)
                while not lock.exists() or lock.read_text().strip() in ("", old):
                    time.sleep(0.02)
                print(f"node loss {rep + 1}: the run trained again after {time.time() - t0:.2f} s")
                proc.wait()
        finally:
            c.shutdown()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tiny-runs", type=int, default=16)
    a = p.parse_args()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    tiny = TINY + ["--seeds", str(a.tiny_runs)]
    tiny1 = TINY + ["--seeds", "1"]
    rows = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            for rep in range(a.reps):
                for label, cmd in [
                    ("4 runs, local --parallel 2", sweep(d, f"l{rep}", SWEEP + ["--parallel", "2"])),
                    ("4 runs, Ray 2 nodes x 1 CPU", sweep(d, f"r{rep}", SWEEP, c.address)),
                    (f"{a.tiny_runs} tiny runs, local --parallel 2", sweep(d, f"tl{rep}", tiny + ["--parallel", "2"])),
                    (f"{a.tiny_runs} tiny runs, Ray 2 nodes x 1 CPU", sweep(d, f"tr{rep}", tiny, c.address)),
                    ("1 tiny run, local", sweep(d, f"t1l{rep}", tiny1)),
                    ("1 tiny run, Ray 2 nodes x 1 CPU", sweep(d, f"t1r{rep}", tiny1, c.address)),
                ]:
                    rows.setdefault(label, []).append(timed(cmd))
    finally:
        c.shutdown()
    node_loss(a.reps)
    print(f"| sweep | median wall s | runs ({a.reps} reps) |")
    print("| --- | --- | --- |")
    for label, xs in rows.items():
        print(f"| {label} | {statistics.median(xs):.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")


if __name__ == "__main__":
    main()
