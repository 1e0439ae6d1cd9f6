//! Exporting a trained run to a standard format: ONNX (see [`onnx`]).
//!
//! `seqcalc export --format onnx RUN -o model.onnx` reads the run directory through
//! [`crate::rundir`] like `predict` does, builds the graph here, and writes the file atomically,
//! never over an existing file unless told to.

pub mod onnx;
pub mod onnx_proto;
mod onnx_transformer;

use crate::run::{load_config, RunConfig};
use crate::rundir::RunError;
use std::path::Path;

/// Why a run could not be exported; one line each.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {msg}")]
    Output { path: String, msg: String },
}

/// The formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Onnx,
}

/// The exported model of the run in `dir`, serialised.
pub fn export(dir: &Path, format: Format) -> Result<Vec<u8>, ExportError> {
    match load_config(dir)? {
        RunConfig::Seq2seq(cfg) => {
            let run = crate::rundir::load_run_with(dir, cfg)?;
            match format {
                Format::Onnx => onnx::to_onnx(&run),
            }
            .map_err(|e| match e {
                ExportError::Unsupported(msg) => {
                    ExportError::Unsupported(format!("{}: {msg}", dir.display()))
                }
                e => e,
            })
        }
        other => Err(ExportError::Unsupported(format!(
            "{}: a {} run; ONNX export covers seq2seq runs (recurrent encoder-decoders and transformers)",
            dir.display(),
            other.kind()
        ))),
    }
}

/// Writes `bytes` to `path` atomically. Without `force` an existing file is left alone and is
/// an error (the check and the write are one step: the new file is linked into place, which
/// fails if the name exists).
pub fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<(), ExportError> {
    let err = |msg: String| ExportError::Output {
        path: path.display().to_string(),
        msg,
    };
    if path.is_dir() {
        return Err(err("is a directory; give a file name".into()));
    }
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(err(format!(
            "cannot be written: the directory {} does not exist",
            parent.display()
        )));
    }
    if force {
        return crate::fsutil::write_atomic(path, bytes).map_err(|e| err(e.to_string()));
    }
    if path.exists() {
        return Err(err("exists; pass --force to overwrite it".into()));
    }
    let name = path
        .file_name()
        .ok_or_else(|| err("not a file path".into()))?;
    let tmp = path.with_file_name(format!(
        ".{}.export.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    crate::fsutil::write_atomic(&tmp, bytes).map_err(|e| err(e.to_string()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => err("exists; pass --force to overwrite it".into()),
        _ => err(format!("could not write: {e}")),
    })
}
