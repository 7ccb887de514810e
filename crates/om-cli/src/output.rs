//! Standard output shared by tasks: whole lines, flushed at once.

use crate::error::CliError;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A cloneable handle on standard output writing whole lines.
#[derive(Clone, Default)]
pub(crate) struct Out {
    lock: Arc<Mutex<()>>,
}

impl Out {
    /// Writes `text` and a newline, then flushes (so that a reader at the
    /// other end of a pipe sees each line at once).
    pub(crate) fn line(&self, text: &str) -> std::io::Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes())?;
        o.write_all(b"\n")?;
        o.flush()
    }
}

/// Whether an output error means the reader went away (`om ... | head`).
pub(crate) fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// The error of a failed write to standard output. A reader that went
/// away (`om ... | head`) ends the command quietly.
pub(crate) fn write_error(e: std::io::Error) -> CliError {
    if is_broken_pipe(&e) {
        return CliError::failure(String::new());
    }
    CliError::failure(format!("cannot write to standard output: {e}"))
}

/// Whether standard error is a terminal (for progress lines).
pub(crate) fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
