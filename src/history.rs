//! Per-epoch training history, saved as history.csv and history.json.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One epoch's metrics. Accuracies are fractions in [0, 1]; `*_char_acc` is Keras's per-character
/// accuracy, `val_exact` whole-answer exact match.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_char_acc: f64,
    pub val_loss: f64,
    pub val_char_acc: f64,
    pub val_exact: f64,
    /// Wall seconds of this epoch's training steps (no validation).
    pub train_secs: f64,
    /// Wall seconds of this epoch including validation.
    pub epoch_secs: f64,
    /// Wall seconds since the run started (summed over resumed sessions).
    pub elapsed_secs: f64,
}

/// All epochs so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub records: Vec<EpochRecord>,
}

impl History {
    /// CSV with a header row, one line per epoch.
    pub fn to_csv(&self) -> String {
        todo!()
    }
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        todo!()
    }
    pub fn from_json(text: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(text)
    }
    /// Writes history.csv and history.json into `dir` atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let _ = dir;
        todo!()
    }
}
