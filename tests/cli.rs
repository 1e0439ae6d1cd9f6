//! End-to-end tests of the `seqcalc` binary: a small training run that really learns, its run
//! directory, eval and predict on it, exact resume after a kill, and clear errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{LazyLock, OnceLock};

mod common;
use common::{bin, run, run_with_stdin, small_addition, text, Rng};

/// The small task every test here trains: 2-digit addition (5,050 distinct questions).
static SMALL: LazyLock<Vec<&str>> = LazyLock::new(|| small_addition("4000"));

/// Trains the small model once and shares its run directory between tests.
fn trained() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = tempfile::tempdir().expect("tempdir").keep();
        let runs = root.join("runs");
        let mut args = vec![
            "train",
            "--runs-dir",
            runs.to_str().unwrap(),
            "--name",
            "small",
            "--epochs",
            "60",
            "--stop-at-exact",
            "0.97",
            "--samples",
            "3",
        ];
        args.extend_from_slice(&SMALL);
        let o = run(&args);
        assert!(o.status.success(), "training failed:\n{}", text(&o));
        let out = text(&o);
        for want in [
            "Total params",
            "val_exact",
            "Accuracy on sample",
            "question length: average",
        ] {
            assert!(out.contains(want), "training output lacks {want:?}:\n{out}");
        }
        runs.join("small")
    })
}

#[test]
fn small_addition_learns_and_run_directory_is_complete() {
    let dir = trained();
    for f in [
        "config.json",
        "weights.safetensors",
        "history.csv",
        "history.json",
        "curves.svg",
        "curves.png",
        "checkpoint/state.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let hist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("history.json")).unwrap()).unwrap();
    let recs = hist["records"].as_array().unwrap();
    let first = recs.first().unwrap()["val_loss"].as_f64().unwrap();
    let last = recs.last().unwrap()["val_loss"].as_f64().unwrap();
    assert!(
        last < first / 3.0,
        "validation loss fell only from {first} to {last}"
    );
    // Eval on fresh questions (never in training or validation).
    let o = run(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--n",
        "500",
        "--seed",
        "11",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let exact = rep["exact_match"].as_f64().unwrap();
    assert!(exact >= 0.95, "exact match on fresh questions {exact}");
    assert_eq!(rep["n"].as_u64(), Some(500));
}

#[test]
fn predict_answers_and_jsonl_reports_bad_lines_without_stopping() {
    let dir = trained();
    // Each answer is marked right or wrong against the true sum (as strings: "046" is wrong),
    // and most are right: the small model's exact match is at least 0.95 (the eval test), so
    // fewer than 15 of 20 right would point at predict's own decoding. Which ones it gets
    // wrong depends on the bits of its training.
    let pairs: Vec<(u32, u32)> = (0..20)
        .map(|i| ((i * 37 + 5) % 100, (i * 53 + 11) % 100))
        .collect();
    let mut questions: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (format!("{a}+{b}"), (a + b).to_string()))
        .collect();
    questions
        .extend([("21+43", "64"), ("99+99", "198")].map(|(q, s)| (q.to_string(), s.to_string())));
    let mut args = vec!["predict", "--model", dir.to_str().unwrap()];
    args.extend(questions.iter().map(|q| q.0.as_str()));
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut answers = std::collections::HashMap::new();
    let mut right = 0;
    for (q, sum) in &questions {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{q} = ")))
            .unwrap_or_else(|| panic!("no answer to {q}:\n{out}"));
        let answer = line[q.len() + 3..]
            .split("   (confidence")
            .next()
            .unwrap()
            .to_string();
        let mark = if answer == *sum { "✓" } else { "✗" };
        assert!(line.trim_end().ends_with(mark), "{line} (true sum {sum})");
        right += usize::from(answer == *sum);
        answers.insert(q.clone(), answer);
    }
    assert!(
        right >= 15,
        "only {right} of {} right:\n{out}",
        questions.len()
    );

    let o = run_with_stdin(
        &["predict", "--model", dir.to_str().unwrap(), "--jsonl"],
        b"21+43\n1x2\n\n123456+1\n99+99\n",
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a bad line makes the exit status 1"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    // The same answers as the plain output.
    assert_eq!(lines[0]["output"], answers["21+43"].as_str());
    let confidence = lines[0]["confidence"].as_f64().unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0, "{}", lines[0]);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("'x'"),
        "{}",
        lines[1]
    );
    assert!(lines[2]["error"].is_string());
    assert!(
        lines[3]["error"].as_str().unwrap().contains("at most"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4]["output"], answers["99+99"].as_str());
}

/// Waits (up to two minutes) until a run directory holds its first checkpoint.
/// Waits until the run has finished its first epoch (a new run writes its checkpoint before the
/// first step; the history appears with the first epoch's end).
fn wait_for_checkpoint(run_dir: &Path) {
    let ck = run_dir.join("history.json");
    let t0 = std::time::Instant::now();
    while !ck.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn resume_after_kill_gives_the_same_weights() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let r = runs.to_str().unwrap();
    let base = |name: &str| {
        let mut v: Vec<String> = [
            "train",
            "--runs-dir",
            r,
            "--name",
            name,
            "--epochs",
            "4",
            "--patience",
            "0",
            "--samples",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(SMALL.iter().map(|s| s.to_string()));
        v
    };
    let o = bin().args(base("whole")).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Start the same run, kill it once its first checkpoint exists, then resume.
    let mut child = bin()
        .args(base("killed"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&runs.join("killed"));
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().ok();
    let hist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("killed/history.json")).unwrap())
            .unwrap();
    let done = hist["records"].as_array().unwrap().len();
    assert!(
        running && (1..4).contains(&done),
        "the kill came after {done} of 4 epochs (process still running: {running}); it must land mid-run or the test proves nothing"
    );
    let o = run(&["train", "--resume", runs.join("killed").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let a = std::fs::read(runs.join("whole/weights.safetensors")).unwrap();
    let b = std::fs::read(runs.join("killed/weights.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    // Ctrl-C (SIGINT): a clean stop with a mid-epoch checkpoint and the resume command.
    let child = bin()
        .args(base("interrupted"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&runs.join("interrupted"));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("Resume with: seqcalc train --resume"), "{err}");
    let o = run(&[
        "train",
        "--resume",
        runs.join("interrupted").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let c = std::fs::read(runs.join("interrupted/weights.safetensors")).unwrap();
    assert!(
        a == c,
        "weights after an interrupt and resume differ from the uninterrupted run's"
    );
    // SIGTERM (what schedulers and containers send) stops the run the same way, with the
    // same checkpoint.
    let child = bin()
        .args(base("terminated"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&runs.join("terminated"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{:?} {err}", o.status);
    assert!(err.contains("Resume with: seqcalc train --resume"), "{err}");
    let o = run(&[
        "train",
        "--resume",
        runs.join("terminated").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let c = std::fs::read(runs.join("terminated/weights.safetensors")).unwrap();
    assert!(
        a == c,
        "weights after SIGTERM and resume differ from the uninterrupted run's"
    );
    // A second training into the same directory is refused.
    let o = bin().args(base("whole")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--resume"), "{}", text(&o));
}

#[test]
fn damaged_or_missing_models_give_one_clear_error() {
    let dir = trained();
    let root = tempfile::tempdir().unwrap();
    let copy = root.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(dir.join("config.json"), copy.join("config.json")).unwrap();
    let w = std::fs::read(dir.join("weights.safetensors")).unwrap();
    for cut in [0, 7, 100, w.len() / 2, w.len() - 1] {
        std::fs::write(copy.join("weights.safetensors"), &w[..cut]).unwrap();
        let o = run(&["predict", "--model", copy.to_str().unwrap(), "1+2"]);
        assert_eq!(o.status.code(), Some(2), "cut at {cut}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("weights.safetensors") && !err.contains("panicked"),
            "cut at {cut}: {err}"
        );
    }
    let o = run(&[
        "eval",
        "--model",
        root.path().join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such run directory"));
    // A config from a different model (hidden 32) against these weights.
    std::fs::write(copy.join("weights.safetensors"), &w).unwrap();
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"hidden\": 64", "\"hidden\": 32");
    std::fs::write(copy.join("config.json"), cfg).unwrap();
    let o = run(&["predict", "--model", copy.to_str().unwrap(), "1+2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shape"),
        "{}",
        text(&o)
    );
}

#[test]
fn data_export_and_bad_configurations() {
    let o = run(&[
        "data", "--digits", "3", "--op", "-", "--n", "50", "--format", "csv",
    ]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "question,answer");
    assert_eq!(lines.len(), 51);
    for l in &lines[1..] {
        let (q, a) = l.split_once(',').unwrap();
        let (x, y) = q.split_once('-').unwrap();
        assert_eq!(
            x.parse::<i64>().unwrap() - y.parse::<i64>().unwrap(),
            a.parse::<i64>().unwrap()
        );
    }
    for (args, want) in [
        (vec!["train", "--hidden", "0", "--print-config"], "hidden"),
        (vec!["train", "--op", "*", "--print-config"], "op"),
        (vec!["data", "--digits", "1", "--n", "56"], "55"),
        (
            vec!["train", "--hidden", "30000", "--print-config"],
            "16384",
        ),
        (
            vec![
                "train",
                "--hidden",
                "16384",
                "--layers",
                "16",
                "--print-config",
            ],
            "GiB",
        ),
        (
            vec!["bench", "--task", "pq-system", "--pq-max", "60000"],
            "length",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

#[test]
fn expression_task_exports_trains_and_evaluates_on_longer_operands() {
    // Data: 3 terms, + - *, brackets, 2 digits.
    let o = run(&[
        "data",
        "--task",
        "expression",
        "--terms",
        "3",
        "--ops",
        "+-*",
        "--brackets",
        "1",
        "--digits",
        "2",
        "--n",
        "200",
        "--format",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let task = seqcalc::task::TaskConfig {
        kind: seqcalc::task::TaskKind::Expression,
        terms_min: 3,
        terms_max: 3,
        brackets: 1,
        digits: 2,
        ..Default::default()
    };
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 200);
    let mut bracketed = 0;
    for l in &lines {
        let q = l["question"].as_str().unwrap();
        assert_eq!(l["operand_lens"].as_array().unwrap().len(), 3, "{q}");
        assert_eq!(
            l["answer"].as_str().unwrap(),
            seqcalc::task::solve(&task, q).unwrap().answer
        );
        bracketed += usize::from(q.contains('('));
    }
    assert!(
        (100..170).contains(&bracketed),
        "{bracketed} of 200 bracketed"
    );

    // Flags that do not fit the task are refused with a reason.
    for (args, want) in [
        (vec!["data", "--terms", "3"], "--task expression"),
        (vec!["data", "--task", "expression", "--op", "-"], "--ops"),
        (
            vec!["data", "--task", "expression", "--terms", "4..2"],
            "empty",
        ),
        (vec!["data", "--task", "expression", "--ops", "+/"], "'/'"),
        (
            vec!["data", "--task", "expression", "--terms", "0"],
            "at least one",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }

    // A tiny 3-term +- task learns far above chance (about 1 in 46) in a few seconds; the
    // model is made wide enough (--input-len, --output-len) to be asked longer questions later.
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let o = run(&[
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        "expr3",
        "--task",
        "expression",
        "--terms",
        "3",
        "--ops",
        "+-",
        "--digits",
        "1",
        "--size",
        "3000",
        "--hidden",
        "64",
        "--lr",
        "0.01",
        "--batch-size",
        "64",
        "--epochs",
        "40",
        "--seed",
        "3",
        "--threads",
        "2",
        "--samples",
        "2",
        "--input-len",
        "9",
        "--output-len",
        "4",
        "--stop-at-exact",
        "0.9",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = runs.join("expr3");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--n",
            "300",
            "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = eval(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let exact = rep["exact_match"].as_f64().unwrap();
    assert!(
        exact >= 0.5,
        "exact match on fresh 3-term questions {exact}"
    );
    assert_eq!(rep["task_differs"], false);

    // Operands longer than any in training: every question is 2x2x2.
    let o = eval(&["--min-digits", "2", "--digits", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["task_differs"], true);
    assert_eq!(rep["task"]["min_digits"], 2);
    let groups = rep["by_operand_lengths"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["key"], "2x2x2");
    // Too long for the model's width: refused with the way out.
    let o = eval(&["--digits", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--input-len 11"), "{}", text(&o));
    let o = run(&["predict", "--model", dir.to_str().unwrap(), "1+2-3", "1*2"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "'*' is not in this model's alphabet"
    );
    assert!(text(&o).contains("unknown character '*'"), "{}", text(&o));
}

#[test]
fn every_experiment_runs_in_quick_mode_and_leaves_a_usable_run() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let o = run(&["experiment", "list"]);
    assert!(o.status.success());
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    let names: Vec<String> = list
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(
        names.len() >= 7
            && names.contains(&"keras-subtraction".to_string())
            && list.contains("compare-decoders"),
        "{list}"
    );
    // Every experiment is a plain config: shown as TOML, and valid as `train --config`.
    for n in &names {
        let o = run(&["experiment", "show", n, "--quick"]);
        assert!(o.status.success(), "{n}: {}", text(&o));
        let toml = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(toml.contains("\nkind = \""), "{n}: {toml}");
        let file = root.path().join(format!("{n}.toml"));
        std::fs::write(&file, &toml).unwrap();
        let o = run(&[
            "train",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ]);
        assert!(o.status.success(), "{n}: {}", text(&o));
    }
    // The decoder comparison is a report over 18 runs, with its own test below; the GRU
    // baseline of length generalisation writes a report, not a model to load (checked below).
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n != "compare-decoders" && n != "length-generalisation-gru")
        .collect();
    let mut args = vec![
        "experiment".to_string(),
        "run".into(),
        "--quick".into(),
        "--runs-dir".into(),
        runs.to_str().unwrap().into(),
    ];
    args.extend(names.iter().cloned());
    let o = bin().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert_eq!(out.matches("Verdict:").count(), names.len(), "{out}");
    for n in &names {
        let dir = runs.join(format!("{n}-quick"));
        if n.starts_with("brownlee-m") {
            // The mapping regressions leave a run directory of their own kind.
            let o = run(&[
                "eval",
                "--model",
                dir.to_str().unwrap(),
                "--n",
                "50",
                "--json",
            ]);
            assert!(o.status.success(), "eval on {n}: {}", text(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(v["rmse"].as_f64().unwrap() > 0.0, "{v}");
            let o = run(&[
                "predict",
                "--model",
                dir.to_str().unwrap(),
                "12+57",
                "1+2+3",
            ]);
            assert_eq!(o.status.code(), Some(1), "{}", text(&o));
            assert!(text(&o).contains("12+57 = ") && text(&o).contains("expected 2 numbers"));
            assert!(dir.join("curves.svg").exists() && dir.join("history.json").exists());
            continue;
        }
        let o = run(&[
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--n",
            "5",
            "--json",
        ]);
        assert!(o.status.success(), "eval on {n}: {}", text(&o));
        let o = run(&["experiment", "show", n]);
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("name = \"{n}\"")));
    }
    // Run again, the runs exist: refused without --resume; with it, nothing is trained again and
    // the results table gets one row per experiment, whose second writing replaces the first.
    let o = bin().args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let history = |n: &str| std::fs::read(runs.join(format!("{n}-quick/history.json"))).unwrap();
    let before = history("keras-addition");
    let table = root.path().join("results.md");
    let mut again = args.clone();
    again.extend([
        "--resume".into(),
        "--results".into(),
        table.to_str().unwrap().into(),
    ]);
    for _ in 0..2 {
        let o = bin().args(&again).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_eq!(history("keras-addition"), before);
    let md = std::fs::read_to_string(&table).unwrap();
    for n in &names {
        let row = format!("| {n} --quick | ");
        assert_eq!(md.matches(&row).count(), 1, "{n}: {md}");
    }
    assert!(md.contains("keras-addition --quick | seq2seq | "), "{md}");
    let o = run(&["experiment", "run", "no-such-thing"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("keras-addition"), "{}", text(&o));
    let o = run(&[
        "experiment",
        "run",
        "length-generalisation-gru",
        "--quick",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Verdict: length-generalisation-gru-quick"),
        "{}",
        text(&o)
    );
    let path = runs.join("length-generalisation-gru-quick/results.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Lengths 3, 6 and 12, each random plus the stress set and its three parts.
    assert_eq!(v["results"].as_array().unwrap().len(), 15, "{v}");
    assert_eq!(v["training"]["steps"], 60);
    assert!(path.with_file_name("weights.safetensors").is_file());
    // The finished baseline answers questions and is scored like the transformer's runs.
    let gru = runs.join("length-generalisation-gru-quick");
    let gru = gru.to_str().unwrap();
    let o = run(&["predict", "--model", gru, "12+34", "5+x"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let line = out.lines().next().unwrap_or_default();
    let answer = line
        .strip_prefix("12+34 = ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(answer.bytes().all(|c| c.is_ascii_digit()), "{out}");
    assert_eq!(line.ends_with('✓'), answer == "46", "{out}");
    assert!(text(&o).contains("5+x"), "{}", text(&o));
    let o = run(&[
        "eval",
        "--model",
        gru,
        "--lengths",
        "2,4",
        "--stress",
        "--n",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "{v}");
    assert!(rows.iter().all(|r| r["exact"] == r["exact_eos"]), "{v}");
    let o = run(&["eval", "--model", gru, "--sharpen", "1.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no attention"), "{}", text(&o));
}

#[test]
fn compare_overlays_runs_and_closed_pipes_do_not_panic() {
    let dir = trained();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("cmp");
    let o = run(&[
        "compare",
        dir.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("val exact"));
    assert!(out.with_extension("svg").is_file() && out.with_extension("png").is_file());
    let o = run(&["compare", root.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no such run directory"), "{}", text(&o));
    // A reader that stops early (like `| head`) ends the writer quietly.
    let mut child = bin()
        .args(["data", "--n", "200000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_second_run_in_the_same_directory_is_refused_while_the_first_lives() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let mut args: Vec<&str> = vec![
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        "busy",
        "--epochs",
        "100000",
        "--patience",
        "0",
        "--samples",
        "0",
    ];
    args.extend_from_slice(&SMALL);
    let mut first = bin()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&runs.join("busy"));
    let dir = runs.join("busy");
    let o = run(&["train", "--resume", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("another seqcalc (pid"), "{}", text(&o));
    // Once the owner is gone (SIGKILL leaves a stale lock), the run can be resumed.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        dir.join("lock").exists(),
        "SIGKILL should leave the lock behind"
    );
    // Twice: after a SIGKILL, and after a clean stop (the lock file stays; its lock is the
    // kernel's and ends with the process either way).
    for round in ["after SIGKILL", "after Ctrl-C"] {
        let resumed = bin()
            .args(["train", "--resume", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        Command::new("kill")
            .args(["-INT", &resumed.id().to_string()])
            .status()
            .unwrap();
        let o = resumed.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(130),
            "{round}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(dir.join("lock").exists());
    }
}

/// One line the small model must refuse (its alphabet is ` +0123456789`, questions up to 5
/// characters): invalid UTF-8, foreign characters, control characters, blank, too long, JSON.
fn bad_line(rng: &mut Rng, huge: bool) -> Vec<u8> {
    if huge {
        // About a megabyte: digits, or digits with one foreign character somewhere.
        let mut v = rng.digits((1 << 20) - 1000, 1000);
        if rng.below(2) == 0 {
            let at = rng.below(v.len());
            v[at] = b'x';
        }
        return v;
    }
    let foreign = [
        "x", "é", "中", "🙂", "×", "−", "１", "*", "/", "=", "-", "a", "\u{200b}", "\u{feff}",
        "\\", "\"", "'", "NaN", "∞", "²",
    ];
    let controls = [
        "\u{0}",
        "\u{1}",
        "\u{7}",
        "\u{8}",
        "\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{2028}",
    ];
    let json = [
        "{\"input\":\"12+34\"}",
        "[1,2]",
        "\"12+34\"",
        "{\"question\": \"1+1\", \"answer\": \"2\"}",
        "null",
        "{}",
        "{\"a\":",
        "}}}{{{",
        "[[[[[[[[",
        "{\"input\":\"\\u0000\"}",
    ];
    match rng.below(8) {
        0 => Vec::new(),
        1 => rng
            .pick(&[" ", "\t", "   ", " \t ", "\r", "\u{a0}", "\u{3000}"])
            .as_bytes()
            .to_vec(),
        2 => {
            // Invalid UTF-8, alone or inside a question.
            let junk: &[&[u8]] = &[
                b"\xff",
                b"\xfe\xff",
                b"\xc3\x28",
                b"\xa0\xa1",
                b"\xe2\x28\xa1",
                b"\xf0\x28\x8c\xbc",
                b"\xc0\xaf",
                b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80",
                b"\x80",
            ];
            let mut v = rng.digits(0, 3);
            v.extend_from_slice(rng.pick(junk));
            v.extend(rng.digits(0, 3));
            v
        }
        3 => {
            // A question with foreign characters.
            let mut s = String::from_utf8(rng.digits(0, 3)).unwrap();
            s.push_str(rng.pick(&foreign));
            s.push_str(&String::from_utf8(rng.digits(0, 3)).unwrap());
            s.into_bytes()
        }
        4 => {
            let mut s = String::from_utf8(rng.digits(1, 2)).unwrap();
            s.push_str(rng.pick(&controls));
            // Inside the question: at its ends, whitespace among them is trimmed.
            s.push_str(&String::from_utf8(rng.digits(1, 2)).unwrap());
            s.into_bytes()
        }
        5 => {
            // Too long: a long number, or a sum of long numbers.
            let mut v = rng.digits(6, 60);
            if rng.below(2) == 0 {
                v.push(b'+');
                v.extend(rng.digits(1, 40));
            }
            v
        }
        6 => rng.pick(&json).as_bytes().to_vec(),
        _ => {
            // Random printable ASCII with at least one character outside the alphabet.
            let n = 1 + rng.below(30);
            let mut v: Vec<u8> = (0..n).map(|_| 0x21 + rng.below(94) as u8).collect();
            let at = rng.below(n);
            v[at] = rng.pick(b"abcxyz!?#$%&()*,-./:;<=>@[]^_`{|}~");
            v
        }
    }
}

/// `predict --jsonl` on `input`; returns the output lines as JSON, stderr, and the exit code.
fn predict_jsonl(dir: &Path, input: Vec<u8>) -> (Vec<serde_json::Value>, String, Option<i32>) {
    let mut child = bin()
        .args(["predict", "--model", dir.to_str().unwrap(), "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input)
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().expect("predict read all of stdin");
    let lines = String::from_utf8(o.stdout)
        .expect("the output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .collect();
    (
        lines,
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

/// Thousands of bad lines with good questions between them, through one `predict --jsonl`
/// process. `SEQCALC_JSONL_FUZZ_LINES` sets the number of lines (default 3,000).
#[test]
fn predict_jsonl_answers_every_line_of_a_stream_of_generated_bad_input() {
    let dir = trained();
    let n: usize = std::env::var("SEQCALC_JSONL_FUZZ_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // About one line in four is a good question; about one in 1,000 bad lines is a megabyte.
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut good: Vec<Option<(u32, u32)>> = Vec::with_capacity(n);
    for i in 0..n {
        if rng.below(4) == 0 {
            let (a, b) = (rng.below(100) as u32, rng.below(100) as u32);
            // Some with the spaces and CRLF endings people type.
            let q = match rng.below(6) {
                0 => format!(" {a}+{b}\r"),
                _ => format!("{a}+{b}"),
            };
            lines.push(q.into_bytes());
            good.push(Some((a, b)));
        } else {
            lines.push(bad_line(&mut rng, i % 1000 == 500));
            good.push(None);
        }
    }
    let mut input: Vec<u8> = Vec::new();
    for l in &lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let bytes = input.len();
    let t0 = std::time::Instant::now();
    let (out, err, code) = predict_jsonl(dir, input);
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        !err.contains("panicked") && err.is_empty(),
        "stderr: {err:.2000}"
    );
    assert_eq!(out.len(), n, "one output line per input line");
    assert_eq!(code, Some(1), "bad lines make the exit status 1");
    // The good questions alone, in another process: the answers must not depend on the bad
    // lines around them.
    let alone: Vec<u8> = good
        .iter()
        .flatten()
        .flat_map(|(a, b)| format!("{a}+{b}\n").into_bytes())
        .collect();
    let (want, _, alone_code) = predict_jsonl(dir, alone);
    assert_eq!(alone_code, Some(0));
    let mut want = want.into_iter();
    let (mut n_good, mut right, mut huge) = (0, 0, 0);
    for (i, ((line, g), o)) in lines.iter().zip(&good).zip(&out).enumerate() {
        let text = String::from_utf8_lossy(line);
        assert_eq!(
            o["input"].as_str(),
            Some(text.trim_end_matches('\r')),
            "line {i}: the output is not aligned with the input"
        );
        huge += (line.len() > 100_000) as usize;
        match g {
            Some((a, b)) => {
                let w = want.next().unwrap();
                assert!(o["error"].is_null(), "line {i} {text:?}: {o}");
                assert_eq!(o["output"], w["output"], "line {i} {text:?}");
                let c = o["confidence"].as_f64().unwrap();
                assert!((c - w["confidence"].as_f64().unwrap()).abs() < 1e-4 && c > 0.0);
                n_good += 1;
                right += (o["output"].as_str() == Some(&(a + b).to_string())) as usize;
            }
            None => {
                let e = o["error"].as_str().unwrap_or_else(|| {
                    panic!("line {i} {:?}: no error: {o}", &text[..text.len().min(80)])
                });
                assert!(!e.is_empty() && o["output"].is_null(), "line {i}: {o:.200}");
            }
        }
    }
    assert!(
        right * 100 >= n_good * 90,
        "only {right} of {n_good} good questions answered right"
    );
    eprintln!(
        "predict --jsonl: {n} lines ({} bad, {huge} of about 1 MB; {:.1} MB) in {secs:.2} s; {right} of {n_good} good questions right",
        n - n_good,
        bytes as f64 / 1e6
    );
}

/// A weights file rewritten tensor by tensor (name, dtype, shape, bytes), with the seqcalc
/// metadata of `original` minus its checksum (as another tool or an older seqcalc writes it), or
/// with it (as an edit that did not update the checksum leaves it).
fn rewrite_weights(
    original: &[u8],
    keep_checksum: bool,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) -> Vec<u8> {
    use safetensors::{tensor::TensorView, SafeTensors};
    let st = SafeTensors::deserialize(original).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let (_, md) = SafeTensors::read_metadata(original).unwrap();
    let mut meta: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&md.metadata().as_ref().unwrap()["seqcalc"]).unwrap();
    if !keep_checksum {
        assert!(meta.remove("checksum").is_some());
    }
    let info = std::collections::HashMap::from([(
        "seqcalc".to_string(),
        serde_json::to_string(&meta).unwrap(),
    )]);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, Some(info)).unwrap()
}

/// Every kind of damage to a model directory, through `predict` and `eval`: one line on stderr
/// naming the file and what is wrong, exit code 2 (the README's table lists them).
#[test]
fn each_kind_of_damaged_model_directory_gives_one_line_naming_the_file() {
    use safetensors::Dtype;
    let dir = trained();
    let root = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let ckpt = std::fs::read(dir.join("checkpoint/state.safetensors")).unwrap();
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let write = |p: &Path, f: &str, b: &[u8]| std::fs::write(p.join(f), b).unwrap();
    let cases: Vec<(&str, Damage, &str, &str)> = vec![
        (
            "truncated weights",
            Box::new(|p| write(p, "weights.safetensors", &weights[..weights.len() * 2 / 3])),
            "weights.safetensors",
            "truncated or damaged",
        ),
        (
            "a changed byte in the weights",
            Box::new(|p| {
                let mut w = weights.clone();
                let n = w.len();
                w[n - 100] ^= 0x10;
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "checksum mismatch",
        ),
        (
            "a tensor removed (file rewritten without a checksum)",
            Box::new(|p| {
                let w = rewrite_weights(&weights, false, |t| t.retain(|t| t.0 != "head.bias"));
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "missing tensor \"head.bias\"",
        ),
        (
            "a tensor removed (old checksum kept)",
            Box::new(|p| {
                let w = rewrite_weights(&weights, true, |t| t.retain(|t| t.0 != "head.bias"));
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "checksum mismatch",
        ),
        (
            "a tensor of the wrong shape",
            Box::new(|p| {
                let w = rewrite_weights(&weights, false, |t| {
                    let b = t.iter_mut().find(|t| t.0 == "head.bias").unwrap();
                    b.2 = vec![3, 4];
                });
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "\"head.bias\" has shape [3, 4], the config says [12]",
        ),
        (
            "a tensor of the wrong dtype",
            Box::new(|p| {
                let w = rewrite_weights(&weights, false, |t| {
                    let b = t.iter_mut().find(|t| t.0 == "head.bias").unwrap();
                    b.1 = Dtype::F64;
                    b.3 = f32s(&b.3)
                        .iter()
                        .flat_map(|x| (*x as f64).to_le_bytes())
                        .collect();
                });
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "\"head.bias\" has dtype F64, expected F32",
        ),
        (
            "an extra tensor",
            Box::new(|p| {
                let w = rewrite_weights(&weights, false, |t| {
                    t.push(("extra.weight".into(), Dtype::F32, vec![1], vec![0; 4]))
                });
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "unexpected tensors [\"extra.weight\"]",
        ),
        (
            "a NaN weight",
            Box::new(|p| {
                let w = rewrite_weights(&weights, false, |t| {
                    let b = t.iter_mut().find(|t| t.0 == "head.bias").unwrap();
                    b.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                });
                write(p, "weights.safetensors", &w)
            }),
            "weights.safetensors",
            "NaN or infinite",
        ),
        (
            "weights from a different model (config says hidden 32)",
            Box::new(|p| {
                write(
                    p,
                    "config.json",
                    config
                        .replace("\"hidden\": 64", "\"hidden\": 32")
                        .as_bytes(),
                )
            }),
            "weights.safetensors",
            "shape",
        ),
        (
            "config.json of a newer format",
            Box::new(|p| {
                let c = config.replacen(
                    "\"format_version\": 1,",
                    "\"format_version\": 2, \"field_of_the_future\": true,",
                    1,
                );
                write(p, "config.json", c.as_bytes())
            }),
            "config.json",
            "format version 2 is newer than this seqcalc understands (1)",
        ),
        (
            "config.json that is not JSON",
            Box::new(|p| write(p, "config.json", b"[model]\nhidden = 64\n")),
            "config.json",
            "not valid JSON",
        ),
        (
            "config.json with an impossible value",
            Box::new(|p| {
                write(
                    p,
                    "config.json",
                    config.replace("\"hidden\": 64", "\"hidden\": 0").as_bytes(),
                )
            }),
            "config.json",
            "hidden",
        ),
        (
            "config.json missing",
            Box::new(|p| std::fs::remove_file(p.join("config.json")).unwrap()),
            "config.json",
            "missing",
        ),
        (
            "weights.safetensors missing",
            Box::new(|p| std::fs::remove_file(p.join("weights.safetensors")).unwrap()),
            "weights.safetensors",
            "missing",
        ),
        (
            "the run directory is a file",
            Box::new(|p| {
                std::fs::remove_dir_all(p).unwrap();
                std::fs::write(p, b"").unwrap();
            }),
            "model",
            "is a file, not a run directory",
        ),
        (
            "the run directory does not exist",
            Box::new(|p| std::fs::remove_dir_all(p).unwrap()),
            "model",
            "no such run directory",
        ),
    ];
    let mut table = Vec::new();
    for (i, (case, damage, file, want)) in cases.iter().enumerate() {
        let p = root.path().join(format!("case{i}")).join("model");
        std::fs::create_dir_all(p.join("checkpoint")).unwrap();
        std::fs::write(p.join("config.json"), &config).unwrap();
        std::fs::write(p.join("weights.safetensors"), &weights).unwrap();
        damage(&p);
        let m = p.to_str().unwrap();
        for args in [
            vec!["predict", "--model", m, "12+34"],
            vec!["eval", "--model", m, "--n", "10"],
        ] {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{case}, {}: {}",
                args[0],
                text(&o)
            );
            assert_eq!(err.lines().count(), 1, "{case}, {}: {err}", args[0]);
            assert!(
                err.contains(file) && err.contains(want) && !err.contains("panicked"),
                "{case}, {}: {err}",
                args[0]
            );
            assert!(o.stdout.is_empty(), "{case}: {}", text(&o));
        }
        let o = run(&["predict", "--model", m, "12+34"]);
        table.push(format!(
            "{case}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    // A damaged checkpoint stops a resume the same way.
    let p = root.path().join("ck").join("model");
    std::fs::create_dir_all(p.join("checkpoint")).unwrap();
    std::fs::write(p.join("config.json"), &config).unwrap();
    std::fs::write(
        p.join("checkpoint/state.safetensors"),
        &ckpt[..ckpt.len() / 2],
    )
    .unwrap();
    let o = run(&["train", "--resume", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("state.safetensors") && err.contains("truncated or damaged"),
        "{err}"
    );
    table.push(format!(
        "truncated checkpoint (train --resume): {}",
        err.trim()
    ));
    eprintln!("{}", table.join("\n"));
}

/// The best validation exact match in a run's history.
fn best_val_exact(dir: &Path) -> f64 {
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("history.json")).unwrap()).unwrap();
    h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["val_exact"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

/// Each decoder option learns the small task to 0.9 exact match on fresh questions.
#[test]
fn teacher_forced_attention_and_embedding_models_learn_and_answer() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    for (name, extra) in [
        ("tf", &["--decoder", "teacher-forced"][..]),
        (
            "tf-attention",
            &[
                "--decoder",
                "teacher-forced",
                "--attention",
                "--reverse-output",
            ][..],
        ),
        (
            "embedding",
            &["--input", "embedding", "--embed-dim", "8"][..],
        ),
        ("masked", &["--mask"][..]),
        (
            "masked-tf-attention",
            &["--mask", "--decoder", "teacher-forced", "--attention"][..],
        ),
        (
            "transformer",
            &[
                "--kind",
                "transformer",
                "--heads",
                "2",
                "--layers",
                "2",
                "--reverse-output",
            ][..],
        ),
    ] {
        let mut args = vec![
            "train",
            "--runs-dir",
            runs.to_str().unwrap(),
            "--name",
            name,
            "--epochs",
            "60",
            "--stop-at-exact",
            "0.9",
            "--samples",
            "0",
        ];
        args.extend_from_slice(&SMALL);
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let dir = runs.join(name);
        // Honest accuracy on questions the run never saw (greedy decoding for teacher forcing).
        let o = run(&[
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--n",
            "300",
            "--json",
        ]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let exact = v["exact_match"].as_f64().unwrap();
        let val = best_val_exact(&dir);
        eprintln!("{name}: validation exact {val}, fresh exact {exact}");
        // Seed 3 on 2 threads: every option reaches 0.9 on fresh questions (0.95 to 1.0).
        assert!(exact >= 0.9, "{name}: fresh exact {exact}");
        let o = run(&["predict", "--model", dir.to_str().unwrap(), "47+38", "9+9"]);
        let out = text(&o);
        assert!(
            o.status.success() && out.contains("47+38 = ") && !out.contains('$'),
            "{name}: {out}"
        );
        // --explain prints, per answer step, the question characters it attended to.
        let o = run(&[
            "predict",
            "--model",
            dir.to_str().unwrap(),
            "--explain",
            "47+38",
        ]);
        // The transformer shows its last block's attention, heads averaged.
        if name.ends_with("tf-attention") || name == "transformer" {
            let out = text(&o);
            assert!(o.status.success(), "{out}");
            assert!(
                out.contains("attention (output step") && out.contains(" <- '"),
                "{out}"
            );
        } else {
            assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
            assert!(text(&o).contains("--attention"), "{}", text(&o));
        }
    }
}

#[test]
fn sweep_runs_a_grid_resumes_and_refuses_another_grid_in_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let args = |grid2: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "sweep",
            "--runs-dir",
            runs.to_str().unwrap(),
            "--name",
            "s",
            "--grid",
            "hidden=8,64",
            "--grid",
            grid2,
            "--seeds",
            "1",
            "--epochs",
            "30",
            "--eval-n",
            "200",
            "--target",
            "0.8",
        ]
        .map(String::from)
        .to_vec();
        // SMALL without its thread count: the sweep runs one thread per run, two at a time.
        for pair in SMALL.chunks(2).filter(|p| p[0] != "--threads") {
            v.extend(pair.iter().map(|s| s.to_string()));
        }
        v
    };
    let first = args("cell=lstm,gru");
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let o = run(&refs);
    assert!(o.status.success(), "{}", text(&o));
    let dir = runs.join("s");
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 4, "{results}");
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    // The bigger model learns the small task, the tiny one does not: the table shows both.
    let exact = |hidden: &str, cell: &str| -> f64 {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {hidden} | {cell} |")))
            .unwrap_or_else(|| panic!("{md}"));
        line.split('|').nth(4).unwrap().trim()[..6].parse().unwrap()
    };
    assert!(exact("64", "gru") > 0.8 && exact("8", "lstm") < 0.3, "{md}");
    assert!(std::fs::read_to_string(dir.join("heatmap.svg"))
        .unwrap()
        .contains("hidden=64"));
    assert!(dir.join("heatmap.png").exists());
    // A result lost (the run killed before its line was written, or a torn line) is redone from
    // its run directory, with the same numbers; the others are not rerun.
    let mut lines: Vec<&str> = results.lines().collect();
    let lost = lines.remove(1).to_string();
    std::fs::write(
        dir.join("results.jsonl"),
        format!("{}\n{}", lines.join("\n"), &lost[..lost.len() / 2]),
    )
    .unwrap();
    let o = run(&refs);
    let out = text(&o);
    assert!(
        o.status.success() && out.contains("(3 done before)"),
        "{out}"
    );
    assert_eq!(out.matches("fresh exact").count(), 1, "{out}");
    let again = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert!(again.contains(&lost), "{again}");
    assert_eq!(std::fs::read_to_string(dir.join("sweep.md")).unwrap(), md);
    // Another grid in the same directory is refused; so is a key nobody knows.
    let other = args("cell=lstm,simplernn");
    let o = run(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("holds another sweep"), "{}", text(&o));
    let bad = args("colour=red");
    let o = run(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown key \"colour\""), "{}", text(&o));
}

#[test]
fn compare_decoders_quick_writes_its_report() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let report = root.path().join("report");
    let o = run(&[
        "experiment",
        "run",
        "compare-decoders",
        "--quick",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for task in ["3-digit", "5-digit", "10-digit", "3 terms +-*()"] {
        for model in ["repeat", "teacher-forced", "attention"] {
            assert!(
                md.contains(&format!("| {task} | {model} |")),
                "{task} {model}\n{md}"
            );
        }
    }
    assert!(md.contains("| 3-digit | attention, not reversed |"), "{md}");
    assert!(
        md.contains("## Operands longer than any seen in training"),
        "{md}"
    );
    for pic in ["exact.png", "longer.svg", "curves-10digit.png"] {
        assert!(report.join(pic).exists(), "{pic}");
    }
    // A rerun finds every run done and only rewrites the report.
    let o = run(&[
        "experiment",
        "run",
        "compare-decoders",
        "--quick",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && !text(&o).contains("fresh exact"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_transformer_with_a_scratchpad_writes_its_work_and_answers() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    let dir = runs.join("scratch");
    let o = run(&[
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        "scratch",
        "--task",
        "expression",
        "--terms",
        "3",
        "--ops",
        "+*",
        "--brackets",
        "1",
        "--digits",
        "1",
        "--size",
        "6000",
        "--kind",
        "transformer",
        "--hidden",
        "64",
        "--layers",
        "2",
        "--reverse-output",
        "--scratchpad",
        "--lr",
        "0.003",
        "--batch-size",
        "64",
        "--epochs",
        "40",
        "--stop-at-exact",
        "0.88",
        "--samples",
        "3",
        "--seed",
        "5",
        "--threads",
        "2",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // Samples show the model's work, numbers written forwards.
    assert!(out.contains("(work "), "{out}");
    let o = run(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--n",
        "500",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let exact = v["exact_match"].as_f64().unwrap();
    let val = best_val_exact(&dir);
    eprintln!("scratchpad: validation exact {val}, fresh exact {exact}");
    // Seed 5 on 2 threads stops near the 0.88 it asks for (0.89 on fresh questions).
    assert!(exact >= 0.88, "fresh exact {exact}");
    // The answer alone is printed: no separators, no end symbol, no reversed digits.
    let o = run(&["predict", "--model", dir.to_str().unwrap(), "(3*4)+5"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line = out.lines().find(|l| l.contains("(3*4)+5 = ")).unwrap_or("");
    let answer = line
        .split(" = ")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or("");
    assert!(
        !answer.is_empty() && answer.chars().all(|c| c.is_ascii_digit() || c == '-'),
        "{out}"
    );
    // Then the work the model wrote, numbers forwards, ending in its answer.
    let work = out
        .lines()
        .find_map(|l| l.strip_prefix("    work: "))
        .unwrap_or_else(|| panic!("no work line: {out}"));
    assert!(work.ends_with(answer) && work.contains(';'), "{out}");
    // Only expressions have work to show.
    let o = run(&[
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        "bad",
        "--kind",
        "transformer",
        "--scratchpad",
        "--epochs",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("needs the expression task"),
        "{}",
        text(&o)
    );
}
