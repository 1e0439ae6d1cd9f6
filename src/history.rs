//! Per-epoch training history, saved as history.csv and history.json (by the training loop,
//! `train::driver`).

use serde::{Deserialize, Serialize};

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
    /// The learning rate at the end of the epoch, schedule applied (absent in older runs and
    /// for kinds without a schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
}

/// All epochs so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub records: Vec<EpochRecord>,
}

impl History {
    /// CSV with a header row, one line per epoch.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,train_char_acc,val_loss,val_char_acc,val_exact,train_secs,epoch_secs,elapsed_secs\n");
        for r in &self.records {
            s.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3},{:.3},{:.3}\n",
                r.epoch,
                r.train_loss,
                r.train_char_acc,
                r.val_loss,
                r.val_char_acc,
                r.val_exact,
                r.train_secs,
                r.epoch_secs,
                r.elapsed_secs
            ));
        }
        s
    }
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("history serialises")
    }
    pub fn from_json(text: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0 / epoch as f64,
            train_char_acc: 0.5,
            val_loss: 1.1,
            val_char_acc: 0.4,
            val_exact: 0.1,
            train_secs: 0.8,
            epoch_secs: 0.9,
            elapsed_secs: epoch as f64,
            lr: Some(0.001),
        }
    }

    #[test]
    fn json_keeps_every_bit_of_a_float() {
        // serde_json's default parser may land one ulp off (3.331786092 here): a resumed run
        // would then report other seconds than the run it continues.
        let mut r = rec(1);
        r.elapsed_secs = 3.331_786_091_999_999_8;
        let h = History { records: vec![r] };
        assert_eq!(History::from_json(&h.to_json()).unwrap(), h);
    }

    #[test]
    fn json_round_trip_and_csv_shape() {
        let h = History {
            records: vec![rec(1), rec(2)],
        };
        assert_eq!(History::from_json(&h.to_json()).unwrap(), h);
        let csv = h.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("epoch,train_loss"));
        assert!(lines[2].starts_with("2,0.500000,"));
    }
}
