//! Interrupted training loses nothing, and a full or unwritable disk damages nothing.
//!
//! One small training run is trained uninterrupted as the reference. The same run is then
//! started and SIGKILLed again and again at seeded random moments, several of them aimed at the
//! moment a checkpoint or weights file is being written, resumed after each kill, and finally
//! resumed to the end: its weights must equal the reference's byte for byte. The disk tests make
//! writes fail (a file-size limit standing in for a full disk, a read-only directory, a run
//! directory below a regular file) and check for one clear error line and intact files.
//!
//! `SEQCALC_KILL_ROUNDS` (default 12) sets the number of kills, `SEQCALC_KILL_SEED` the seed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{bin, small_addition, text, Rng};

/// The run every test here trains: 2-digit addition, a small model, 20 short epochs (one
/// checkpoint each), no early stopping.
const EPOCHS: usize = 20;

fn train_args(runs: &Path, name: &str) -> Vec<String> {
    let epochs = EPOCHS.to_string();
    [
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--epochs",
        &epochs,
        "--patience",
        "0",
        "--samples",
        "0",
    ]
    .into_iter()
    .chain(small_addition("2000"))
    .map(|s| s.to_string())
    .collect()
}

/// The uninterrupted reference run, shared by the tests in this file.
struct Reference {
    dir: PathBuf,
    /// Seconds from spawn to exit.
    secs: f64,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let t0 = Instant::now();
        let o = bin().args(train_args(&root, "reference")).output().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert!(o.status.success(), "{}", text(&o));
        let dir = root.join("reference");
        let st = checkpoint_state(&dir).expect("the reference run has a checkpoint");
        assert_eq!(st["epochs_done"].as_u64(), Some(EPOCHS as u64));
        // The kill plan aims some kills at weights writes; every remaining stretch of the run
        // must contain one, which holds when the last epoch improved.
        assert_eq!(
            st["best_epoch"].as_u64(),
            Some(EPOCHS as u64),
            "the reference run's last epoch did not improve; the kill plan needs it to"
        );
        Reference { dir, secs }
    })
}

/// The training state JSON stored in `dir`'s checkpoint, if it has one.
fn checkpoint_state(dir: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(dir.join("checkpoint/state.safetensors")).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .expect("the checkpoint in place does not parse: a write was not atomic");
    let meta = meta.metadata().as_ref().expect("checkpoint has metadata");
    let seqcalc: serde_json::Value = serde_json::from_str(&meta["seqcalc"]).unwrap();
    Some(serde_json::from_str(seqcalc["state"].as_str().unwrap()).unwrap())
}

/// Names of leftover temporary files (of `fsutil::write_atomic`) in a run directory.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for d in [dir.to_path_buf(), dir.join("checkpoint")] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains(".tmp.") {
                    found.push(n);
                }
            }
        }
    }
    found
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Aim {
    /// A seeded random time after spawn, inside the start-up and first epoch.
    Early,
    /// The moment the process's k-th checkpoint temporary file appears (mid-write).
    CheckpointWrite(usize),
    /// The moment its first weights temporary file appears (mid-write).
    WeightsWrite,
    /// A seeded random time after its k-th "Epoch" line (an epoch's end: history, curves and
    /// checkpoint writes, or the next epoch's batches).
    AfterEpoch(usize, u64),
}

/// Starts (or resumes) the run, kills it as `aim` says, waits for it; returns when it was
/// killed (ms after spawn), whether it was still running then, and its pid.
fn start_and_kill(args: &[String], dir: &Path, aim: Aim, early_ms: u64) -> (u128, bool, u32) {
    let mut child: Child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Epoch") && tx.send(()).is_err() {
                break;
            }
        }
    });
    let deadline = Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    let running = |child: &mut Child| child.try_wait().unwrap().is_none();
    match aim {
        Aim::Early => std::thread::sleep(Duration::from_millis(early_ms)),
        Aim::CheckpointWrite(_) | Aim::WeightsWrite => {
            let (sub, prefix) = match aim {
                Aim::WeightsWrite => ("", ".weights.safetensors.tmp."),
                _ => ("checkpoint", ".state.safetensors.tmp."),
            };
            let k = if let Aim::CheckpointWrite(k) = aim {
                k
            } else {
                1
            };
            let pid = format!("{prefix}{}.", child.id());
            'poll: while t0.elapsed() < deadline && running(&mut child) {
                if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
                    for e in rd.flatten() {
                        let n = e.file_name().to_string_lossy().into_owned();
                        if n.starts_with(&pid) {
                            seen.insert(n);
                            if seen.len() >= k {
                                break 'poll;
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Aim::AfterEpoch(k, delay_ms) => {
            for _ in 0..k {
                let _ = rx.recv_timeout(deadline);
            }
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
    }
    let was_running = running(&mut child);
    // SAFETY: kill(2) on our own child, which has not been reaped yet (its pid is still ours).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let at = t0.elapsed().as_millis();
    let status = child.wait().unwrap();
    (
        at,
        was_running && status.signal() == Some(libc::SIGKILL),
        child.id(),
    )
}

#[test]
fn killed_at_random_moments_and_resumed_the_weights_are_bit_identical() {
    let reference = reference();
    let rounds: usize = std::env::var("SEQCALC_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("SEQCALC_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_128);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("killed");
    let fresh = train_args(root.path(), "killed");
    let resume: Vec<String> = vec!["train".into(), "--resume".into(), dir.display().to_string()];
    // The reference run's average time per epoch (start-up included): early kills land within
    // half of it, so always before a process's first checkpoint.
    let epoch_ms = (reference.secs * 1000.0 / EPOCHS as f64).max(20.0) as u64;
    let t_all = Instant::now();
    let (mut mid_write, mut aimed_at_writes) = (0, 0);
    eprintln!(
        "kill plan seed {seed}, {rounds} kills, reference run {:.2} s",
        reference.secs
    );
    // Each kind of aim several times, in a seeded order with seeded parameters; an aim that
    // could reach the end of the run from where it stands is replaced by one that cannot.
    let mut deck = vec![
        Aim::CheckpointWrite(1),
        Aim::CheckpointWrite(1),
        Aim::CheckpointWrite(1),
        Aim::CheckpointWrite(1),
        Aim::WeightsWrite,
        Aim::WeightsWrite,
        Aim::Early,
        Aim::Early,
        Aim::AfterEpoch(1, 0),
        Aim::AfterEpoch(1, 0),
        Aim::AfterEpoch(1, 0),
        Aim::AfterEpoch(1, 0),
    ];
    for i in (1..deck.len()).rev() {
        deck.swap(i, rng.below(i + 1));
    }
    for round in 1..=rounds {
        let before = checkpoint_state(&dir);
        let done = before
            .as_ref()
            .map_or(0, |s| s["epochs_done"].as_u64().unwrap() as usize);
        let left = EPOCHS - done;
        assert!(left >= 1);
        let mut aim = match deck[(round - 1) % deck.len()] {
            Aim::CheckpointWrite(_) => Aim::CheckpointWrite(1 + rng.below(4)),
            Aim::AfterEpoch(..) => {
                Aim::AfterEpoch(1 + rng.below(4), rng.below(epoch_ms as usize) as u64)
            }
            a => a,
        };
        aim = match aim {
            Aim::CheckpointWrite(k) if k + 1 > left => Aim::WeightsWrite,
            Aim::AfterEpoch(k, _) if k + 2 > left => Aim::Early,
            a => a,
        };
        let early_ms = rng.below(epoch_ms as usize / 2) as u64;
        // A run killed before it saved its config starts again; any other continues.
        let args = if dir.join("config.json").exists() {
            &resume
        } else {
            &fresh
        };
        let (at, landed, pid) = start_and_kill(args, &dir, aim, early_ms);
        let after = checkpoint_state(&dir);
        assert!(
            landed,
            "round {round}: {aim:?} came after the process had exited; the kill proved nothing"
        );
        if let Some(st) = &after {
            assert!(
                st["stopped"].is_null(),
                "round {round}: {aim:?} came after the run had finished: {}",
                st["stopped"]
            );
        }
        let mine = format!(".tmp.{pid}.");
        let left_tmp = temporaries(&dir).iter().any(|n| n.contains(&mine));
        if matches!(aim, Aim::CheckpointWrite(_) | Aim::WeightsWrite) {
            aimed_at_writes += 1;
            mid_write += left_tmp as usize;
        }
        eprintln!(
            "kill {round:>2}: {:<6} {:<24} at {at:>5} ms, epochs done {done:>2} -> {:>2}{}",
            if args == &fresh { "start" } else { "resume" },
            format!("{aim:?}"),
            after.map_or(0, |s| s["epochs_done"].as_u64().unwrap()),
            if left_tmp {
                ", a write was cut short"
            } else {
                ""
            }
        );
    }
    let o = bin().args(&resume).output().unwrap();
    assert!(o.status.success(), "final resume: {}", text(&o));
    eprintln!(
        "{rounds} kills ({aimed_at_writes} aimed at writes, {mid_write} cut a write short) and resumes in {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
    assert!(
        rounds < 10 || aimed_at_writes < 4 || mid_write >= 1,
        "no kill landed while a file was being written; the test did not exercise that"
    );
    assert!(
        temporaries(&dir).is_empty(),
        "temporary files of killed writers were left behind: {:?}",
        temporaries(&dir)
    );
    let a = std::fs::read(reference.dir.join("weights.safetensors")).unwrap();
    let b = std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(
        a == b,
        "weights after kills and resumes differ from the uninterrupted run's"
    );
    // The checkpoints' tensors (weights and Adam moments) agree too; their state JSON differs
    // only in wall times.
    let ca = std::fs::read(reference.dir.join("checkpoint/state.safetensors")).unwrap();
    let cb = std::fs::read(dir.join("checkpoint/state.safetensors")).unwrap();
    let (sa, sb) = (
        safetensors::SafeTensors::deserialize(&ca).unwrap(),
        safetensors::SafeTensors::deserialize(&cb).unwrap(),
    );
    let mut names = sa.names();
    names.sort();
    assert!(names.contains(&"optimizer.adam_v"), "{names:?}");
    for n in names {
        assert!(
            sa.tensor(n).unwrap().data() == sb.tensor(n).unwrap().data(),
            "checkpoint tensor {n} differs"
        );
    }
}

/// `args` run with the size of any file it writes limited to `limit` bytes (RLIMIT_FSIZE), as a
/// full disk would limit it: a write past the limit fails with EFBIG (and raises SIGXFSZ,
/// which the binary must ignore to report the error rather than die).
fn run_with_file_size_limit(args: &[String], limit: u64) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// Exit code 2 and exactly one line on stderr containing every one of `want`, no panic.
fn assert_one_line_error(o: &Output, want: &[&str], case: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{case}: exit status {:?}\n{}",
        o.status,
        text(o)
    );
    assert_eq!(err.lines().count(), 1, "{case}: not one line:\n{err}");
    for w in want {
        assert!(err.contains(w), "{case}: {w:?} missing in {err}");
    }
    assert!(!err.contains("panicked"), "{case}: {err}");
}

/// The run's files whose bytes must survive a failed write.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "config.json",
        "weights.safetensors",
        "checkpoint/state.safetensors",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect()
}

#[test]
fn a_full_disk_stops_training_with_one_line_and_the_last_good_files_stay() {
    let reference = reference();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("full");
    // A run with a good checkpoint: killed as its third checkpoint write begins.
    let (_, landed, _) = start_and_kill(
        &train_args(root.path(), "full"),
        &dir,
        // The first write is the checkpoint before the first step; the third, epoch 2's.
        Aim::CheckpointWrite(3),
        0,
    );
    assert!(landed);
    let good = snapshot(&dir);
    let epochs_done = checkpoint_state(&dir).unwrap()["epochs_done"].clone();
    // Usually 1; on a loaded machine the kill can land just after the second write finished.
    let done = epochs_done.as_u64().unwrap_or(0);
    assert!(
        (1..EPOCHS as u64).contains(&done),
        "the run needs a good checkpoint and epochs left to train: {done} done"
    );
    let resume: Vec<String> = vec!["train".into(), "--resume".into(), dir.display().to_string()];
    let (weights, ckpt) = (good[1].1.len() as u64, good[2].1.len() as u64);
    // Below the weights file's size the first weights write fails; between it and the
    // checkpoint's size, the weights are written and the checkpoint write fails.
    for (limit, failing) in [
        (weights / 2, "weights.safetensors"),
        ((weights + ckpt) / 2, "state.safetensors"),
    ] {
        let o = run_with_file_size_limit(&resume, limit);
        let case = format!("file size limit {limit}");
        assert_one_line_error(&o, &[failing, "File too large"], &case);
        assert!(
            temporaries(&dir).is_empty(),
            "{case}: {:?}",
            temporaries(&dir)
        );
        let now = snapshot(&dir);
        assert!(now[0] == good[0], "{case}: config.json changed");
        assert!(now[2] == good[2], "{case}: the checkpoint changed");
        if failing == "weights.safetensors" {
            assert!(now[1] == good[1], "{case}: the weights changed");
        }
        // Whatever weights are in place load and answer.
        let p = bin()
            .args(["predict", "--model", dir.to_str().unwrap(), "12+34"])
            .output()
            .unwrap();
        assert!(p.status.success(), "{case}: {}", text(&p));
        assert_eq!(checkpoint_state(&dir).unwrap()["epochs_done"], epochs_done);
    }
    // With room again, the run continues to the same weights as the uninterrupted one.
    let o = bin().args(&resume).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let a = std::fs::read(reference.dir.join("weights.safetensors")).unwrap();
    assert!(
        a == std::fs::read(dir.join("weights.safetensors")).unwrap(),
        "weights after the failed writes and a resume differ from the uninterrupted run's"
    );
}

#[test]
fn unwritable_run_directories_give_one_clear_line() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    // A runs directory that is a regular file, a run directory that is one, resuming one.
    let mut args = train_args(&file, "run");
    let o = bin().args(&args).output().unwrap();
    assert_one_line_error(&o, &["a-file", "Not a directory"], "runs dir is a file");
    args = train_args(root.path(), "a-file");
    let o = bin().args(&args).output().unwrap();
    assert_one_line_error(&o, &["a-file", "not a run directory"], "run dir is a file");
    let o = bin()
        .args(["train", "--resume", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_error(&o, &["a-file", "not a run directory"], "resume a file");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");

    // A read-only run directory. Root writes into it anyway, so as root (how CI runs) the
    // resume runs as the unprivileged user `nobody`, for whom the directory is read-only.
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    use std::os::unix::fs::PermissionsExt;
    if as_root {
        // `nobody` must reach the run: the temporary directory is root's, mode 0700.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let unprivileged = |cmd: &mut std::process::Command| {
        if as_root {
            // SAFETY: setgid and setuid are async-signal-safe; the child runs only them
            // before exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    };
    let dir = root.path().join("ro");
    let (_, landed, _) = start_and_kill(
        &train_args(root.path(), "ro"),
        &dir,
        Aim::CheckpointWrite(2),
        0,
    );
    assert!(landed);
    let good = snapshot(&dir);
    let set = |mode| {
        for d in [dir.clone(), dir.join("checkpoint")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set(0o555);
    let mut cmd = bin();
    cmd.args(["train", "--resume", dir.to_str().unwrap()]);
    unprivileged(&mut cmd);
    let o = cmd.output().unwrap();
    set(0o755);
    assert_one_line_error(&o, &["ro", "Permission denied"], "read-only run directory");
    assert!(
        snapshot(&dir) == good,
        "a file of the read-only run changed"
    );
    let o = bin()
        .args(["train", "--resume", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// A run that finished at its epoch bound, resumed with `--epochs` higher, trains on to the new
/// bound and ends with the weights of a run given that bound from the start; resumed without
/// it, nothing changes.
#[test]
fn a_finished_run_resumed_with_more_epochs_trains_on_to_the_same_bits() {
    let root = tempfile::tempdir().unwrap();
    let with_epochs = |name: &str, epochs: usize| -> Vec<String> {
        let mut args = train_args(root.path(), name);
        let at = args.iter().position(|a| a == "--epochs").unwrap();
        args[at + 1] = epochs.to_string();
        args
    };
    let train = |args: Vec<String>| {
        let o = bin().args(args).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let (short, long) = (root.path().join("short"), root.path().join("long"));
    train(with_epochs("short", 3));
    train(with_epochs("long", 6));
    let resume = |extra: &[&str]| {
        let o = bin()
            .args(["train", "--resume", short.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let before = snapshot(&short);
    resume(&[]);
    assert!(
        snapshot(&short) == before,
        "a finished run resumed as it was changed"
    );
    resume(&["--epochs", "6"]);
    let records = |d: &Path| -> usize {
        let h: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("history.json")).unwrap()).unwrap();
        h["records"].as_array().unwrap().len()
    };
    assert_eq!(records(&short), 6);
    let weights = |d: &Path| std::fs::read(d.join("weights.safetensors")).unwrap();
    assert!(
        weights(&short) == weights(&long),
        "3 + 3 epochs differ from 6"
    );
}
