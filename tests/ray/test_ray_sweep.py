"""`seqcalc sweep --ray` on a two-node Ray cluster on loopback (a head and a worker, one CPU
each, in this one machine).

A 4-run sweep of small models (a few seconds each) runs on the cluster while the worker node is
killed (mid-run) or the sweep's own process is SIGKILLed and the command run again. The sweep
must finish, each run's final weights must equal byte for byte those of the same sweep run on
this machine, and results.jsonl must hold each run once.

Run with `pytest tests/ray` in a Python that has `ray` and `pytest`; SEQCALC_BIN names the
seqcalc binary (default: target/release/seqcalc).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SEQCALC_BIN", ROOT / "target" / "release" / "seqcalc"))

# 2-digit addition, 100 short epochs (one checkpoint each): a few seconds a run, and they learn.
SWEEP = [
    "--grid", "hidden=32,64",
    "--grid", "cell=lstm,gru",
    "--seeds", "1",
    "--digits", "2",
    "--size", "2000",
    "--epochs", "100",
    "--patience", "0",
    "--lr", "0.005",
    "--batch-size", "64",
    "--seed", "3",
    "--threads", "1",
    "--eval-n", "200",
]  # fmt: skip
RUNS = [
    "hidden_32_cell_lstm_seed_3",
    "hidden_32_cell_gru_seed_3",
    "hidden_64_cell_lstm_seed_3",
    "hidden_64_cell_gru_seed_3",
]
TIMEOUT = 300


def sweep_cmd(runs_dir, name, address=None):
    cmd = [str(BIN), "sweep", "--runs-dir", str(runs_dir), "--name", name, *SWEEP]
    if address:
        cmd += ["--ray", address, "--python", sys.executable]
    return cmd


def weights(sweep_dir):
    return {
        run: hashlib.sha256(
            (sweep_dir / "runs" / run / "weights.safetensors").read_bytes()
        ).hexdigest()
        for run in RUNS
    }


def result_ids(sweep_dir):
    lines = (sweep_dir / "results.jsonl").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()]


def children(pid):
    """Pids whose parent is `pid`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            # The command name (field 2) may hold spaces; the parent pid follows it.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def cells_under(raylet_pid):
    """`seqcalc sweep-cell` processes started by the raylet's workers: the runs on that node."""
    return [
        c
        for w in children(raylet_pid)
        for c in children(w)
        if b"sweep-cell" in cmdline(c)
    ]


def run_of(pid, sweep_dir):
    """The run whose lock the process holds (the lock file records its pid)."""
    for run in RUNS:
        lock = sweep_dir / "runs" / run / "lock"
        if lock.exists() and lock.read_text().strip() == str(pid):
            return run
    return None


def epochs_done(sweep_dir, run):
    history = sweep_dir / "runs" / run / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


def wait_for(what, check, timeout=TIMEOUT):
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same sweep on this machine, two runs at a time: the weights every test compares."""
    runs_dir = tmp_path_factory.mktemp("local")
    t0 = time.time()
    out = subprocess.run(
        sweep_cmd(runs_dir, "s") + ["--parallel", "2"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    print(f"local sweep, --parallel 2: {time.time() - t0:.1f} s")
    return weights(runs_dir / "s")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    yield c
    c.shutdown()


def with_worker(c):
    """The cluster's worker node, added if an earlier test removed it."""
    workers = list(c.worker_nodes)
    node = workers[0] if workers else c.add_node(num_cpus=1)
    c.wait_for_nodes()
    return node


def test_a_node_lost_mid_run_costs_only_that_runs_progress(cluster, reference, tmp_path):
    worker = with_worker(cluster)
    raylet = worker.all_processes["raylet"][0].process.pid
    sweep_dir = tmp_path / "s"
    t0 = time.time()
    proc = subprocess.Popen(
        sweep_cmd(tmp_path, "s", cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # A run trains on the worker node and has checkpointed a few epochs: kill the node.
        def training_on_worker():
            for pid in cells_under(raylet):
                run = run_of(pid, sweep_dir)
                if run and epochs_done(sweep_dir, run) >= 5:
                    return pid, run

        lost_pid, lost = wait_for("a run training on the worker node", training_on_worker)
        lost_at = epochs_done(sweep_dir, lost)
        cluster.remove_node(worker, allow_graceful=False)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    print(f"ray sweep with a node lost: {time.time() - t0:.1f} s")
    assert proc.returncode == 0, out + err
    ids = result_ids(sweep_dir)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4, ids
    assert weights(sweep_dir) == reference
    # Another process (on the head node) took the lost run over and trained it to the end from
    # its checkpoint, its history whole.
    assert lost_at < 100
    assert (sweep_dir / "runs" / lost / "lock").read_text().strip() != str(lost_pid)
    assert epochs_done(sweep_dir, lost) == 100
    assert (sweep_dir / "sweep.md").exists() and (sweep_dir / "heatmap.svg").exists()


def test_a_killed_sweep_run_again_redoes_no_finished_run(cluster, reference, tmp_path):
    with_worker(cluster)
    sweep_dir = tmp_path / "s"
    cmd = sweep_cmd(tmp_path, "s", cluster.address)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # One run recorded, others training: kill the sweep's process (not its driver).
        wait_for(
            "a first result",
            lambda: (sweep_dir / "results.jsonl").exists() and result_ids(sweep_dir),
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    finished = result_ids(sweep_dir)
    assert 1 <= len(finished) < 4, finished
    stamps = {
        i: (sweep_dir / "runs" / i.replace("=", "_").replace(",", "_") / "weights.safetensors")
        .stat()
        .st_mtime_ns
        for i in finished
    }
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"({len(finished)} done before)" in again.stdout, again.stdout
    redone = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert len(redone) == 4 - len(finished), again.stdout
    assert not any(f"] {i}:" in line for i in finished for line in redone), again.stdout
    for i, stamp in stamps.items():
        path = sweep_dir / "runs" / i.replace("=", "_").replace(",", "_") / "weights.safetensors"
        assert path.stat().st_mtime_ns == stamp, f"{i} was trained again"
    ids = result_ids(sweep_dir)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4, ids
    assert weights(sweep_dir) == reference


def test_a_run_failing_by_its_own_fault_is_reported_once(cluster, tmp_path):
    with_worker(cluster)
    cmd = sweep_cmd(tmp_path, "s", cluster.address) + ["--ray-binary", str(tmp_path / "nothing")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not start" in errors[0], out.stderr
    assert not (tmp_path / "s" / "results.jsonl").read_text().strip()


def test_a_python_without_ray_is_one_line(tmp_path):
    cmd = sweep_cmd(tmp_path, "s") + ["--ray", "auto", "--python", sys.executable]
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "shadow"))
    (tmp_path / "shadow" / "ray").mkdir(parents=True)
    (tmp_path / "shadow" / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "cannot import ray" in out.stderr, out.stderr


def test_a_cluster_that_does_not_answer_is_one_line(tmp_path):
    cmd = sweep_cmd(tmp_path, "s") + ["--ray", "127.0.0.1:1", "--python", sys.executable]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "could not connect to the Ray cluster at 127.0.0.1:1" in out.stderr, out.stderr
