//! Capturing what om and its drivers log, for tests that check log content
//! (for example that a password never shows up).
//!
//! Two tools:
//!
//! * [`Captured`] is a shareable byte buffer that a `tracing_subscriber`
//!   `fmt` subscriber can write to (`.with_writer(captured.make_writer())`),
//!   for a test that installs its own subscriber on its own thread.
//! * [`LogCapture::start`] records every event of every thread, runtime
//!   worker and driver thread included, from the moment it is called until
//!   it is dropped. It installs a process-wide subscriber the first time it
//!   is used (events at `DEBUG` and above, formatted only while a capture is
//!   running), so it fails if the test binary already installed a global
//!   subscriber of its own. Captures running at the same time each see
//!   every event, so a check should look for text only its own test
//!   produces (a unique secret, topic or message).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tracing::subscriber::Interest;
use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

/// A shared buffer that log output is written to.
#[derive(Clone, Default, Debug)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A new, empty buffer.
    pub fn new() -> Self {
        Captured::default()
    }

    /// What was written so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A writer factory for `tracing_subscriber::fmt().with_writer(..)`.
    pub fn make_writer(&self) -> impl for<'a> MakeWriter<'a> + Send + Sync + 'static {
        let me = self.clone();
        move || me.clone()
    }

    fn append(&self, buf: &[u8]) {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The buffers of the captures that are running.
static ACTIVE: Mutex<Vec<Weak<Mutex<Vec<u8>>>>> = Mutex::new(Vec::new());
/// How many captures are running (events are formatted only when > 0).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Whether the process-wide subscriber is ours (set once).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// The writer of the process-wide subscriber: copies each formatted event
/// into every running capture.
#[derive(Clone, Copy)]
struct FanOut;

impl std::io::Write for FanOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(active) = ACTIVE.lock() {
            for sink in active.iter().filter_map(Weak::upgrade) {
                Captured(sink).append(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running capture of every thread's log events; see the
/// [module documentation](self).
#[derive(Debug)]
pub struct LogCapture {
    captured: Captured,
}

impl LogCapture {
    /// Starts capturing. Fails (with the reason) if another global
    /// `tracing` subscriber was installed before the first capture.
    pub fn start() -> Result<LogCapture, String> {
        let ours = *INSTALLED.get_or_init(|| {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| FanOut)
                .with_filter(
                    // Decided per event (a call site's interest is cached,
                    // and a capture may start after the site was first hit);
                    // TRACE call sites are never enabled.
                    tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
                        RUNNING.load(Ordering::Acquire) > 0
                    })
                    .with_callsite_filter(|meta| {
                        if *meta.level() <= Level::DEBUG {
                            Interest::sometimes()
                        } else {
                            Interest::never()
                        }
                    })
                    .with_max_level_hint(LevelFilter::DEBUG),
                );
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::set_global_default(subscriber).is_ok()
        });
        if !ours {
            return Err(
                "testkit::logs needs to install the global tracing subscriber, \
                 but this test binary already installed one"
                    .into(),
            );
        }
        let captured = Captured::new();
        if let Ok(mut active) = ACTIVE.lock() {
            active.retain(|w| w.strong_count() > 0);
            active.push(Arc::downgrade(&captured.0));
        }
        RUNNING.fetch_add(1, Ordering::AcqRel);
        Ok(LogCapture { captured })
    }

    /// What was logged since [`LogCapture::start`].
    pub fn text(&self) -> String {
        self.captured.text()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}
