"""The package and the command line give the same answers, scores, data and weights."""

import json

import pytest

import seqcalc
from conftest import run_cli, tiny_config


@pytest.fixture(scope="module")
def cli_run(binary, tmp_path_factory):
    """The tiny run trained by `seqcalc train --config`."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "tiny.json"
    cfg.write_text(json.dumps(tiny_config()))
    run_cli(binary, "train", "--config", cfg, "--runs-dir", tmp)
    return tmp / "tiny"


def test_python_and_cli_training_write_the_same_weights(cli_run, trained):
    # One training path: same config, seed and thread count give the same bits.
    py_run = trained[0].run_dir
    assert (cli_run / "weights.safetensors").read_bytes() == (
        py_run / "weights.safetensors"
    ).read_bytes()


def test_answers_are_identical_to_predict_jsonl(binary, cli_run):
    questions = [p["question"] for p in seqcalc.generate(3000, seed=11)]
    questions += ["1x2", "", "7+8", " 10+10 ", "1" * 40]
    cli = run_cli(binary, "predict", "--model", cli_run, "--jsonl", input="\n".join(questions) + "\n", check=False)
    assert cli.returncode == 1  # some questions could not be asked
    want = [json.loads(line) for line in cli.stdout.splitlines()]
    for threads in (1, 2):
        model = seqcalc.load(cli_run, threads=threads)
        got = [a.to_dict() for a in model.predict(questions, errors="return")]
        assert got == want


def test_evaluate_gives_the_numbers_of_eval_json(binary, cli_run):
    model = seqcalc.load(cli_run)
    for args, kwargs in [((), {}), (("--n", 500, "--seed", 3), {"n": 500, "seed": 3}), (("--exhaustive",), {"exhaustive": True})]:
        cli = json.loads(run_cli(binary, "eval", "--model", cli_run, "--json", *args).stdout)
        got = model.evaluate(**kwargs)
        for rep in (cli, got):
            rep.pop("answers_per_sec")
        assert got == cli, args
    assert got["exhaustive"] and got["n"] == 100


def test_generate_gives_what_data_writes(binary):
    for args, kwargs in [
        ((), {}),
        (("--seed", 5, "--n", 300), {"seed": 5, "n": 300}),
        (("--digits", 5, "--op", "-", "--n", 100), {"n": 100, "digits": 5, "op": "-"}),
    ]:
        cli = run_cli(binary, "data", "--format", "jsonl", *args).stdout
        want = [json.loads(line) for line in cli.splitlines()]
        assert seqcalc.generate(**kwargs) == want, args
