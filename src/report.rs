//! What people see: progress bars, sample tables with ✓/✗, curves as pictures.

use crate::history::History;
use std::path::Path;

/// One validation question shown after an epoch.
#[derive(Clone, Debug)]
pub struct Sample {
    pub question: String,
    pub target: String,
    pub prediction: String,
}

impl Sample {
    pub fn correct(&self) -> bool {
        self.target == self.prediction
    }
}

/// Formats samples as the tutorial does (`Q 12+345  T 357  ✓ 357`), ✓ green / ✗ red when
/// `color`, then "Accuracy on sample: N%". Long strings (over `max_width` chars) are abbreviated
/// as runs (`-x17 p -x5 ...`).
pub fn format_samples(samples: &[Sample], color: bool, max_width: usize) -> String {
    let _ = (samples, color, max_width);
    todo!()
}

/// Abbreviates a long string by runs of equal characters: "-----p--" -> "-x5 p -x2".
pub fn abbreviate(s: &str, max_width: usize) -> String {
    let _ = (s, max_width);
    todo!()
}

/// A progress bar on stderr for one epoch of `total` examples (examples/s, ETA); hidden when
/// stderr is not a terminal.
pub fn epoch_bar(epoch: usize, epochs: usize, total: u64) -> indicatif::ProgressBar {
    let _ = (epoch, epochs, total);
    todo!()
}

/// Draws the tutorial's two plots side by side (loss: train vs validation; accuracy: train and
/// validation per-character, validation exact match) into `svg` and `png`, atomically.
pub fn plot_curves(history: &History, title: &str, svg: &Path, png: &Path) -> anyhow::Result<()> {
    let _ = (history, title, svg, png);
    todo!()
}

/// True when stdout is a terminal and NO_COLOR is unset.
pub fn stdout_color() -> bool {
    todo!()
}
