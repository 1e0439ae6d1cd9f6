//! A damaged run directory: every file of a run (config.json, weights.safetensors,
//! history.csv/json, checkpoint/ and its state file) replaced by nothing, a directory, a symlink
//! loop, a dangling symlink, another run's file, and garbage, then `train --resume`, `eval`,
//! `predict` and `compare` on it. Each exits 0 or 2, never panics; an error is one line; the
//! commands that need the damaged file refuse; and a refused resume changes no file of the run
//! (checked by hash; the lock file, which records the last owner's pid, aside).
//!
//! Short by default; `SEQCALC_LONG_TESTS=1` adds 20 garbage variants (random bytes and
//! truncations) per file.

mod common;

use common::{bin, Rng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn long() -> bool {
    std::env::var_os("SEQCALC_LONG_TESTS").is_some_and(|v| v != "0")
}

fn train(runs: &Path, name: &str, seed: &str, hidden: &str) -> PathBuf {
    let o = bin()
        .args([
            "train",
            "--runs-dir",
            runs.to_str().unwrap(),
            "--name",
            name,
        ])
        .args([
            "--digits",
            "2",
            "--size",
            "200",
            "--epochs",
            "2",
            "--patience",
            "0",
        ])
        .args(["--batch-size", "16", "--samples", "0", "--threads", "1"])
        .args(["--seed", seed, "--hidden", hidden])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    runs.join(name)
}

/// Every entry under `dir` (the lock file aside): its kind and content or link target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "lock") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                // FNV-1a over the bytes.
                let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
                });
                format!("file {} {h:016x}", bytes.len())
            };
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), what);
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Damage {
    Missing,
    Directory,
    SymlinkLoop,
    Dangling,
    OtherRun,
    Garbage(Vec<u8>),
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

fn copy(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn damage(dir: &Path, file: &str, how: &Damage, other: &Path) {
    let p = dir.join(file);
    remove(&p);
    match how {
        Damage::Missing => {}
        Damage::Directory => std::fs::create_dir(&p).unwrap(),
        Damage::SymlinkLoop => std::os::unix::fs::symlink(&p, &p).unwrap(),
        Damage::Dangling => std::os::unix::fs::symlink(dir.join("no-such-file"), &p).unwrap(),
        Damage::OtherRun => copy(&other.join(file), &p),
        Damage::Garbage(bytes) => std::fs::write(&p, bytes).unwrap(),
    }
}

const FILES: &[&str] = &[
    "config.json",
    "weights.safetensors",
    "history.csv",
    "history.json",
    "checkpoint",
    "checkpoint/state.safetensors",
];

/// Which commands must refuse when `file` is damaged (others may go on without it).
fn needs(command: &str, file: &str) -> bool {
    match command {
        "resume" => file == "config.json" || file.starts_with("checkpoint"),
        "eval" | "predict" => file == "config.json" || file == "weights.safetensors",
        "compare" => file == "history.json",
        _ => unreachable!(),
    }
}

#[test]
fn every_file_of_a_run_damaged_every_way() {
    let root = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let runs = root.path().join("runs");
    let good = train(&runs, "good", "1", "4");
    // Another run: another seed and width, so each of its files belongs to a different run.
    let other = train(&runs, "other", "2", "8");
    let mut rng = Rng(20_261_206);
    let (mut cases, mut refusals) = (0, 0);
    for file in FILES {
        let real = std::fs::read(good.join(file)).unwrap_or_default();
        let mut damages = vec![
            Damage::Missing,
            Damage::Directory,
            Damage::SymlinkLoop,
            Damage::Dangling,
            Damage::OtherRun,
            Damage::Garbage(b"\x00\xffnot a seqcalc file{".to_vec()),
        ];
        if long() {
            for _ in 0..10 {
                let n = rng.below(4096) + 1;
                damages.push(Damage::Garbage((0..n).map(|_| rng.next() as u8).collect()));
            }
            for _ in 0..10 {
                if !real.is_empty() {
                    damages.push(Damage::Garbage(real[..rng.below(real.len())].to_vec()));
                }
            }
        }
        for how in &damages {
            for command in ["resume", "eval", "predict", "compare"] {
                let dir = root.path().join("case");
                remove(&dir);
                copy(&good, &dir);
                damage(&dir, file, how, &other);
                let before = snapshot(&dir);
                let d = dir.to_str().unwrap();
                let out_pic = root.path().join("cmp");
                let args: Vec<&str> = match command {
                    "resume" => vec!["train", "--resume", d],
                    "eval" => vec!["eval", "--model", d, "--n", "20", "--threads", "1"],
                    "predict" => vec!["predict", "--model", d, "12+34"],
                    _ => vec!["compare", d, "--out", out_pic.to_str().unwrap()],
                };
                let o = bin().args(&args).output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                let what = format!("{file} as {how:?}, {command}");
                cases += 1;
                assert!(
                    matches!(o.status.code(), Some(0 | 2)),
                    "{what}: exit {:?}\n{err}",
                    o.status
                );
                if !o.status.success() {
                    refusals += 1;
                    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
                    assert!(
                        err.contains(d),
                        "{what}: the error does not name the run: {err}"
                    );
                }
                // Another run's history is a valid history: compare cannot tell (it names the
                // directory it read, nothing more).
                let other_history = command == "compare" && matches!(how, Damage::OtherRun);
                if needs(command, file) && !other_history {
                    assert_eq!(o.status.code(), Some(2), "{what} was accepted: {err}");
                }
                if command == "resume" && !o.status.success() {
                    assert_eq!(
                        snapshot(&dir),
                        before,
                        "{what}: a refused resume changed files"
                    );
                }
            }
        }
    }
    eprintln!("{cases} damaged-directory cases, {refusals} refused with one line");
}

/// A resume of a finished run leaves every file as it was, and one whose checkpoint is gone
/// is refused (restarting is `--restart`, never a silent fallback).
#[test]
fn resume_without_a_checkpoint_refuses_and_restart_starts_over() {
    let root = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let runs = root.path().join("runs");
    let good = train(&runs, "good", "1", "4");
    let before = snapshot(&good);
    let o = bin()
        .args(["train", "--resume", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    assert_eq!(snapshot(&good), before);
    std::fs::remove_dir_all(good.join("checkpoint")).unwrap();
    let before = snapshot(&good);
    let o = bin()
        .args(["train", "--resume", good.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("checkpoint") && err.contains("--restart"),
        "{err}"
    );
    assert_eq!(snapshot(&good), before);
    // Starting over is an explicit choice.
    let o = bin()
        .args([
            "train",
            "--runs-dir",
            runs.to_str().unwrap(),
            "--name",
            "good",
        ])
        .args([
            "--digits",
            "2",
            "--size",
            "200",
            "--epochs",
            "2",
            "--patience",
            "0",
        ])
        .args(["--batch-size", "16", "--samples", "0", "--threads", "1"])
        .args(["--seed", "1", "--hidden", "4", "--restart"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    assert!(good.join("checkpoint/state.safetensors").exists());
    // A name that is not one safe path component is refused before anything is written.
    for name in ["..", ".", "", "a/b", "x y", &"n".repeat(300)] {
        let o = bin()
            .args([
                "train",
                "--runs-dir",
                runs.to_str().unwrap(),
                "--name",
                name,
            ])
            .args([
                "--digits", "2", "--size", "200", "--epochs", "1", "--hidden", "4",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name:?}: {err}");
        assert!(err.contains("run name"), "{name:?}: {err}");
    }
}
