"""The package as installed: its stubs, docstrings and the listing of experiments."""

from pathlib import Path

import seqcalc


def test_the_package_is_typed_and_documented():
    pkg = Path(seqcalc.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_seqcalc.pyi").is_file()
    for name in seqcalc.__all__:
        obj = getattr(seqcalc, name)
        if callable(obj):
            assert obj.__doc__, name
    for method in ("predict", "evaluate", "encode", "history"):
        assert getattr(seqcalc.Model, method).__doc__, method
    assert issubclass(seqcalc.ConfigError, ValueError)
    assert issubclass(seqcalc.RunDirError, seqcalc.SeqcalcError)


def test_experiments_are_listed_and_each_config_loads():
    names = {e["name"]: e["kind"] for e in seqcalc.experiments()}
    assert names["keras-addition"] == "seq2seq"
    assert names["brownlee-mlp"] == "regression"
    for name in names:
        assert seqcalc.config(name)["name"] == name
    assert seqcalc.config()["name"] == "keras-addition"
    assert seqcalc.KERNELS in ("avx512", "avx2", "portable")
