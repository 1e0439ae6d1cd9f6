//! Atomic file writes: write to a temporary file in the same directory, fsync, rename.

use std::io;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _ = (path, bytes);
    todo!()
}
