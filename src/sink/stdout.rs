//! The default sink when none is configured: line protocol written to
//! stdout (or, in tests, any writer), one push at a time, so a person
//! running the agent sees points at once.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where the line-protocol sink writes.
pub type LineOutput = Arc<Mutex<Box<dyn Write + Send>>>;

pub fn stdout() -> LineOutput {
    Arc::new(Mutex::new(Box::new(std::io::stdout())))
}

/// Writes a push's line protocol and flushes.
pub fn write_lines(out: &LineOutput, text: &[u8]) -> std::io::Result<()> {
    let mut out = out.lock().unwrap();
    out.write_all(text)?;
    out.flush()
}
