//! Every kind of run, end to end, at quick sizes: its experiment shown as TOML, trained from
//! that TOML, scored by `eval`, asked by `predict` (arguments and stdin lines, plain and JSON
//! lines), and compared with a run of another kind. Then each kind that keeps a checkpoint is
//! stopped by Ctrl-C (exit 130) or SIGTERM (exit 143) mid-run and resumed to the very bytes of an
//! uninterrupted run; a regression run, which keeps none, has its resume refused in one line.

mod common;

use common::{bin, run, run_with_stdin, text};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// `seqcalc experiment show NAME --quick`: the TOML of the quick experiment.
fn show_quick(name: &str) -> String {
    let o = run(&["experiment", "show", name, "--quick"]);
    assert!(o.status.success(), "show {name}: {}", text(&o));
    let toml = String::from_utf8(o.stdout).unwrap();
    assert!(toml.contains(&format!("name = \"{name}-quick\"")), "{toml}");
    toml
}

/// `toml` with each `from` replaced by `to`; every `from` must be there (a renamed field fails
/// the test instead of quietly training the unchanged config).
fn edit(toml: &str, edits: &[(&str, &str)]) -> String {
    let mut t = toml.to_string();
    for (from, to) in edits {
        assert!(t.contains(from), "{from:?} is not in the config:\n{t}");
        t = t.replacen(from, to, 1);
    }
    t
}

/// Writes `toml` to `root/FILE.toml` and trains it into `root/runs`; returns the run directory.
fn train_toml(root: &Path, file: &str, toml: &str, extra: &[&str]) -> PathBuf {
    let cfg = root.join(format!("{file}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let runs = root.join("runs");
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "train {file}: {}", text(&o));
    let name = toml
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a name line");
    let dir = runs.join(name);
    assert!(dir.join("weights.safetensors").is_file(), "{}", text(&o));
    assert!(dir.join("config.json").is_file());
    assert!(dir.join("manifest.json").is_file());
    dir
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    run_with_stdin(args, input.as_bytes())
}

/// `predict` answers every question, from the arguments and from stdin alike, and `--jsonl`
/// gives one object per question with its input and output.
fn predict_answers(dir: &Path, questions: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec!["predict", "--model", d];
    args.extend_from_slice(questions);
    let o = run(&args);
    assert!(o.status.success(), "predict: {}", text(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    for q in questions {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{q} = "))),
            "no answer to {q:?}:\n{out}"
        );
    }
    let lines = questions.join("\n") + "\n";
    for stdin_args in [
        vec!["predict", "--model", d],
        vec!["predict", "--model", d, "-"],
    ] {
        let s = with_stdin(&stdin_args, &lines);
        assert!(s.status.success(), "predict from stdin: {}", text(&s));
        assert_eq!(s.stdout, o.stdout, "stdin and arguments answer alike");
    }
    let j = with_stdin(&["predict", "--model", d, "--jsonl"], &lines);
    assert!(j.status.success(), "predict --jsonl: {}", text(&j));
    let objs: Vec<serde_json::Value> = String::from_utf8(j.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(objs.len(), questions.len());
    for (obj, q) in objs.iter().zip(questions) {
        assert_eq!(obj["input"], *q);
        assert!(obj["output"].is_string(), "{obj}");
    }
}

/// `eval ARGS --json` succeeds and parses; returns the report.
fn eval_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut v = vec!["eval", "--model", dir.to_str().unwrap(), "--json"];
    v.extend_from_slice(args);
    let o = run(&v);
    assert!(o.status.success(), "eval {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("eval --json prints JSON")
}

/// `compare a b` exits 0 and lists both runs with their kinds.
fn compare_lists_both(root: &Path, a: &Path, b: &Path) {
    let out = root.join("cmp");
    let o = run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "compare: {}", text(&o));
    let s = String::from_utf8(o.stdout).unwrap();
    for dir in [a, b] {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let kind = kind_of(dir);
        assert!(
            s.lines()
                .any(|l| l.starts_with(name) && l.contains(kind.as_str())),
            "compare does not list {name} ({kind}):\n{s}"
        );
    }
    assert!(out.with_extension("svg").is_file() && out.with_extension("png").is_file());
}

/// The run kind recorded in a run directory's config.
fn kind_of(dir: &Path) -> String {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    cfg["kind"].as_str().expect("a kind tag").to_string()
}

/// A regression run: the quickest partner for `compare`.
fn regression_run(root: &Path) -> PathBuf {
    train_toml(root, "partner", &show_quick("brownlee-mapping"), &[])
}

#[test]
fn keras_addition_seq2seq_rnn_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = train_toml(
        root.path(),
        "keras",
        &show_quick("keras-addition"),
        &["--threads", "1"],
    );
    assert_eq!(kind_of(&dir), "seq2seq");
    let rep = eval_json(&dir, &["--n", "50", "--threads", "1"]);
    assert_eq!(rep["n"], 50);
    assert!(rep["exact_match"]
        .as_f64()
        .is_some_and(|x| (0.0..=1.0).contains(&x)));
    predict_answers(&dir, &["12+345", "7+8", "999+999"]);
    compare_lists_both(root.path(), &dir, &regression_run(root.path()));
}

#[test]
fn expression_3terms_seq2seq_transformer_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let toml = show_quick("expression-3terms");
    assert!(toml.contains("kind = \"transformer\""), "{toml}");
    let dir = train_toml(root.path(), "expr", &toml, &["--threads", "1"]);
    assert_eq!(kind_of(&dir), "seq2seq");
    let rep = eval_json(&dir, &["--n", "30", "--seed", "3", "--threads", "1"]);
    assert_eq!(rep["n"], 30);
    predict_answers(&dir, &["(40-8)-3", "1+2*3", "12-3-4"]);
    compare_lists_both(root.path(), &dir, &regression_run(root.path()));
}

#[test]
fn length_generalisation_coupled_transformer_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = train_toml(
        root.path(),
        "lg",
        &show_quick("length-generalisation"),
        &["--threads", "1"],
    );
    assert_eq!(kind_of(&dir), "coupled-transformer");
    let rep = eval_json(&dir, &["--n", "10", "--lengths", "3,6", "--stress"]);
    let lengths: Vec<u64> = rep["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["length"].as_u64().unwrap())
        .collect();
    assert!(lengths.contains(&3) && lengths.contains(&6), "{rep}");
    predict_answers(&dir, &["123+989", "1+2", "99999+1"]);
    compare_lists_both(root.path(), &dir, &regression_run(root.path()));
}

#[test]
fn brownlee_mapping_regression_end_to_end_and_resume_gives_the_same_weights() {
    let root = tempfile::tempdir().unwrap();
    let dir = train_toml(root.path(), "bm", &show_quick("brownlee-mapping"), &[]);
    assert_eq!(kind_of(&dir), "regression");
    let rep = eval_json(&dir, &["--n", "40", "--seed", "9"]);
    assert_eq!(rep["n"], 40);
    assert!(rep["rmse"].as_f64().is_some_and(f64::is_finite), "{rep}");
    predict_answers(&dir, &["1+2", "40+60"]);
    let partner = train_toml(
        root.path(),
        "partner",
        &show_quick("keras-addition"),
        &["--threads", "1"],
    );
    compare_lists_both(root.path(), &dir, &partner);
    // No checkpoint: resuming trains it again from the start, to the same weights.
    let files =
        || ["weights.safetensors", "config.json"].map(|f| std::fs::read(dir.join(f)).unwrap());
    let before = files();
    let o = run(&["train", "--resume", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("training it again"), "{}", text(&o));
    assert_eq!(files(), before);
    assert!(
        dir.join("manifest.json").is_file(),
        "the manifest is written again"
    );
}

#[test]
fn length_generalisation_gru_pair_gru_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = train_toml(
        root.path(),
        "gru",
        &show_quick("length-generalisation-gru"),
        &["--threads", "1"],
    );
    assert_eq!(kind_of(&dir), "pair-gru");
    let rep = eval_json(&dir, &["--n", "10", "--lengths", "3,6", "--stress"]);
    assert!(!rep["results"].as_array().unwrap().is_empty(), "{rep}");
    predict_answers(&dir, &["123+989", "1+2", "99999+1"]);
    let partner = regression_run(root.path());
    assert!(dir.join("history.json").is_file() && dir.join("curves.svg").is_file());
    compare_lists_both(root.path(), &dir, &partner);
}

// ---- Ctrl-C and SIGTERM, then resume to the same bytes ----

/// Trains `toml` uninterrupted, then again stopped by `signal` once the run has written its
/// first history record (mid-run), checks the exit code and the resume hint, resumes, and
/// checks the weights equal the uninterrupted run's byte for byte.
fn stopped_and_resumed_to_the_same_bytes(toml: &str, signal: i32, code: i32) {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("c.toml");
    std::fs::write(&cfg, toml).unwrap();
    let name = toml
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    let args = |runs: &str| {
        vec![
            "train".to_string(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--runs-dir".into(),
            root.path().join(runs).to_str().unwrap().into(),
            "--threads".into(),
            "2".into(),
        ]
    };
    let o = bin().args(args("whole")).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let whole = std::fs::read(
        root.path()
            .join("whole")
            .join(name)
            .join("weights.safetensors"),
    )
    .unwrap();

    let dir = root.path().join("stopped").join(name);
    let child = bin()
        .args(args("stopped"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("history.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no history in 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill(2) on our own child, not yet reaped (its pid is still ours).
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{:?} (a run that finished before the signal exits 0): {err}",
        o.status
    );
    assert!(err.contains("Resume with: seqcalc train --resume"), "{err}");
    let o = run(&["train", "--resume", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let resumed = std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(
        resumed == whole,
        "weights after the signal and resume differ from the uninterrupted run's"
    );
}

/// The quick keras-addition experiment, long enough (10 epochs of 3,600 questions) to be
/// stopped in the middle.
fn keras_addition_longer() -> String {
    edit(
        &show_quick("keras-addition"),
        &[
            ("epochs = 2", "epochs = 10"),
            ("size = 300", "size = 4000"),
            ("patience = 5", "patience = 0"),
            ("samples = 2", "samples = 0"),
        ],
    )
}

fn expression_longer() -> String {
    edit(
        &show_quick("expression-3terms"),
        &[("epochs = 2", "epochs = 6")],
    )
}

/// The quick length-generalisation experiment, 1,500 steps with a checkpoint every 100.
fn length_generalisation_longer() -> String {
    edit(
        &show_quick("length-generalisation"),
        &[
            ("steps = 40", "steps = 1500"),
            ("eval_every = 20", "eval_every = 100"),
        ],
    )
}

#[test]
fn keras_addition_ctrl_c_then_resume_gives_the_same_bytes() {
    stopped_and_resumed_to_the_same_bytes(&keras_addition_longer(), libc::SIGINT, 130);
}

#[test]
fn expression_transformer_ctrl_c_then_resume_gives_the_same_bytes() {
    stopped_and_resumed_to_the_same_bytes(&expression_longer(), libc::SIGINT, 130);
}

#[test]
fn expression_transformer_sigterm_then_resume_gives_the_same_bytes() {
    stopped_and_resumed_to_the_same_bytes(&expression_longer(), libc::SIGTERM, 143);
}

#[test]
fn length_generalisation_ctrl_c_then_resume_gives_the_same_bytes() {
    stopped_and_resumed_to_the_same_bytes(&length_generalisation_longer(), libc::SIGINT, 130);
}

#[test]
fn length_generalisation_sigterm_then_resume_gives_the_same_bytes() {
    stopped_and_resumed_to_the_same_bytes(&length_generalisation_longer(), libc::SIGTERM, 143);
}

#[test]
fn length_generalisation_gru_ctrl_c_then_resume_gives_the_same_bytes() {
    let toml = edit(
        &show_quick("length-generalisation-gru"),
        &[("steps = 60", "steps = 3000")],
    );
    stopped_and_resumed_to_the_same_bytes(&toml, libc::SIGINT, 130);
}
