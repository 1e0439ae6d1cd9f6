"""bench/reference/pytorch_levels.py: the PyTorch twin of the coupled transformer on the
two-level scratchpads writes the same working as `seqcalc predict`.

Needs torch (skipped without it) and the `seqcalc` binary (SEQCALC_BIN, or target/release/seqcalc
of this checkout) for the comparisons; tiny runs of both tasks are trained here in seconds.
"""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "reference", "pytorch_levels.py")
BIN = os.environ.get("SEQCALC_BIN", os.path.join(ROOT, "target", "release", "seqcalc"))
sys.path.insert(0, os.path.dirname(SCRIPT))

import pytorch_levels as pl  # noqa: E402

QUESTIONS = {
    "many-operand-addition": ["95+7+99", "12+345+6", "999+1+5", "5+5+5+5+5", "123456+654321+99", "1+2", "100+0+77"],
    "multiplication": ["47*36", "9*9", "1234*567", "99999*99", "7*123456", "10*10", "4321*765"],
}
#: A shape several of QUESTIONS share, for the loss comparison.
SHAPE = {"many-operand-addition": (3, 3), "multiplication": (4, 3)}


def test_sequences_written_by_hand():
    # The examples of src/codec/levels.rs.
    s = pl.sequence(pl.Sum.from_decimal(["95", "7", "99"]))
    p, e, b, z, semi = pl.PLUS, pl.EQUALS, pl.BOS, pl.EOS, pl.SEMI
    assert s.tokens == [b, 0, 9, 5, p, 0, 0, 7, p, 0, 9, 9, e, 2, 0, 1, semi, 1, 0, 2, z]
    assert (s.prompt, s.answer_rows) == (13, [17, 18, 19])
    assert s.seg[:4] == [0, 5, 5, 5] and s.seg[5] == 3 and s.seg[17] == 4
    assert s.pos[17] == pl.at(3, 2) and s.pos[20] == pl.NO_POSITION
    s = pl.sequence(pl.Product.from_decimal("47", "36"))
    t = pl.TIMES
    assert s.tokens == [b, 4, 7, t, 3, 6, e, 0, 2, 4, 8, 2, semi, 2, 8, 2, semi, 0, 1, 2, 4, 1, semi, 9, 6, 1, z]
    assert (s.prompt, s.answer_rows) == (7, [13, 23, 24, 25])
    assert (s.seg[9], s.seg[10]) == (12, 2)
    assert pl.read_answer(s, s.tokens) == [2, 9, 6, 1]


def test_buckets_and_window_as_seqcalc_has_them():
    s = pl.sequence(pl.Sum.from_decimal(["95", "7", "99"]))
    pos = torch.tensor(s.pos, dtype=torch.int64)
    bucket, sees = pl.geometry(pos, pos, 2)
    # s_3's units digit sees a_3's and s_2's units digits, not a_1's (two levels down).
    assert sees[17, 11] and sees[17, 13] and not sees[17, 3]
    assert bucket[17, 13] == 2 and bucket[17, 20] == pl.SPECIAL_BUCKET
    s = pl.sequence(pl.Product.from_decimal("47", "36"))
    pos = torch.tensor(s.pos, dtype=torch.int64)
    bucket, sees = pl.geometry(pos, pos, 2)
    assert sees[13, 5] and sees[9, 5] and sees[15, 2] and sees[23, 2]
    assert bucket[23, 14] == 3 and bucket[13, 5] == pl.SPECIAL_BUCKET


@pytest.mark.parametrize("task,params", [("many-operand-addition", 68_508), ("multiplication", 134_392)])
def test_parameter_counts_of_the_experiments(task, params, tmp_path):
    if not os.path.exists(BIN):
        pytest.skip(f"no seqcalc binary at {BIN} (cargo build --release)")
    cfg = tmp_path / f"{task}.toml"
    cfg.write_text(subprocess.run([BIN, "experiment", "show", task], capture_output=True, text=True, check=True).stdout)
    model = pl.model_from_config(pl.read_config(str(cfg)))
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("task", ["many-operand-addition", "multiplication"])
def test_working_equals_seqcalc_predict_and_training_runs(task, tmp_path):
    if not os.path.exists(BIN):
        pytest.skip(f"no seqcalc binary at {BIN} (cargo build --release)")
    subprocess.run([BIN, "experiment", "run", task, "--quick", "--runs-dir", str(tmp_path)], capture_output=True, check=True)
    run = str(tmp_path / f"{task}-quick")
    r = subprocess.run([sys.executable, SCRIPT, "--check", run, "--seqcalc", BIN, "--threads", "1", "-v", *QUESTIONS[task]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(QUESTIONS[task])
    assert f"for {n}/{n} questions" in r.stdout
    example = os.path.join(os.path.dirname(BIN), "examples", "levels_loss")
    if os.path.exists(example):  # cargo build --release --example levels_loss
        same_shape = [q for q in QUESTIONS[task] if pl.parse_question(q, task == "multiplication").shape() == SHAPE[task]]
        losses = []
        for cmd in ([example, run], [sys.executable, SCRIPT, "--loss", run]):
            out = subprocess.run([*cmd, *same_shape], capture_output=True, text=True, check=True).stdout
            losses.append(float(out.strip().split("=")[1]))
        assert abs(losses[0] - losses[1]) <= 1e-5, losses
    r = subprocess.run([sys.executable, SCRIPT, "--train", "--config", os.path.join(run, "config.json"), "--steps", "3", "--threads", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-1]
    assert line.startswith("train steps=3 ") and "tokens_per_sec=" in line
