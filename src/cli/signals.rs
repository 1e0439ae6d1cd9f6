//! Ctrl-C and SIGTERM, handled once for every command (signal-hook).
//!
//! A command that polls [`STOP`] (training, sweeps, experiments) calls [`cooperate`] first: the
//! first signal then asks it to stop after the current batch with a checkpoint, and a second
//! ends the process at once. Any other command ends at the first signal. Either way the exit
//! code is 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by the first signal in a command that cooperates.
pub static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static COOPERATIVE: AtomicBool = AtomicBool::new(false);

/// Starts the thread that receives SIGINT and SIGTERM. Called once, by `main`.
pub fn install() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let first = SIGNAL
                    .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if first && COOPERATIVE.load(Ordering::SeqCst) {
                    STOP.store(true, Ordering::SeqCst);
                } else {
                    std::process::exit(128 + sig);
                }
            }
        })?;
    Ok(())
}

/// The running command polls [`STOP`] and stops cleanly on the first signal.
pub fn cooperate() {
    COOPERATIVE.store(true, Ordering::SeqCst);
}

/// 128 + the signal that stopped the command, if one did.
pub fn exit_code() -> Option<u8> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => u8::try_from(128 + s).ok(),
    }
}

/// Whether a signal asked the command to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
