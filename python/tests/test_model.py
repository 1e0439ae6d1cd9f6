"""Loading a run and asking it questions; generating and encoding data."""

import math

import numpy as np
import pytest

import seqcalc


def test_load_reads_the_run_of_any_kind_and_says_what_it_is(trained):
    result, _ = trained
    model = seqcalc.load(result.run_dir, threads=1)
    assert model.kind == "seq2seq"
    assert model.threads == 1
    assert str(model.run_dir) == str(result.run_dir)
    assert model.config["kind"] == "seq2seq"
    assert model.config["name"] == "tiny"
    assert model.batch_rows >= 1


def test_predict_answers_with_per_character_confidences(trained):
    model = trained[0].model
    one = model.predict("7+8")
    assert isinstance(one, seqcalc.Answer)
    assert one.question == "7+8"
    assert one.output == "15"
    assert one.correct is True
    # The confidence is the product of the written symbols' probabilities (rounded to 1e-6).
    assert len(one.steps) == len(one.char_confidences) >= 2
    assert "".join(s for s, _ in one.steps).strip() == "15"
    assert math.isclose(math.prod(one.char_confidences), one.confidence, abs_tol=1e-6)
    assert all(0.0 < p <= 1.0 for p in one.char_confidences)

    questions = [f"{a}+{b}" for a in range(1, 11) for b in range(1, 11)]
    answers = model.predict(questions)
    assert [a.question for a in answers] == questions
    right = sum(a.output == str(eval(a.question)) for a in answers)
    assert right >= 85, f"only {right} of 100 right"
    assert all(a.correct == (a.output == str(eval(a.question))) for a in answers)
    assert answers[0].to_dict()["input"] == "1+1"


def test_predict_reports_questions_it_cannot_read(trained):
    model = trained[0].model
    with pytest.raises(seqcalc.QuestionError, match="unknown character 'x' at column 2"):
        model.predict(["1+1", "1x2"])
    got = model.predict(["1x2", "2+2"], errors="return")
    assert got[0].output is None and "unknown character 'x'" in got[0].error
    assert got[0].to_dict() == {"input": "1x2", "error": got[0].error}
    assert got[1].output == "4" and got[1].error is None
    with pytest.raises(seqcalc.QuestionError):
        model.predict("1" * 50 + "+1")
    with pytest.raises(seqcalc.ArgumentError, match="errors="):
        model.predict("1+1", errors="ignore")
    with pytest.raises(TypeError):
        model.predict(12)


def test_generate_gives_the_tasks_questions_with_exact_answers():
    probs = seqcalc.generate(200, seed=3)
    assert len(probs) == 200
    assert len({p["question"] for p in probs}) == 200  # the default task is unique
    for p in probs:
        assert str(eval(p["question"])) == p["answer"]
        assert set(p) == {"question", "answer", "operand_lens", "carries"}
    assert seqcalc.generate(200, seed=3) == probs
    assert seqcalc.generate(200, seed=4) != probs
    sub = seqcalc.generate(50, seed=1, digits=5, op="-")
    assert all("-" in p["question"] and str(eval(p["question"])) == p["answer"] for p in sub)
    assert max(max(p["operand_lens"]) for p in sub) <= 5
    expr = seqcalc.generate(20, task="expression", terms_max=3, brackets=1)
    assert any(p["question"].count("(") for p in expr) or len(expr) == 20
    assert seqcalc.generate(0) == []


def test_encode_gives_symbol_indices_as_the_codec_pads_and_reverses():
    # The README's example: " +0123456789", questions padded to 7 and reversed.
    assert seqcalc.alphabet() == " +0123456789"
    x, y = seqcalc.encode(["443+52", "12+345"], ["495", "357"])
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert x.shape == (2, 7) and y.shape == (2, 4)
    assert x[0].tolist() == [0, 4, 7, 1, 5, 6, 6]
    assert y[0].tolist() == [6, 11, 7, 0]
    only = seqcalc.encode("443+52")
    assert only.tolist() == [[0, 4, 7, 1, 5, 6, 6]]
    # A config's codec: Brownlee's pads on the left and does not reverse.
    b = seqcalc.encode(["7+8"], config="brownlee-seq2seq")
    assert b.tolist() == [[0, 0, 9, 1, 10]]


def test_a_model_encodes_with_its_own_codec(trained):
    model = trained[0].model
    qs = ["7+8", "10+10"]
    assert (model.encode(qs) == seqcalc.encode(qs, config=model.config)).all()
    x, y = model.encode(qs, ["15", "20"])
    assert x.shape[0] == y.shape[0] == 2


def test_history_is_a_list_of_records_and_a_dataframe(trained):
    result, _ = trained
    records = result.history
    assert [r["epoch"] for r in records] == list(range(1, 41))
    pandas = pytest.importorskip("pandas")
    frame = result.history_frame
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 40
    assert list(frame["val_exact"]) == [r["val_exact"] for r in records]
