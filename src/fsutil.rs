//! Atomic file writes: write to a temporary file in the same directory, fsync, rename.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// FNV-1a (64 bit), the hash of the checksums and run hashes seqcalc writes in its files. Each
/// caller frames its parts its own way (separators, lengths); the hashing is this.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Reads a whole file once, whatever it is: a regular file, a pipe, a FIFO, `/dev/stdin` or a
/// process substitution. Refuses directories, non-UTF-8 text and more than `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory, not a file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the limit of {} MiB", limit >> 20),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new one, never a part.
/// Errors (a full disk, a file size limit, no permission) are one line naming the path; on error
/// no temporary file is left behind and the previous file, if any, is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let ctx = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "could not write {}: {e}; the previous file, if any, is intact",
                path.display()
            ),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        ctx(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ctx(e));
    }
    // Make the rename durable (best effort: not every file system supports syncing a directory).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The pid in the name of a temporary file of [`write_atomic`] (`.NAME.tmp.PID.N`), if it is one.
fn temporary_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp.")?;
    let (pid, n) = tail.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes the temporary files that writers killed mid-write (SIGKILL, power loss) left in
/// `dir`: those of [`write_atomic`] whose process is no longer `alive`. The files they were
/// replacing were never touched. Returns how many were removed; errors are ignored (a file that
/// cannot be removed is only clutter).
pub fn remove_stale_temporaries(dir: &Path, alive: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = temporary_owner(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("w.safetensors");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("missing-dir"), "{e}");
    }

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for n in [
            ".state.safetensors.tmp.111.6",
            ".weights.safetensors.tmp.222.0",
            ".history.json.tmp.333.2",
            "weights.safetensors",
            ".hidden",
            ".x.tmp.abc.1",
            "a.tmp.444.1",
        ] {
            std::fs::write(p.join(n), b"x").unwrap();
        }
        let removed = remove_stale_temporaries(p, |pid| pid == 333);
        assert_eq!(removed, 2);
        let mut left: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".hidden",
                ".history.json.tmp.333.2",
                ".x.tmp.abc.1",
                "a.tmp.444.1",
                "weights.safetensors"
            ]
        );
        assert_eq!(remove_stale_temporaries(&p.join("missing"), |_| false), 0);
    }
}
