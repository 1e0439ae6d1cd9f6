"""Training in-process: callbacks, stopping, Ctrl-C with a checkpoint, resuming, other kinds."""

import json
import os
import signal
import threading

import pytest

import seqcalc
from conftest import EPOCHS, run_cli, tiny_config


def weights(run_dir):
    return (run_dir / "weights.safetensors").read_bytes()


def test_training_learns_and_tells_the_callback_each_epoch(trained):
    result, seen = trained
    assert not result.interrupted
    assert [r["epoch"] for r in seen] == list(range(1, EPOCHS + 1))
    history = result.history
    for r, h in zip(seen, history):
        assert isinstance(r.pop("improved"), bool)
        assert r == h
    first, last = history[0], history[-1]
    # It really learns: from guessing to nearly every validation answer right.
    assert first["val_exact"] < 0.3
    assert last["val_exact"] >= 0.9
    assert last["val_loss"] < first["val_loss"] / 5
    assert (result.run_dir / "manifest.json").is_file()
    assert result.model.evaluate(n=500)["exact_match"] >= 0.9


def test_callback_returning_false_stops_with_a_checkpoint_and_resume_finishes(tmp_path, trained):
    d = tmp_path / "stopped"
    result = seqcalc.train(tiny_config(), run_dir=d, on_epoch=lambda r: r["epoch"] < 3)
    assert result.interrupted
    assert len(result.history) == 3
    assert (d / "checkpoint").is_dir()
    again = seqcalc.resume(d)
    assert not again.interrupted
    assert len(again.history) == EPOCHS
    # Stopped and resumed: the same weights as a run never stopped.
    assert weights(d) == weights(trained[0].run_dir)


def test_resume_with_more_epochs_trains_a_finished_run_on(tmp_path, trained):
    d = tmp_path / "short"
    c = tiny_config()
    c["train"]["epochs"] = 3
    assert len(seqcalc.train(c, run_dir=d).history) == 3
    # Finished: resuming alone trains nothing; a higher bound trains on to it.
    assert len(seqcalc.resume(d).history) == 3
    assert len(seqcalc.resume(d, epochs=6).history) == 6
    with pytest.raises(seqcalc.ArgumentError, match="epochs 0 must be in 1"):
        seqcalc.resume(d, epochs=0)
    with pytest.raises(seqcalc.ArgumentError, match="epochs is for resume"):
        seqcalc._seqcalc.train_run(tiny_config(), os.fspath(tmp_path / "new"), open="new", epochs=5)


def test_keyboard_interrupt_in_a_callback_checkpoints_and_is_raised(tmp_path, trained):
    d = tmp_path / "ctrl-c"

    def on_epoch(r):
        if r["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seqcalc.train(tiny_config(), run_dir=d, on_epoch=on_epoch)
    assert (d / "checkpoint").is_dir()
    assert 2 <= len(seqcalc.history(d)) < EPOCHS
    assert seqcalc.load(d).predict("1+1").output  # the kept weights load
    seqcalc.resume(d)
    assert weights(d) == weights(trained[0].run_dir)


def test_a_real_sigint_while_rust_trains_stops_it_with_a_checkpoint(tmp_path, trained):
    d = tmp_path / "sigint"
    started, sent = threading.Event(), threading.Event()

    def on_epoch(r):
        started.set()
        # On a fast machine the run could end before the other thread gets to send the
        # signal: from the third epoch on, wait for it (it lands in Rust's loop, or here).
        if r["epoch"] >= 3:
            sent.wait(10)

    def send():
        if started.wait(60):
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

    # Python ignores SIGINT when it started with SIGINT ignored (a job started in the
    # background by a shell): give it the handler a terminal session has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Thread(target=send)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            seqcalc.train(tiny_config(), run_dir=d, on_epoch=on_epoch)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert (d / "checkpoint").is_dir()
    assert len(seqcalc.history(d)) < EPOCHS
    seqcalc.resume(d)
    assert weights(d) == weights(trained[0].run_dir)


def test_an_exception_in_a_callback_stops_training_and_is_raised(tmp_path):
    d = tmp_path / "boom"

    def on_epoch(r):
        raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        seqcalc.train(tiny_config(), run_dir=d, on_epoch=on_epoch)
    assert len(seqcalc.history(d)) == 1


def test_an_existing_run_is_refused_unless_restarted(tmp_path):
    d = tmp_path / "twice"
    cfg = tiny_config()
    cfg["train"]["epochs"] = 2
    seqcalc.train(cfg, run_dir=d)
    with pytest.raises(seqcalc.SeqcalcError, match="already holds a run"):
        seqcalc.train(cfg, run_dir=d)
    assert len(seqcalc.train(cfg, run_dir=d, restart=True).history) == 2


def test_runs_go_to_runs_dir_under_their_name(tmp_path):
    cfg = tiny_config("named")
    cfg["train"]["epochs"] = 1
    r = seqcalc.train(cfg, runs_dir=tmp_path, verbose=True)
    assert r.run_dir == tmp_path / "named"
    r = seqcalc.train(cfg, runs_dir=tmp_path, name="other")
    assert r.run_dir == tmp_path / "other"


def test_every_run_kind_trains_loads_answers_and_scores(tmp_path):
    lines = []
    reg = seqcalc.train("brownlee-mlp", run_dir=tmp_path / "mlp", on_line=lines.append)
    assert any("RMSE" in line for line in lines)
    m = reg.model
    assert m.kind == "regression"
    a = m.predict("12+57")
    assert a.value is not None and a.confidence is None and a.steps == []
    rep = m.evaluate(n=200, seed=1)
    assert rep["n"] == 200 and rep["rmse"] < 1.0
    for name, kind in [("length-generalisation-gru", "pair-gru"), ("length-generalisation", "coupled-transformer")]:
        cfg = seqcalc.config(name, quick=True)
        r = seqcalc.train(cfg, run_dir=tmp_path / kind)
        m = r.model
        assert m.kind == kind
        assert m.predict("12+57").output.isdigit()
        rep = m.evaluate(n=10, lengths=[3, 6], stress=True)
        assert [(x["length"], x["set"]) for x in rep["results"]][:2] == [(3, "random"), (3, "stress")]
        assert all(x["n"] > 0 for x in rep["results"])
        assert r.history


def test_many_operand_and_multiplication_runs_score_their_grid(tmp_path, binary):
    for name, rows in [("many-operand-addition", [2, 3]), ("multiplication", [1, 3])]:
        cfg = seqcalc.config(name, quick=True)
        cfg["lengthgen"]["train"]["threads"] = 1
        m = seqcalc.train(cfg, run_dir=tmp_path / name).model
        rep = m.evaluate(n=4, seed=5, lengths=rows, stress=True)
        assert [(c["row"], c["col"]) for c in rep["cells"]] == [(r, c) for r in rows for c in rows]
        assert all(c["random_n"] == 4 and c["stress_n"] > 0 for c in rep["cells"])
        # The same cells as `seqcalc eval --json` (but for the time each took).
        lengths = ",".join(map(str, rows))
        cli = run_cli(binary, "eval", "--model", tmp_path / name, "--lengths", lengths,
                      "--n", 4, "--seed", 5, "--stress", "--json")
        strip = lambda cells: [{k: v for k, v in c.items() if k != "secs"} for c in cells]
        assert strip(json.loads(cli.stdout)["cells"]) == strip(rep["cells"])
    with pytest.raises(seqcalc.ArgumentError, match="operand counts"):
        seqcalc.load(tmp_path / "many-operand-addition").evaluate(lengths=[1, 2])
