//! `seqcalc eval --exhaustive`: a small model trained in seconds on 1-digit addition is scored
//! on every one of the 100 questions, and agrees with `predict`; refusals are one line.

mod common;
use common::{run, run_with_stdin, text};

/// 1-digit addition drawn with repetition, 2,000 new training questions each epoch.
const ONE_DIGIT: &str = "\
[task]
digits = 1
unique = false
[data]
size = 2200
val_fraction = 0.0909
fresh_per_epoch = true
[model]
hidden = 64
[optim]
lr = 0.005
[train]
batch_size = 64
epochs = 20
patience = 0
samples = 0
";

#[test]
fn a_small_model_is_exact_on_all_100_one_digit_additions() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("one.toml");
    std::fs::write(&cfg, ONE_DIGIT).unwrap();
    let runs = root.path().to_str().unwrap();
    let o = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--seed",
        "3",
        "--threads",
        "2",
        "--name",
        "one",
        "--runs-dir",
        runs,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let model = root.path().join("one");
    let model = model.to_str().unwrap();
    let o = run(&["eval", "--model", model, "--exhaustive", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["exhaustive"], true);
    assert_eq!(
        (rep["n"].as_u64(), rep["exact"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(rep["exact_match"].as_f64(), Some(1.0));
    let lens: Vec<(String, u64)> = rep["by_operand_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lens, [("1x1".to_string(), 100)]);
    let carries: u64 = rep["by_carries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"] == "1")
        .map(|g| g["n"].as_u64().unwrap())
        .sum();
    assert_eq!(carries, 45, "pairs of digits summing to 10 or more");

    // The table says the same, and predict agrees on every question.
    let o = run(&["eval", "--model", model, "--exhaustive"]);
    let table = text(&o);
    assert!(
        o.status.success() && table.contains("(100 of 100, 0 wrong)"),
        "{table}"
    );
    let questions: String = (0..10)
        .flat_map(|a| (0..10).map(move |b| format!("{a}+{b}\n")))
        .collect();
    let o = run_with_stdin(
        &["predict", "--model", model, "--jsonl"],
        questions.as_bytes(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 100);
    assert!(lines.iter().all(|l| l["correct"] == true), "{lines:?}");

    // Refusals: a sample size or seed with --exhaustive, and a domain too large to walk.
    for extra in [&["--n", "5"][..], &["--seed", "2"]] {
        let mut args = vec!["eval", "--model", model, "--exhaustive"];
        args.extend_from_slice(extra);
        let o = run(&args);
        let e = text(&o);
        assert!(!o.status.success() && e.lines().count() == 1, "{e}");
        assert!(e.contains("--exhaustive scores every question"), "{e}");
    }
    let o = run(&["eval", "--model", model, "--exhaustive", "--digits", "4"]);
    let e = text(&o);
    assert!(!o.status.success() && e.lines().count() == 1, "{e}");
}

#[test]
fn a_too_large_domain_is_refused_naming_its_size() {
    // Refused before any model is needed: the model of a 4-digit run reads 9 characters, and
    // its domain has 10^8 questions.
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().to_str().unwrap();
    let o = run(&[
        "train",
        "--digits",
        "4",
        "--size",
        "200",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--threads",
        "1",
        "--name",
        "four",
        "--runs-dir",
        runs,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let model = root.path().join("four");
    let o = run(&["eval", "--model", model.to_str().unwrap(), "--exhaustive"]);
    let e = text(&o);
    assert!(!o.status.success(), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("100000000 questions") && e.contains("--n"),
        "{e}"
    );
}

#[test]
fn the_aligned_adder_is_exact_on_all_million_three_digit_additions() {
    // The built-in recipe, trained in about a second, judged on its whole domain; the verdict
    // line, `eval --exhaustive` and `predict` must all say so.
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().to_str().unwrap();
    let o = run(&[
        "experiment",
        "run",
        "addition-exact-aligned",
        "--threads",
        "2",
        "--runs-dir",
        runs,
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("right on all 1000000 questions of its domain"),
        "{out}"
    );
    let model = root.path().join("addition-exact-aligned");
    let model = model.to_str().unwrap();
    let o = run(&["eval", "--model", model, "--exhaustive", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (rep["n"].as_u64(), rep["exact"].as_u64()),
        (Some(1_000_000), Some(1_000_000))
    );
    let keys: Vec<&str> = rep["by_operand_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 9, "1x1 .. 3x3: {keys:?}");

    // A smaller domain of the same run, and predict on questions at its edges.
    let o = run(&["eval", "--model", model, "--exhaustive", "--digits", "2"]);
    let table = text(&o);
    assert!(
        o.status.success() && table.contains("(10000 of 10000, 0 wrong)"),
        "{table}"
    );
    let o = run_with_stdin(
        &["predict", "--model", model, "--jsonl"],
        b"0+0\n999+1\n1+999\n999+999\n500+500\n7+8\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let outputs: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["output"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(outputs, ["0", "1000", "1000", "1998", "1000", "15"]);

    // Refusals, one line each: a domain of 10^10 questions, and sample-only flags.
    for args in [
        &["--digits", "5"][..],
        &["--min-digits", "2"],
        &["--lengths", "3"],
    ] {
        let mut all = vec!["eval", "--model", model, "--exhaustive"];
        all.extend_from_slice(args);
        let o = run(&all);
        let e = text(&o);
        assert!(
            !o.status.success() && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
}
