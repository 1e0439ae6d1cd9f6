"""Every bad input is a SeqcalcError subclass with the command line's one-line message, never a
crash."""

import pytest

import seqcalc
from seqcalc import ArgumentError, ConfigError, QuestionError, RunDirError, SeqcalcError


def one_line(e):
    text = str(e.value)
    assert text and "\n" not in text, text
    assert isinstance(e.value, SeqcalcError)
    return text


def test_missing_or_damaged_run_directories(tmp_path):
    with pytest.raises(RunDirError) as e:
        seqcalc.load(tmp_path / "nope")
    assert one_line(e).endswith("nope: no such run directory")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        seqcalc.load(f)
    with pytest.raises(RunDirError, match="config.json: missing: not a run directory"):
        seqcalc.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        seqcalc.load(tmp_path)
    with pytest.raises(RunDirError):
        seqcalc.history(tmp_path / "nope")
    with pytest.raises(RunDirError, match="no such run directory"):
        seqcalc.resume(tmp_path / "nope")


def test_a_run_without_weights(tmp_path, trained):
    d = tmp_path / "copy"
    d.mkdir()
    (d / "config.json").write_bytes((trained[0].run_dir / "config.json").read_bytes())
    with pytest.raises(RunDirError) as e:
        seqcalc.load(d)
    assert "weights.safetensors" in one_line(e)


def test_bad_configs():
    with pytest.raises(ConfigError) as e:
        seqcalc.config("no-such-experiment")
    assert "neither a built-in experiment nor a config file" in one_line(e)
    with pytest.raises(ConfigError, match="unknown field"):
        seqcalc.config({"kind": "seq2seq", "hiden": 3})
    with pytest.raises(ConfigError, match='unknown run kind "lstm"'):
        seqcalc.config({"kind": "lstm"})
    with pytest.raises(ConfigError, match="line 4, column 10"):
        seqcalc.config('kind = "seq2seq"\nseed = 1\n[model]\nhidden = "x"\n')
    c = seqcalc.config()
    c["model"]["hidden"] = 0
    with pytest.raises(ConfigError, match="hidden"):
        seqcalc.config(c)
    with pytest.raises(ConfigError, match="hidden"):
        seqcalc.train(c, run_dir="never-made")
    with pytest.raises(ArgumentError):
        seqcalc.config({"kind": "seq2seq"}, quick=True)
    with pytest.raises(ConfigError, match="a config must be plain data"):
        seqcalc.config({"seed": object()})
    with pytest.raises(TypeError):
        seqcalc.config(3)
    with pytest.raises(ConfigError, match="seq2seq task"):
        seqcalc.generate(3, config="brownlee-mlp")


def test_bad_task_fields():
    with pytest.raises(ConfigError, match="unknown field"):
        seqcalc.generate(3, digitz=3)
    with pytest.raises(ConfigError):
        seqcalc.generate(3, digits=0)
    with pytest.raises(ConfigError):
        seqcalc.generate(3, task="no-such-task")


def test_bad_numbers(trained):
    model = trained[0].model
    for kwargs, msg in [
        ({"n": 0}, "n 0 must be in 1..=10000000"),
        ({"n": -5}, "n -5 must be in 1..=10000000"),
        ({"n": 10**12}, "n 1000000000000 must be in"),
        ({"seed": -1}, "seed -1 must be in 0..="),
        ({"n": 10, "exhaustive": True}, "exhaustive scores every question"),
        ({"lengths": [3]}, "apply to long-addition runs"),
    ]:
        with pytest.raises(ArgumentError) as e:
            model.evaluate(**kwargs)
        assert msg in one_line(e)
    with pytest.raises(ArgumentError, match="threads 0 must be in 1..="):
        seqcalc.load(trained[0].run_dir, threads=0)
    with pytest.raises(ArgumentError, match="threads 9999 must be in 1..="):
        seqcalc.load(trained[0].run_dir, threads=9999)
    with pytest.raises(ArgumentError, match="n -1 must be in 0..="):
        seqcalc.generate(-1)
    with pytest.raises(ArgumentError, match="n 99999999999 must be in 0..="):
        seqcalc.generate(99_999_999_999)
    with pytest.raises(ArgumentError, match="seed -3"):
        seqcalc.generate(3, seed=-3)


def test_bad_questions_and_answers_to_encode():
    with pytest.raises(QuestionError) as e:
        seqcalc.encode(["12+34", "1x2"])
    assert "question 1 \"1x2\": unknown character 'x'" in one_line(e)
    with pytest.raises(QuestionError):
        seqcalc.encode(["1234567+1"])
    with pytest.raises(QuestionError, match="answer 0"):
        seqcalc.encode(["1+1"], ["2a"])
    with pytest.raises(ArgumentError, match="2 answers for 1 questions"):
        seqcalc.encode(["1+1"], ["2", "3"])


def test_encode_and_exhaustive_refuse_runs_they_do_not_apply_to(tmp_path):
    m = seqcalc.train("brownlee-mlp", run_dir=tmp_path / "mlp").model
    with pytest.raises(ArgumentError, match="seq2seq model's codec"):
        m.encode(["1+1"])
    with pytest.raises(ArgumentError, match="regression run takes n and seed only"):
        m.evaluate(exhaustive=True)
