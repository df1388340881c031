//! Progress on standard error for work that takes more than a second (large messages, the key derivation of
//! backups and restores): a spinner that appears only after [`DELAY`], only when standard error is a
//! terminal, never with `--json` or `--batch`, and is cleared before a message is written to standard output.
//! Prompts run through [`suspend`], so a spinner never draws over a passphrase question.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work shorter than this shows nothing.
pub const DELAY: Duration = Duration::from_secs(1);

/// Overrides [`DELAY`] in milliseconds (the tests use 0, to see a spinner without waiting a second).
pub const DELAY_ENV: &str = "SMIMEKIT_PROGRESS_DELAY_MS";

fn delay() -> Duration {
    std::env::var(DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DELAY)
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Prompts in progress: no spinner may appear meanwhile.
static PAUSED: AtomicUsize = AtomicUsize::new(0);
static CURRENT: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether progress may be shown at all, from the global options and the terminal.
pub fn allowed(json: bool, batch: bool, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && !json && !batch
}

/// Decides once, from the global options, whether spinners may appear.
pub fn configure(g: &super::Global) {
    ENABLED.store(
        allowed(g.json, g.batch, std::io::stderr().is_terminal()),
        Ordering::Relaxed,
    );
}

/// A spinner for one piece of work; it disappears when dropped.
pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    /// Starts timing `what` (e.g. "signing"); the spinner shows if the work is still running after [`DELAY`].
    pub fn start(what: &str) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        if !ENABLED.load(Ordering::Relaxed) {
            return Spinner { stop, thread: None };
        }
        let (flag, what, delay) = (stop.clone(), what.to_string(), delay());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let step = Duration::from_millis(50);
            while !flag.load(Ordering::Relaxed)
                && (t0.elapsed() < delay || PAUSED.load(Ordering::Acquire) > 0)
            {
                std::thread::sleep(step);
            }
            if flag.load(Ordering::Relaxed) {
                return;
            }
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{spinner} smimekit: {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_message(what);
            pb.enable_steady_tick(Duration::from_millis(120));
            pb.tick();
            *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(pb.clone());
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(step);
            }
            CURRENT.lock().unwrap_or_else(|e| e.into_inner()).take();
            pb.finish_and_clear();
        });
        Spinner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `f` (a prompt) with any spinner hidden, and none appearing meanwhile.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    PAUSED.fetch_add(1, Ordering::AcqRel);
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let r = match current {
        Some(pb) => pb.suspend(f),
        None => f(),
    };
    PAUSED.fetch_sub(1, Ordering::AcqRel);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_with_json_batch_or_without_a_terminal() {
        assert!(allowed(false, false, true));
        assert!(!allowed(true, false, true));
        assert!(!allowed(false, true, true));
        assert!(!allowed(false, false, false));
    }
}
