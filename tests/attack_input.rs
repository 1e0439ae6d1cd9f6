//! Inputs a hostile or merely unusual user gives: a config through a pipe, a FIFO or an
//! oversized file (each read once, bounded), and a sweep's results file with torn and damaged
//! lines, duplicated grid keys and impossible evaluation sizes.

mod common;

use common::bin;
use seqcalc::config::ExperimentConfig;
use seqcalc::run::RunConfig;
use seqcalc::sweep;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

/// Waits at most `limit` for `child`; a child still running then is killed and fails the test.
fn wait(mut child: std::process::Child, limit: Duration, what: &str) -> std::process::Output {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// The seq2seq config a command printed as TOML.
fn seq2seq(out: &[u8]) -> ExperimentConfig {
    match RunConfig::parse(&String::from_utf8_lossy(out)).unwrap() {
        RunConfig::Seq2seq(c) => c,
        other => panic!("not a seq2seq config: {other:?}"),
    }
}

#[test]
fn a_config_through_a_pipe_or_a_fifo_is_read_once() {
    let show = bin()
        .args(["experiment", "show", "keras-subtraction"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let want = seq2seq(&show.stdout);
    assert_eq!(want.task.op, "-");
    // A pipe: `seqcalc experiment show keras-subtraction | seqcalc train --config /dev/stdin`.
    let mut child = bin()
        .args(["train", "--config", "/dev/stdin", "--print-config"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&show.stdout).unwrap();
    let o = wait(child, Duration::from_secs(20), "pipe");
    assert!(o.status.success(), "{}", common::text(&o));
    let got = seq2seq(&o.stdout);
    assert_eq!(
        got.task.op, "-",
        "the pipe's config was not the one trained"
    );
    assert_eq!(got.name, want.name);
    // A FIFO, written once by another thread.
    let dir = scratch();
    let fifo = dir.path().join("config.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let child = bin()
        .args([
            "train",
            "--config",
            fifo.to_str().unwrap(),
            "--print-config",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (path, text) = (fifo.clone(), show.stdout.clone());
    let writer = std::thread::spawn(move || std::fs::write(path, text).unwrap());
    let o = wait(child, Duration::from_secs(20), "FIFO");
    writer.join().unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    let got = seq2seq(&o.stdout);
    assert_eq!(got.task.op, "-");
    // An oversized config is refused in one line, without reading it all.
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b' '; 17 << 20]).unwrap();
    let o = bin()
        .args(["train", "--config", big.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("big.toml") && err.contains("limit"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

fn result_line(id: &str) -> String {
    let r = sweep::RunResult {
        id: id.into(),
        cell: vec![],
        seed: 1,
        error: None,
        params: 1,
        epochs: 1,
        seconds: 0.5,
        best_val_exact: 0.5,
        fresh_exact: Some(0.5),
        fresh_char: Some(0.5),
        fresh_n: 10,
        epochs_to_target: None,
        seconds_to_target: None,
        kernel: None,
    };
    serde_json::to_string(&r).unwrap()
}

#[test]
fn damaged_result_lines_are_named_and_skipped_and_the_good_ones_kept() {
    let dir = scratch();
    let mut bytes = Vec::new();
    bytes.extend(result_line("a").as_bytes());
    bytes.extend(b"\n\xff\xfe invalid bytes\n");
    bytes.extend(result_line("b").as_bytes());
    bytes.extend(b"\n{\"id\": \"not a result\"}\n\n");
    bytes.extend(result_line("c").as_bytes());
    bytes.push(b'\n');
    // A torn last line (a kill mid-append).
    bytes.extend(&result_line("d").as_bytes()[..20]);
    std::fs::write(dir.path().join(sweep::RESULTS_FILE), &bytes).unwrap();
    let (results, damaged) = sweep::read_results_checked(dir.path());
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(damaged.len(), 3, "{damaged:?}");
    for (d, line) in damaged.iter().zip([2, 4, 7]) {
        assert!(d.contains(&format!("line {line}:")), "{d}");
    }
    assert_eq!(sweep::failed_runs(&results), 0);
}

#[test]
fn a_sweep_appends_after_a_torn_line_and_checks_its_numbers_first() {
    let dir = scratch();
    let mut base = ExperimentConfig::default();
    base.task.digits = 1;
    base.data.size = 40;
    base.model.hidden = 4;
    base.train.epochs = 1;
    base.train.batch_size = 16;
    base.train.samples = 0;
    // A grid key given twice is refused.
    let axes = [
        sweep::Axis::parse("hidden=4,8").unwrap(),
        sweep::Axis::parse("model.hidden=16").unwrap(),
    ];
    let e = sweep::expand(&base, &axes, 1).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    let e = sweep::expand(&base, &[], usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--seeds"), "{e}");
    let jobs = sweep::expand(&base, &[sweep::Axis::parse("hidden=4").unwrap()], 1).unwrap();
    assert_eq!(jobs[0].cfg.name, "hidden_4_seed_1337");
    let mut opts = sweep::Options {
        dir: dir.path().to_path_buf(),
        parallel: 1,
        threads: 1,
        eval_n: 1000,
        target: 0.5,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    // More fresh questions than the task has left: refused before anything trains.
    let e = sweep::run(&jobs, &opts, &stop, &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("--eval-n 1000"), "{e}");
    assert!(!dir.path().join("runs").exists());
    for (eval_n, threads) in [(0, 1), (usize::MAX, 1), (5, 0), (5, 100_000)] {
        opts.eval_n = eval_n;
        opts.threads = threads;
        assert!(sweep::run(&jobs, &opts, &stop, &mut |_, _, _| {}).is_err());
    }
    (opts.eval_n, opts.threads) = (5, 1);
    let torn = &result_line("x")[..15];
    std::fs::write(dir.path().join(sweep::RESULTS_FILE), torn).unwrap();
    let results = sweep::run(&jobs, &opts, &stop, &mut |_, _, _| {}).unwrap();
    assert_eq!(results.len(), 1);
    let text = std::fs::read_to_string(dir.path().join(sweep::RESULTS_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], torn);
    let back: sweep::RunResult = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(back.id, jobs[0].id);
}

#[test]
fn every_built_in_sweep_names_its_runs_with_safe_names() {
    for quick in [true, false] {
        for j in seqcalc::compare::jobs(quick).unwrap() {
            seqcalc::rundir::validate_name(&j.cfg.name).unwrap();
        }
    }
    for bad in ["", ".", "..", "a/b", "a\\b", "x y", "é", "a\0b"] {
        assert!(seqcalc::rundir::validate_name(bad).is_err(), "{bad:?}");
    }
    assert!(seqcalc::rundir::validate_name(&"n".repeat(201)).is_err());
    seqcalc::rundir::validate_name("keras-addition_2.v1").unwrap();
}
