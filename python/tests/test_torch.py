"""seqcalc.torch: runs read into torch.nn answer as `seqcalc predict --jsonl` does.

Needs torch (skipped without it) and the `seqcalc` binary (SEQCALC_BIN, or target/release/seqcalc
of this checkout). Runs to compare: SEQCALC_TORCH_RUNS (run directories separated by `:`), else a
tiny run of each supported family trained here in seconds. SEQCALC_TORCH_N sets how many
questions each run is asked (default 2,000).
"""

import json
import os
import subprocess

import pytest

torch = pytest.importorskip("torch")

from seqcalc.torch import UnsupportedRun, load, load_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SEQCALC_BIN", os.path.join(ROOT, "target", "release", "seqcalc"))
N = int(os.environ.get("SEQCALC_TORCH_N", "2000"))

# Tiny runs of each family the module expresses: (name, `seqcalc train` flags).
TINY = [
    ("lstm-repeat", ["--digits", "2", "--hidden", "16", "--epochs", "2", "--size", "2000"]),
    ("gru-layers2", ["--digits", "2", "--cell", "gru", "--layers", "2", "--hidden", "16", "--epochs", "2", "--size", "2000"]),
    ("rnn-embedding-mask", ["--digits", "2", "--cell", "simplernn", "--input", "embedding", "--mask", "--hidden", "16", "--epochs", "2", "--size", "2000"]),
    ("lstm-teacher-attention", ["--digits", "2", "--decoder", "teacher-forced", "--attention", "--hidden", "16", "--epochs", "2", "--size", "2000"]),
    ("transformer", ["--digits", "2", "--arch", "transformer", "--hidden", "16", "--heads", "2", "--layers", "2", "--epochs", "1", "--size", "2000"]),
]


def seqcalc(*args, stdin=None):
    r = subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"seqcalc {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    if not os.path.exists(BIN):
        pytest.skip(f"no seqcalc binary at {BIN} (cargo build --release)")
    given = os.environ.get("SEQCALC_TORCH_RUNS")
    if given:
        return [p for p in given.split(":") if p]
    tmp = str(tmp_path_factory.mktemp("runs"))
    out = []
    for name, flags in TINY:
        seqcalc("train", "--runs-dir", tmp, "--name", name, "--seed", "7", "--threads", "1", *flags)
        out.append(os.path.join(tmp, name))
    return out


def questions_for(run_dir, n):
    cfg = os.path.join(run_dir, "config.json")
    return seqcalc("data", "--config", cfg, "--format", "questions", "--n", str(n), "--seed", "4242").splitlines()


def test_runs_load_strictly_and_answer_as_predict_does(runs):
    for run_dir in runs:
        qs = questions_for(run_dir, N)
        want = [json.loads(line) for line in seqcalc("predict", "--model", run_dir, "--jsonl", stdin="\n".join(qs) + "\n").splitlines()]
        got = load(run_dir).predict(qs)
        assert len(want) == len(got) == len(qs)
        same = sum(w["output"] == g["output"] for w, g in zip(want, got))
        worst = max(abs(w["confidence"] - g["confidence"]) for w, g in zip(want, got))
        print(f"{run_dir}: {same}/{len(qs)} answers equal, max confidence difference {worst:.2e}")
        assert same == len(qs), run_dir
        assert worst <= 1e-4, run_dir


def test_weight_files_carry_pytorch_names(runs):
    for run_dir in runs:
        names = set(load_safetensors(os.path.join(run_dir, "weights.safetensors")))
        module = load(run_dir).module
        assert names == set(module.state_dict()), run_dir


def test_errors_are_the_clis(runs):
    m = load(runs[0])
    got = m.predict(["1x2", "", "1" * 40])
    assert got[0] == {"error": f"unknown character 'x' at column 2; this model knows `{m.codec.alphabet}`"}
    assert got[1] == {"error": "empty question"}
    assert got[2]["error"].startswith("question is 40 characters long; this model takes at most")
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        load(os.path.join(runs[0], "nope"))


def test_unsupported_kinds_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "regression"}))
    with pytest.raises(UnsupportedRun, match="a regression run has no torch.nn twin"):
        load(tmp_path)
