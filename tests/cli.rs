//! End-to-end tests of the `seqcalc` binary: a small training run that really learns, its run
//! directory, eval and predict on it, exact resume after a kill, and clear errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seqcalc"));
    c.env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("seqcalc runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The small task every test here trains: 2-digit addition (5,050 distinct questions).
const SMALL: &[&str] = &[
    "--digits",
    "2",
    "--size",
    "4000",
    "--hidden",
    "64",
    "--lr",
    "0.005",
    "--batch-size",
    "64",
    "--seed",
    "3",
    "--threads",
    "2",
];

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
        args.extend_from_slice(SMALL);
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
    let o = run(&["predict", "--model", dir.to_str().unwrap(), "12+34", "7+8"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("12+34 = 46") && out.contains("7+8 = 15"),
        "{out}"
    );

    let mut child = bin()
        .args(["predict", "--model", dir.to_str().unwrap(), "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"21+43\n1x2\n\n123456+1\n99+99\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
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
    assert_eq!(lines[0]["output"], "64");
    assert!(lines[0]["confidence"].as_f64().unwrap() > 0.5);
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
    assert_eq!(lines[4]["output"], "198");
}

/// Waits (up to two minutes) until a run directory holds its first checkpoint.
fn wait_for_checkpoint(run_dir: &Path) {
    let ck = run_dir.join("checkpoint/state.safetensors");
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
    child.kill().ok();
    child.wait().ok();
    let hist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("killed/history.json")).unwrap())
            .unwrap();
    let done = hist["records"].as_array().unwrap().len();
    assert!(
        done < 25,
        "the kill came after the run had finished; the test would prove nothing"
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
    assert!(o.status.success(), "{err}");
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
        (vec!["train", "--hidden", "30000", "--print-config"], "GiB"),
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
    let names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(
        names.len() >= 7 && names.contains(&"keras-subtraction".to_string()),
        "{names:?}"
    );
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
    assert_eq!(
        out.matches("Verdict:").count() + out.matches("RMSE on").count(),
        names.len(),
        "{out}"
    );
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
    let o = run(&["experiment", "run", "no-such-thing"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("keras-addition"), "{}", text(&o));
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
    assert!(text(&o).contains("history.json"), "{}", text(&o));
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
    args.extend_from_slice(SMALL);
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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.join("lock").exists(), "a clean stop removes the lock");
}
