//! The loop's shared behaviour on a toy trainee: a linear model fitted to the sum of four
//! random inputs, with momentum, batches from a seeded stream and a scripted NaN or stop.

use super::*;
use crate::history::EpochRecord;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct ToyState {
    step: usize,
    train_secs: f64,
    skipped: usize,
    rng: String,
    history: History,
    stopped: Option<String>,
}

struct Toy<'a> {
    cadence: Cadence,
    layout: ParamLayout,
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    rng: ChaCha8Rng,
    history: History,
    stopped: Option<String>,
    /// Steps whose gradient is made non-finite.
    nan_at: Vec<usize>,
    /// Stop at the end of the period that closes at this step.
    stop_at: Option<usize>,
    /// Set this flag when the step with this index has been taken.
    interrupt_after: Option<(usize, &'a AtomicBool)>,
    periods_begun: usize,
}

fn toy<'a>(period: usize, steps: usize) -> Toy<'a> {
    let mut layout = ParamLayout::default();
    layout.add("w", &[4]);
    Toy {
        cadence: Cadence {
            period,
            steps,
            max_seconds: None,
            nan_skips: 0,
            checkpoints: true,
        },
        layout,
        params: vec![0.1, -0.2, 0.3, 0.0],
        m: vec![0.0; 4],
        v: vec![0.0; 4],
        rng: ChaCha8Rng::seed_from_u64(7),
        history: History::default(),
        stopped: None,
        nan_at: Vec::new(),
        stop_at: None,
        interrupt_after: None,
        periods_begun: 0,
    }
}

impl Trainee for Toy<'_> {
    fn cadence(&self) -> Cadence {
        self.cadence.clone()
    }
    fn layout(&self) -> &ParamLayout {
        &self.layout
    }
    fn params(&self) -> &[f32] {
        &self.params
    }
    fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }
    fn state_json(&self, pos: &Position) -> String {
        serde_json::to_string(&ToyState {
            step: pos.step,
            train_secs: pos.train_secs,
            skipped: pos.skipped,
            rng: self.rng.get_word_pos().to_string(),
            history: self.history.clone(),
            stopped: self.stopped.clone(),
        })
        .unwrap()
    }
    fn restore(&mut self, ck: Checkpoint, _path: &Path) -> Result<Position, TrainError> {
        let st: ToyState = serde_json::from_str(&ck.state_json).unwrap();
        (self.params, self.m, self.v) = (ck.params, ck.adam_m, ck.adam_v);
        self.rng.set_word_pos(st.rng.parse().unwrap());
        (self.history, self.stopped) = (st.history, st.stopped);
        Ok(Position {
            step: st.step,
            train_secs: st.train_secs,
            skipped: st.skipped,
        })
    }
    fn ready(&mut self, _resumed: Option<&Position>) {}
    fn save_config(&self, dir: &Path) -> Result<(), RunError> {
        write_atomic(&dir.join(rundir::CONFIG), b"{}").map_err(RunError::Write)
    }
    fn ended(&self) -> Option<String> {
        self.stopped.clone()
    }
    fn begin_period(&mut self, _pos: &Position) -> Result<(), TrainError> {
        self.periods_begun += 1;
        Ok(())
    }
    fn step(&mut self, pos: &Position, progress: f64) -> Result<Stepped, TrainError> {
        let x: Vec<f32> = (0..4).map(|_| self.rng.random_range(-1.0..1.0)).collect();
        let target: f32 = x.iter().sum();
        let pred: f32 = x.iter().zip(&self.params).map(|(a, w)| a * w).sum();
        let loss = ((pred - target) as f64).powi(2);
        if self.nan_at.contains(&pos.step) {
            return Ok(Stepped {
                loss: f64::NAN,
                finite: false,
            });
        }
        let lr = 0.1 * (1.0 - progress) as f32;
        for (i, xi) in x.iter().enumerate() {
            let g = 2.0 * (pred - target) * xi;
            self.m[i] = 0.9 * self.m[i] + g;
            self.v[i] += g * g;
            self.params[i] -= lr * self.m[i];
        }
        if let Some((at, flag)) = self.interrupt_after {
            if at == pos.step + 1 {
                flag.store(true, Ordering::SeqCst);
            }
        }
        Ok(Stepped { loss, finite: true })
    }
    fn end_period(&mut self, pos: &Position) -> Result<Verdict, TrainError> {
        let loss = self.params.iter().map(|w| ((w - 1.0) as f64).powi(2)).sum();
        self.history.records.push(EpochRecord {
            epoch: pos.step,
            train_loss: loss,
            train_char_acc: 0.0,
            val_loss: loss,
            val_char_acc: 0.0,
            val_exact: 0.0,
            train_secs: 0.0,
            epoch_secs: 0.0,
            elapsed_secs: 0.0,
            lr: None,
        });
        if self.stop_at == Some(pos.step) {
            self.stopped = Some("enough".into());
        }
        Ok(Verdict {
            keep_weights: true,
            stop: self.stopped.clone(),
        })
    }
    fn history_files(&self) -> (String, String) {
        (self.history.to_csv(), self.history.to_json())
    }
    fn curves(&self) -> (History, String, [&'static str; 3]) {
        (self.history.clone(), "toy".into(), ["a", "b", "c"])
    }
}

fn run_toy<'a>(
    dir: &Path,
    open: rundir::Open,
    flag: &AtomicBool,
    t: Toy<'a>,
) -> Result<(Toy<'a>, Finish), TrainError> {
    drive(dir, open, flag, || Ok(t))
}

fn bits(p: &[f32]) -> Vec<u32> {
    p.iter().map(|x| x.to_bits()).collect()
}

fn losses(h: &History) -> Vec<(usize, u64)> {
    h.records
        .iter()
        .map(|r| (r.epoch, r.val_loss.to_bits()))
        .collect()
}

#[test]
fn an_interrupt_after_any_step_resumes_to_the_same_bits() {
    let (period, steps) = (4, 11);
    let root = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let (whole, fin) = run_toy(
        &root.path().join("whole"),
        rundir::Open::New,
        &never,
        toy(period, steps),
    )
    .unwrap();
    assert_eq!((fin.pos.step, fin.interrupted), (steps, false));
    // Evaluations at every period's end and at the run's end.
    let at: Vec<usize> = whole.history.records.iter().map(|r| r.epoch).collect();
    assert_eq!(at, [4, 8, 11]);
    let weights = rundir::load_flat(&root.path().join("whole"), &whole.layout).unwrap();
    assert_eq!(bits(&weights), bits(&whole.params));
    for k in 1..=steps {
        let dir = root.path().join(format!("k{k}"));
        let flag = AtomicBool::new(false);
        let mut t = toy(period, steps);
        t.interrupt_after = Some((k, &flag));
        let (first, fin) = run_toy(&dir, rundir::Open::New, &flag, t).unwrap();
        // The last step ends the run: nothing is left to interrupt.
        assert_eq!(fin.interrupted, k < steps, "{k}");
        assert_eq!(fin.pos.step, k);
        assert_eq!(
            first.history.records.len(),
            k / period + usize::from(k == steps)
        );
        let (rest, fin) = run_toy(&dir, rundir::Open::Resume, &never, toy(period, steps)).unwrap();
        assert!(!fin.interrupted && fin.pos.step == steps, "{k}: {fin:?}");
        assert_eq!(bits(&rest.params), bits(&whole.params), "{k}");
        assert_eq!(bits(&rest.m), bits(&whole.m), "{k}");
        assert_eq!(losses(&rest.history), losses(&whole.history), "{k}");
        let weights = rundir::load_flat(&dir, &whole.layout).unwrap();
        assert_eq!(bits(&weights), bits(&whole.params), "{k}");
        assert!(dir.join("history.json").is_file() && dir.join("curves.svg").is_file());
    }
}

#[test]
fn a_non_finite_step_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let mut t = toy(4, 12);
    t.nan_at = vec![5];
    match run_toy(dir.path(), rundir::Open::New, &never, t) {
        Err(TrainError::NonFinite { epoch, batch, loss }) => {
            assert_eq!((epoch, batch), (2, 2));
            assert!(loss.is_nan());
        }
        other => panic!("{:?}", other.map(|(_, f)| f)),
    }
    let ck = rundir::load_checkpoint(dir.path(), &toy(4, 12).layout)
        .unwrap()
        .unwrap();
    let st: ToyState = serde_json::from_str(&ck.state_json).unwrap();
    assert_eq!(st.step, 4, "the checkpoint of the last evaluation");
}

#[test]
fn non_finite_steps_are_skipped_up_to_the_cadence_s_allowance() {
    let never = AtomicBool::new(false);
    let root = tempfile::tempdir().unwrap();
    let mut t = toy(4, 12);
    t.cadence.nan_skips = 2;
    t.nan_at = vec![3, 6];
    let (_, fin) = run_toy(&root.path().join("a"), rundir::Open::New, &never, t).unwrap();
    assert_eq!((fin.pos.step, fin.pos.skipped), (12, 2));
    let mut t = toy(4, 12);
    t.cadence.nan_skips = 2;
    t.nan_at = vec![3, 6, 9];
    let err = run_toy(&root.path().join("b"), rundir::Open::New, &never, t)
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Diverged(2)), "{err}");
}

#[test]
fn a_stopped_run_ends_there_and_its_resume_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flag = AtomicBool::new(false);
    let mut t = toy(3, 30);
    t.stop_at = Some(6);
    let (t, fin) = run_toy(dir.path(), rundir::Open::New, &flag, t).unwrap();
    assert_eq!(fin.stopped.as_deref(), Some("enough"));
    assert_eq!((fin.pos.step, t.periods_begun), (6, 2));
    // Even with Ctrl-C pressed, a resume finds the run ended.
    flag.store(true, Ordering::SeqCst);
    let (t, fin) = run_toy(dir.path(), rundir::Open::Resume, &flag, toy(3, 30)).unwrap();
    assert_eq!(fin.stopped.as_deref(), Some("enough"));
    assert_eq!(
        (fin.pos.step, t.periods_begun, fin.interrupted),
        (6, 0, false)
    );
}

#[test]
fn a_run_without_checkpoints_trains_to_its_end_whatever_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let flag = AtomicBool::new(true);
    let mut t = toy(2, 6);
    t.cadence.checkpoints = false;
    let (t, fin) = run_toy(dir.path(), rundir::Open::New, &flag, t).unwrap();
    assert_eq!((fin.pos.step, fin.interrupted), (6, false));
    assert_eq!(t.history.records.len(), 3);
    assert!(!dir.path().join(rundir::CHECKPOINT_DIR).exists());
    assert!(dir.path().join(rundir::WEIGHTS).is_file());
}

#[test]
fn a_time_budget_ends_the_run_with_an_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let mut t = toy(1_000_000, 0);
    t.cadence.max_seconds = Some(0.0);
    let (t, fin) = run_toy(dir.path(), rundir::Open::New, &never, t).unwrap();
    assert_eq!(fin.pos.step, 0, "a budget of no time takes no step");
    assert!(t.history.records.is_empty());
    let mut t = toy(1_000_000, 0);
    t.cadence.max_seconds = Some(1e-9);
    let (t, fin) = run_toy(&dir.path().join("b"), rundir::Open::New, &never, t).unwrap();
    assert_eq!(fin.pos.step, 1);
    assert_eq!(t.history.records.len(), 1);
}
