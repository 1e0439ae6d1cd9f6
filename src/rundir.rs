//! The run directory: everything a run leaves, and reading it back.
//!
//! ```text
//! runs/<name>/config.json            the resolved ExperimentConfig
//!             weights.safetensors    best weights (by validation loss), PyTorch-style names
//!             history.csv, .json     per-epoch metrics
//!             curves.svg, .png       loss and accuracy curves
//!             checkpoint/state.safetensors   last epoch's weights + Adam moments + state JSON
//! ```
//! Every file is written atomically (temporary name, then rename).

use crate::codec::Codec;
use crate::config::{ExperimentConfig, FORMAT_VERSION};
use crate::fsutil::write_atomic;
use crate::model::Seq2Seq;
use crate::nn::params::ParamLayout;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Errors reading or writing a run directory; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{0}")]
    Config(String),
    /// A failed write; the message names the file (see `fsutil::write_atomic`).
    #[error("{0}")]
    Write(std::io::Error),
}

pub(crate) fn file_err(path: &Path, msg: impl std::fmt::Display) -> RunError {
    RunError::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "weights.safetensors";
pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const CHECKPOINT: &str = "state.safetensors";

/// Saves the resolved config as `dir/config.json`.
pub fn save_config(dir: &Path, cfg: &ExperimentConfig) -> Result<(), RunError> {
    let path = dir.join(CONFIG);
    let tagged = crate::run::RunConfig::Seq2seq(cfg.clone()).to_json();
    write_atomic(&path, tagged.as_bytes()).map_err(RunError::Write)
}

/// Reads `dir/config.json`.
pub fn load_config(dir: &Path) -> Result<ExperimentConfig, RunError> {
    match crate::run::load_config(dir)? {
        crate::run::RunConfig::Seq2seq(c) => Ok(c),
        other => Err(file_err(
            &dir.join(CONFIG),
            format!("holds a {} run, not a seq2seq run", other.kind()),
        )),
    }
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serialises named tensors (`layout` over `flat`) plus extra flat tensors and metadata.
fn serialize(
    layout: &ParamLayout,
    flat: &[f32],
    extra: &[(&str, &[f32])],
    meta: HashMap<String, String>,
) -> Vec<u8> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = layout
        .specs
        .iter()
        .map(|s| (s.name.clone(), s.shape.clone(), to_bytes(&flat[s.range()])))
        .collect();
    for (spec, hh) in implied_bias_hh(layout) {
        bufs.push((hh, spec.shape.clone(), to_bytes(&vec![0.0; spec.len()])));
    }
    for (name, v) in extra {
        bufs.push((name.to_string(), vec![v.len()], to_bytes(v)));
    }
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    // One metadata key holding sorted JSON: a HashMap's order changes from run to run, and the
    // same weights must give the same file, byte for byte.
    let mut sorted: BTreeMap<String, String> = meta.into_iter().collect();
    let mut tensors: Vec<(&str, &[usize], &[u8])> = bufs
        .iter()
        .map(|(n, shape, b)| (n.as_str(), &shape[..], &b[..]))
        .collect();
    tensors.sort_by_key(|t| t.0);
    let sum = checksum(&sorted, &tensors);
    sorted.insert(CHECKSUM_KEY.to_string(), sum);
    let info = HashMap::from([(
        "seqcalc".to_string(),
        serde_json::to_string(&sorted).expect("metadata serialises"),
    )]);
    safetensors::serialize(views, Some(info)).expect("safetensors serialises")
}

/// The recurrent biases PyTorch splits in two that seqcalc keeps as one (LSTM and SimpleRNN,
/// as Keras): each `X.bias_ihS` with no `X.bias_hhS` in the layout, and that missing name.
/// Files carry both, `bias_hh` all zeros, so `torch.nn.LSTM`/`RNN` load them as they are
/// (PyTorch adds `b_ih + b_hh`, which is then exactly Keras's bias).
fn implied_bias_hh(layout: &ParamLayout) -> Vec<(&crate::nn::params::ParamSpec, String)> {
    layout
        .specs
        .iter()
        .filter_map(|s| {
            let hh = s.name.replacen(".bias_ih", ".bias_hh", 1);
            (hh != s.name && layout.get(&hh).is_none()).then_some((s, hh))
        })
        .collect()
}

/// The metadata key of the checksum over every other metadata entry and every tensor.
const CHECKSUM_KEY: &str = "checksum";

/// FNV-1a (64 bit) over the metadata (without the checksum) and the tensors' names, shapes and
/// bytes, tensors in name order (their dtype is checked on reading: seqcalc writes only F32). Any single changed byte changes it: each step of FNV-1a is a bijection
/// of the running hash for a given byte, and different bytes give different hashes.
fn checksum(meta: &BTreeMap<String, String>, tensors: &[(&str, &[usize], &[u8])]) -> String {
    let mut h = crate::fsutil::Fnv1a::default();
    let mut feed = |bytes: &[u8]| h.update(bytes);
    feed(
        serde_json::to_string(meta)
            .expect("metadata serialises")
            .as_bytes(),
    );
    for (name, shape, data) in tensors {
        feed(name.as_bytes());
        feed(&[0]);
        feed(&(shape.len() as u64).to_le_bytes());
        for d in shape.iter() {
            feed(&(*d as u64).to_le_bytes());
        }
        feed(&(data.len() as u64).to_le_bytes());
        feed(data);
    }
    format!("fnv1a64:{:016x}", h.finish())
}

/// The model's flat parameters, the extra flat tensors, and the file's metadata.
type Tensors = (Vec<f32>, Vec<Vec<f32>>, HashMap<String, String>);

/// Reads tensors named by `layout` (and `extra` flat tensors) from safetensors bytes, checking
/// every name, dtype and shape.
fn deserialize(
    path: &Path,
    bytes: &[u8],
    layout: &ParamLayout,
    extra: &[(&str, usize)],
) -> Result<Tensors, RunError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        file_err(
            path,
            format!("not a valid safetensors file ({e}); the file may be truncated or damaged"),
        )
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| file_err(path, e))?;
    let mut meta: HashMap<String, String> =
        match meta.metadata().as_ref().and_then(|m| m.get("seqcalc")) {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| file_err(path, format!("bad seqcalc metadata: {e}")))?,
            None => HashMap::new(),
        };
    if let Some(v) = meta.get("format_version") {
        let v: u32 = v
            .parse()
            .map_err(|_| file_err(path, format!("bad format_version {v:?}")))?;
        if v > FORMAT_VERSION {
            return Err(file_err(
                path,
                format!(
                    "format version {v} is newer than this seqcalc understands ({FORMAT_VERSION})"
                ),
            ));
        }
    }
    // Files written before the checksum existed (or by other tools) have none.
    if let Some(want) = meta.remove(CHECKSUM_KEY) {
        let sorted: BTreeMap<String, String> = meta.clone().into_iter().collect();
        let mut names = st.names();
        names.sort();
        let mut tensors = Vec::with_capacity(names.len());
        for n in names {
            let t = st.tensor(n).map_err(|e| file_err(path, e))?;
            tensors.push((n, t.shape().to_vec(), t.data()));
        }
        let views: Vec<(&str, &[usize], &[u8])> =
            tensors.iter().map(|(n, s, d)| (*n, &s[..], *d)).collect();
        if checksum(&sorted, &views) != want {
            return Err(file_err(
                path,
                "checksum mismatch: the file is damaged (changed bytes); restore it from a copy or retrain",
            ));
        }
    }
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, RunError> {
        let t = st.tensor(name).map_err(|_| {
            file_err(
                path,
                format!("missing tensor {name:?} (is this the weights file of a different model?)"),
            )
        })?;
        if t.dtype() != Dtype::F32 {
            return Err(file_err(
                path,
                format!("tensor {name:?} has dtype {:?}, expected F32", t.dtype()),
            ));
        }
        if t.shape() != shape {
            return Err(file_err(path, format!("tensor {name:?} has shape {:?}, the config says {shape:?} (config and weights are from different models)", t.shape())));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut flat = vec![0.0f32; layout.total];
    let mut known: Vec<String> = Vec::with_capacity(layout.specs.len() + extra.len());
    let present = |name: &str| st.tensor(name).is_ok();
    let implied = implied_bias_hh(layout);
    for s in &layout.specs {
        let v = match implied.iter().find(|(spec, _)| spec.name == s.name) {
            // Files written before the split carry Keras's bias as `X.biasS`.
            Some(_) if !present(&s.name) && present(&s.name.replacen(".bias_ih", ".bias", 1)) => {
                let old = s.name.replacen(".bias_ih", ".bias", 1);
                known.push(old.clone());
                read(&old, &s.shape)?
            }
            Some((_, hh)) if present(hh) => {
                let (mut b, b_hh) = (read(&s.name, &s.shape)?, read(hh, &s.shape)?);
                known.extend([s.name.clone(), hh.clone()]);
                // All zeros as seqcalc writes it (then `b` stays bit for bit); a file from
                // PyTorch may hold two nonzero halves, which act as their sum.
                if b_hh.iter().any(|&x| x != 0.0) {
                    b.iter_mut().zip(&b_hh).for_each(|(x, y)| *x += y);
                }
                b
            }
            _ => {
                known.push(s.name.clone());
                read(&s.name, &s.shape)?
            }
        };
        flat[s.range()].copy_from_slice(&v);
    }
    known.extend(extra.iter().map(|e| e.0.to_string()));
    if st.len() != known.len() {
        let unknown: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !known.iter().any(|k| k == n))
            .map(|s| s.to_string())
            .collect();
        return Err(file_err(
            path,
            format!("unexpected tensors {unknown:?} (weights of a different model?)"),
        ));
    }
    let extras = extra
        .iter()
        .map(|(n, len)| read(n, &[*len]))
        .collect::<Result<Vec<_>, _>>()?;
    if flat
        .iter()
        .chain(extras.iter().flatten())
        .any(|x| !x.is_finite())
    {
        return Err(file_err(path, "contains NaN or infinite values"));
    }
    Ok((flat, extras, meta))
}

fn base_meta() -> HashMap<String, String> {
    HashMap::from([
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        (
            "producer".to_string(),
            format!("seqcalc {}", env!("CARGO_PKG_VERSION")),
        ),
    ])
}

/// Writes `dir/weights.safetensors`.
pub fn save_weights(dir: &Path, model: &Seq2Seq, params: &[f32]) -> Result<(), RunError> {
    let path = dir.join(WEIGHTS);
    write_atomic(&path, &serialize(&model.layout, params, &[], base_meta()))
        .map_err(RunError::Write)
}

/// Reads `dir/weights.safetensors` for `model`.
pub fn load_weights(dir: &Path, model: &Seq2Seq) -> Result<Vec<f32>, RunError> {
    let path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => file_err(
            &path,
            "missing (a run writes it at the end of its first epoch; was it deleted?)",
        ),
        _ => file_err(&path, e),
    })?;
    Ok(deserialize(&path, &bytes, &model.layout, &[])?.0)
}

/// Writes `dir/weights.safetensors` for any parameter layout (the mapping models).
pub fn save_flat(dir: &Path, layout: &ParamLayout, params: &[f32]) -> Result<(), RunError> {
    let path = dir.join(WEIGHTS);
    write_atomic(&path, &serialize(layout, params, &[], base_meta()))
        .map_err(|e| file_err(&path, e))
}

/// Reads `dir/weights.safetensors` for any parameter layout.
pub fn load_flat(dir: &Path, layout: &ParamLayout) -> Result<Vec<f32>, RunError> {
    let path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
    Ok(deserialize(&path, &bytes, layout, &[])?.0)
}

/// A training checkpoint: current weights, Adam moments and the loop's state as JSON.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub params: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// The run kind's loop state as JSON (`train::driver::Trainee::state_json`).
    pub state_json: String,
}

/// Writes the checkpoint of a run whose parameters are laid out as `layout`.
pub fn save_checkpoint(dir: &Path, layout: &ParamLayout, ck: &Checkpoint) -> Result<(), RunError> {
    let cdir = dir.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&cdir).map_err(|e| file_err(&cdir, e))?;
    let path = cdir.join(CHECKPOINT);
    let mut meta = base_meta();
    meta.insert("state".into(), ck.state_json.clone());
    let bytes = serialize(
        layout,
        &ck.params,
        &[
            ("optimizer.adam_m", &ck.adam_m),
            ("optimizer.adam_v", &ck.adam_v),
        ],
        meta,
    );
    write_atomic(&path, &bytes).map_err(RunError::Write)
}

/// Reads the checkpoint a resume needs: a missing, unreadable or damaged one is an error that
/// names the path and what is wrong (a resume never silently starts over).
pub fn load_checkpoint_required(dir: &Path, layout: &ParamLayout) -> Result<Checkpoint, RunError> {
    let cdir = dir.join(CHECKPOINT_DIR);
    let path = cdir.join(CHECKPOINT);
    let hint = "resume needs the run's checkpoint; restore it, or start over with --restart";
    for (p, want_dir) in [(&cdir, true), (&path, false)] {
        let what = match (std::fs::symlink_metadata(p), std::fs::metadata(p)) {
            (Err(_), _) => "is missing".to_string(),
            (Ok(_), Err(e)) => {
                format!("cannot be read ({e}; a dangling symlink or a symlink loop?)")
            }
            (Ok(_), Ok(m)) if want_dir && !m.is_dir() => "is a file, not a directory".to_string(),
            (Ok(_), Ok(m)) if !want_dir && !m.is_file() => "is not a regular file".to_string(),
            _ => continue,
        };
        return Err(file_err(p, format!("{what}: {hint}")));
    }
    load_checkpoint(dir, layout)?.ok_or_else(|| file_err(&path, format!("is missing: {hint}")))
}

/// Reads the checkpoint, or `None` when the run has none yet.
pub fn load_checkpoint(dir: &Path, layout: &ParamLayout) -> Result<Option<Checkpoint>, RunError> {
    let path = dir.join(CHECKPOINT_DIR).join(CHECKPOINT);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
    let n = layout.total;
    let (params, mut extras, meta) = deserialize(
        &path,
        &bytes,
        layout,
        &[("optimizer.adam_m", n), ("optimizer.adam_v", n)],
    )?;
    let state_json = meta
        .get("state")
        .cloned()
        .ok_or_else(|| file_err(&path, "missing training state"))?;
    let adam_v = extras.pop().expect("two extras");
    let adam_m = extras.pop().expect("two extras");
    Ok(Some(Checkpoint {
        params,
        adam_m,
        adam_v,
        state_json,
    }))
}

/// The name of the lock file in a run directory.
pub const LOCK: &str = "lock";

/// Files a run writes into its directory (besides [`LOCK`]): what `Open::Restart` removes and
/// what `Open::New` refuses to overwrite.
pub const RUN_FILES: &[&str] = &[
    CONFIG,
    WEIGHTS,
    CHECKPOINT_DIR,
    "history.csv",
    "history.json",
    crate::run::MANIFEST,
    "curves.svg",
    "curves.png",
    "results.json",
];

/// Holds an OS advisory lock (`flock`) on `dir/lock` while a training run writes into `dir`.
/// The kernel releases it when the process ends in any way (exit, crash, SIGKILL), so a lock
/// is held exactly while its owner lives: no pid to trust, no stale file to take over. The file
/// itself stays (removing it would let a second process lock a new file while a third still
/// holds the old one); it records the last owner's pid for people.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `dir` (which must exist) without waiting: refused while another
    /// process holds it. Temporary files that earlier, killed writers left are removed.
    pub fn acquire(dir: &Path) -> Result<RunLock, RunError> {
        use std::io::Write;
        let path = dir.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| file_err(&path, format!("could not open the run's lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {owner})")
                };
                return Err(file_err(
                    &path,
                    format!("another seqcalc{who} is training in this run directory; wait for it to finish or stop it (Ctrl-C), then resume"),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(file_err(
                    &path,
                    format!("could not lock the run directory: {e}"),
                ))
            }
        }
        // The pid is for people reading the file; the lock is the kernel's.
        let _ = file
            .set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        // Only the lock's holder writes here: whatever temporary files exist are a killed
        // writer's.
        for d in [dir.to_path_buf(), dir.join(CHECKPOINT_DIR)] {
            crate::fsutil::remove_stale_temporaries(&d, |_| false);
        }
        Ok(RunLock { _file: file })
    }
}

/// The process holding the training lock of `dir`, if any: read from the kernel's table of
/// locks (`/proc/locks`), so asking takes no lock and cannot get in a training's way. `None`
/// when no process holds it, or where the table is not available (not Linux).
pub fn lock_holder(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.join(LOCK)).ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    parse_lock_holder(&table, &file)
}

/// The pid of the `FLOCK` write lock on `file` (`major:minor:inode` as `/proc/locks` writes
/// it) in the table `text`.
fn parse_lock_holder(text: &str, file: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 7364 fe:00:10168403 0 EOF"; a blocked waiter's line has
        // "->" after the number.
        match f.as_slice() {
            [_, "FLOCK", _, "WRITE", pid, id, ..] if *id == file => pid.parse().ok(),
            _ => None,
        }
    })
}

/// How [`open_run`] treats what the run directory already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// A new run: the directory is created if needed and must not hold a run yet.
    New,
    /// Go on from the directory's checkpoint; the directory must exist and hold a run whose
    /// checkpoint is readable and belongs to it (checked by the trainer, under the lock).
    Resume,
    /// Start over: the run's files ([`RUN_FILES`]) are removed, then the run trains from
    /// scratch. Only on an explicit request (the CLI's `--restart`).
    Restart,
}

/// Whether `path` exists as anything, a dangling symlink included.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Opens `dir` for a training run: creates it (except to resume), takes its lock, and only then
/// looks at what it holds, so two runs started together cannot both pass the checks. The
/// returned lock must be held for as long as the run writes.
pub fn open_run(dir: &Path, open: Open) -> Result<RunLock, RunError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(file_err(
                dir,
                "is a file, not a run directory; choose another --name or --runs-dir",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && open != Open::Resume => {
            std::fs::create_dir_all(dir)
                .map_err(|e| file_err(dir, format!("could not create the run directory: {e}")))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(file_err(dir, "no such run directory; nothing to resume"))
        }
        Err(e) => return Err(file_err(dir, e)),
    }
    let lock = RunLock::acquire(dir)?;
    match open {
        Open::New => {
            // A checkpoint without a config is a start killed before it wrote the config (see
            // `train::run`): nothing trained yet, so it is written over.
            let holds = |f: &&&str| **f != CHECKPOINT_DIR && present(&dir.join(f));
            if let Some(f) = RUN_FILES.iter().find(holds) {
                return Err(RunError::Config(format!(
                    "run directory {} already holds a run (it has {f}); continue it with `seqcalc train --resume {}`, start it over with --restart, or choose another --name",
                    dir.display(),
                    dir.display()
                )));
            }
        }
        Open::Resume => {
            if !present(&dir.join(CONFIG)) {
                return Err(file_err(
                    &dir.join(CONFIG),
                    "missing: this directory holds no run to resume",
                ));
            }
        }
        Open::Restart => {
            for f in RUN_FILES {
                let p = dir.join(f);
                let removed = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                    Ok(_) => std::fs::remove_file(&p),
                    Err(_) => Ok(()),
                };
                removed
                    .map_err(|e| file_err(&p, format!("could not remove it to restart: {e}")))?;
            }
        }
    }
    Ok(lock)
}

/// Longest run name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Checks that `name` can name a run directory: one path component of `A-Z a-z 0-9 . _ -`,
/// not `.` or `..`, not empty, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "is empty".to_string()
    } else if name == "." || name == ".." {
        "is not a directory name of its own".to_string()
    } else if name.len() > MAX_NAME_LEN {
        format!(
            "is {} bytes long, above the limit of {MAX_NAME_LEN}",
            name.len()
        )
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("has the character {c:?}")
    } else {
        return Ok(());
    };
    Err(format!(
        "run name {name:?} {why}; a run name is one directory name of the letters A-Z a-z, digits, '.', '_' and '-'"
    ))
}

/// `runs_dir/name` after checking `name` with [`validate_name`].
pub fn run_path(runs_dir: &Path, name: &str) -> Result<PathBuf, RunError> {
    validate_name(name).map_err(RunError::Config)?;
    Ok(runs_dir.join(name))
}

/// A trained model read back from its run directory.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub cfg: ExperimentConfig,
    pub codec: Codec,
    pub model: Seq2Seq,
    pub params: Vec<f32>,
}

/// Rebuilds codec and model from `dir/config.json` and loads `dir/weights.safetensors`.
pub fn load_run(dir: &Path) -> Result<LoadedRun, RunError> {
    load_run_with(dir, load_config(dir)?)
}

/// Rebuilds codec and model from a config already read from `dir/config.json`, and loads
/// `dir/weights.safetensors`.
pub fn load_run_with(dir: &Path, mut cfg: ExperimentConfig) -> Result<LoadedRun, RunError> {
    let (codec, model) = cfg.build().map_err(|e| file_err(&dir.join(CONFIG), e))?;
    let params = load_weights(dir, &model)?;
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        cfg,
        codec,
        model,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_is_found_while_the_lock_is_held_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        if std::path::Path::new("/proc/locks").exists() {
            assert_eq!(lock_holder(dir.path()), Some(std::process::id()));
        }
        drop(lock);
        assert_eq!(lock_holder(dir.path()), None);
        let table = "1: POSIX  ADVISORY  WRITE 11 fe:00:42 0 EOF\n\
                     2: FLOCK  ADVISORY  READ 12 fe:00:42 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 13 fe:00:421 0 EOF\n\
                     4: -> FLOCK  ADVISORY  WRITE 14 fe:00:42 0 EOF\n\
                     5: FLOCK  ADVISORY  WRITE 15 fe:00:42 0 EOF\n";
        assert_eq!(parse_lock_holder(table, "fe:00:42"), Some(15));
        assert_eq!(parse_lock_holder(table, "fe:00:43"), None);
        assert_eq!(parse_lock_holder("", "fe:00:42"), None);
    }
    use crate::model::ModelConfig;

    fn model(hidden: usize) -> Seq2Seq {
        Seq2Seq::new(
            &ModelConfig {
                hidden,
                ..Default::default()
            },
            12,
            7,
            4,
        )
        .unwrap()
    }

    #[test]
    fn weights_round_trip_with_pytorch_names() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(8);
        let p: Vec<f32> = m.init_params(5);
        save_weights(dir.path(), &m, &p).unwrap();
        assert_eq!(load_weights(dir.path(), &m).unwrap(), p);
        let bytes = std::fs::read(dir.path().join(WEIGHTS)).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<&str> = st.names();
        names.sort();
        assert_eq!(
            names,
            [
                "decoder.bias_hh_l0",
                "decoder.bias_ih_l0",
                "decoder.weight_hh_l0",
                "decoder.weight_ih_l0",
                "encoder.bias_hh_l0",
                "encoder.bias_ih_l0",
                "encoder.weight_hh_l0",
                "encoder.weight_ih_l0",
                "head.bias",
                "head.weight"
            ]
        );
        assert_eq!(
            st.tensor("encoder.weight_ih_l0").unwrap().shape(),
            &[32, 12]
        );
        // PyTorch's second LSTM bias is written as zeros.
        let hh = st.tensor("encoder.bias_hh_l0").unwrap();
        assert_eq!(hh.shape(), &[32]);
        assert!(hh.data().iter().all(|&b| b == 0));
        // Saving the same weights twice gives the same bytes.
        save_weights(dir.path(), &m, &p).unwrap();
        assert_eq!(std::fs::read(dir.path().join(WEIGHTS)).unwrap(), bytes);
    }

    /// Writes `m`'s weights `p` with the recurrent biases renamed by `rename` (which returns
    /// the new name, or `None` to leave a tensor out) plus the `added` tensors.
    fn write_renamed(
        dir: &Path,
        m: &Seq2Seq,
        p: &[f32],
        rename: impl Fn(&str) -> Option<String>,
        added: &[(&str, Vec<f32>)],
    ) {
        let mut layout = ParamLayout::default();
        let mut flat = Vec::new();
        for s in &m.layout.specs {
            if let Some(name) = rename(&s.name) {
                layout.add(name, &s.shape);
                flat.extend_from_slice(&p[s.range()]);
            }
        }
        for (name, v) in added {
            layout.add(*name, &[v.len()]);
            flat.extend_from_slice(v);
        }
        std::fs::write(
            dir.join(WEIGHTS),
            serialize(&layout, &flat, &[], base_meta()),
        )
        .unwrap();
    }

    #[test]
    fn weights_with_keras_single_bias_names_still_load() {
        // Files written before the PyTorch names carry `encoder.bias_l0` and no `bias_hh_l0`.
        let dir = tempfile::tempdir().unwrap();
        let m = model(8);
        let p: Vec<f32> = m.init_params(9);
        write_renamed(
            dir.path(),
            &m,
            &p,
            |n| Some(n.replacen(".bias_ih", ".bias", 1)),
            &[],
        );
        let st_bytes = std::fs::read(dir.path().join(WEIGHTS)).unwrap();
        let st = SafeTensors::deserialize(&st_bytes).unwrap();
        assert!(st.tensor("encoder.bias_l0").is_ok() && st.tensor("encoder.bias_ih_l0").is_err());
        assert_eq!(load_weights(dir.path(), &m).unwrap(), p);
    }

    #[test]
    fn a_nonzero_bias_hh_from_pytorch_acts_as_the_sum() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(2);
        let p: Vec<f32> = m.init_params(4);
        let enc_b = m.layout.get("encoder.bias_ih_l0").unwrap().clone();
        let half: Vec<f32> = (0..enc_b.len()).map(|i| 0.25 * i as f32).collect();
        write_renamed(
            dir.path(),
            &m,
            &p,
            |n| Some(n.to_string()),
            &[
                ("encoder.bias_hh_l0", half.clone()),
                ("decoder.bias_hh_l0", vec![0.0; enc_b.len()]),
            ],
        );
        let got = load_weights(dir.path(), &m).unwrap();
        let mut want = p.clone();
        for (w, h) in want[enc_b.range()].iter_mut().zip(&half) {
            *w += h;
        }
        assert_eq!(got, want);
        // A file with an extra tensor of another model is still refused.
        write_renamed(
            dir.path(),
            &m,
            &p,
            |n| Some(n.to_string()),
            &[("encoder.bias_hh_l1", half)],
        );
        let e = load_weights(dir.path(), &m).unwrap_err().to_string();
        assert!(
            e.contains("unexpected tensors") && e.contains("bias_hh_l1"),
            "{e}"
        );
    }

    #[test]
    fn mismatched_or_damaged_weights_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(8);
        save_weights(dir.path(), &m, &m.init_params(1)).unwrap();
        let e = load_weights(dir.path(), &model(16))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("weights.safetensors") && e.contains("shape"),
            "{e}"
        );
        let mut bytes = std::fs::read(dir.path().join(WEIGHTS)).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(dir.path().join(WEIGHTS), &bytes).unwrap();
        let e = load_weights(dir.path(), &m).unwrap_err().to_string();
        assert!(e.contains("truncated or damaged"), "{e}");
    }

    #[test]
    fn a_changed_byte_fails_the_checksum_and_files_without_one_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WEIGHTS);
        let m = model(4);
        let p = m.init_params(3);
        save_weights(dir.path(), &m, &p).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // A changed byte in the last weight: still a valid file of finite numbers, but damaged.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 2] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let e = load_weights(dir.path(), &m).unwrap_err().to_string();
        assert!(
            e.contains("weights.safetensors") && e.contains("checksum mismatch"),
            "{e}"
        );
        // The same file without the checksum (as written before it existed) loads.
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut meta: BTreeMap<String, String> =
            serde_json::from_str(&md.metadata().as_ref().unwrap()["seqcalc"]).unwrap();
        assert!(meta.remove(CHECKSUM_KEY).unwrap().starts_with("fnv1a64:"));
        let info = HashMap::from([("seqcalc".to_string(), serde_json::to_string(&meta).unwrap())]);
        let views: Vec<(String, TensorView)> = st
            .names()
            .into_iter()
            .map(|n| {
                let t = st.tensor(n).unwrap();
                let v = TensorView::new(t.dtype(), t.shape().to_vec(), t.data()).unwrap();
                (n.to_string(), v)
            })
            .collect();
        std::fs::write(&path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
        assert_eq!(load_weights(dir.path(), &m).unwrap(), p);
    }

    #[test]
    fn checkpoint_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(4);
        let n = m.param_count();
        let ck = Checkpoint {
            params: m.init_params(2),
            adam_m: vec![0.5; n],
            adam_v: vec![0.25; n],
            state_json: "{\"epochs_done\":3}".into(),
        };
        save_checkpoint(dir.path(), &m.layout, &ck).unwrap();
        let back = load_checkpoint(dir.path(), &m.layout).unwrap().unwrap();
        assert_eq!(
            (back.params, back.adam_m, back.adam_v, back.state_json),
            (ck.params, ck.adam_m, ck.adam_v, ck.state_json)
        );
    }
}
