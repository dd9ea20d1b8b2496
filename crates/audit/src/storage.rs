//! Where the writer puts bytes: the [`Storage`] trait, the real [`FileStorage`], stdout, and
//! the rotation naming scheme.
//!
//! # Files and rotation
//! The active file is the configured path (`zonegate-audit.log`). When it reaches
//! `rotate_bytes`, the writer fsyncs it and renames it to the next free segment name
//! `zonegate-audit.log.000001`, `.000002`, ... (six digits, counting up: a higher number is a
//! later segment, nothing is ever renamed twice), fsyncs the directory and starts a new active
//! file. The chain continues: the first record of the new file has `prev` = the last hash of the
//! old one. `zonegate log verify zonegate-audit.log*` checks them all (the verifier orders files
//! by their first `seq`, so argument order does not matter).
//!
//! Retention (`max_bytes`, `max_segments`) deletes the oldest segments after a rotation, each
//! after a chained `segment_removed` record (see the writer).
//!
//! Tests replace [`FileStorage`] with a wrapper that injects faults (ENOSPC) through
//! [`crate::AuditLog::start_with_storage`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The byte sink of the writer. All methods may fail; the writer handles every error.
pub trait Storage: Send {
    /// Opens the active file for appending (creating it) and returns its length.
    /// Called at start and again when recovering from a failure.
    fn open(&mut self) -> io::Result<u64>;
    /// Appends all of `buf` to the active file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the active file back to `len` bytes (drops a partial write after a failure); never
    /// makes it longer.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Whether this storage rotates (false for stdout).
    fn can_rotate(&self) -> bool;
    /// Closes the active file, moves it to the next segment name and opens a new empty one.
    fn rotate(&mut self) -> io::Result<()>;
    /// Closes the active file (and releases its lock) when the writer stops.
    fn close(&mut self) {}
    /// Free bytes for the log, if this storage knows better than the file system of the
    /// configured path (`None`, the default: the writer measures that file system).
    fn free_bytes(&self) -> Option<u64> {
        None
    }
}

/// An open active file, exclusively locked (`flock`) on Unix so that two processes never
/// write one log.
#[cfg(unix)]
type Locked = nix::fcntl::Flock<File>;
#[cfg(not(unix))]
type Locked = File;

fn lock(f: File, path: &Path) -> io::Result<Locked> {
    #[cfg(unix)]
    {
        use nix::fcntl::{Flock, FlockArg};
        Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is locked: another process is writing this audit log",
                        path.display()
                    ),
                )
            } else {
                io::Error::from(errno)
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(f)
    }
}

/// The real log file.
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
    file: Option<Locked>,
}

impl FileStorage {
    /// A storage for the active file `path` (nothing is opened yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
        }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.open()?;
        }
        match self.file.as_mut() {
            #[cfg(unix)]
            Some(f) => Ok(&mut **f),
            #[cfg(not(unix))]
            Some(f) => Ok(f),
            None => Err(io::Error::other("audit file not open")),
        }
    }
}

/// Fsyncs the directory of `path` (after a rename or a deletion), ignoring errors.
pub(crate) fn sync_parent(path: &Path) {
    sync_dir(path);
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

impl Storage for FileStorage {
    fn open(&mut self) -> io::Result<u64> {
        self.file = None;
        let existed = self.path.exists();
        let mut opts = OpenOptions::new();
        opts.create(true).append(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let f = lock(opts.open(&self.path)?, &self.path)?;
        let len = f.metadata()?.len();
        if !existed {
            sync_dir(&self.path);
        }
        self.file = Some(f);
        Ok(len)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file()?.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file()?.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        // Only ever shrink: after a half-done rotation the active file may be a new, shorter
        // one, and extending it would write zeros into the log.
        let f = self.file()?;
        if f.metadata()?.len() > len {
            f.set_len(len)?;
        }
        Ok(())
    }

    fn can_rotate(&self) -> bool {
        true
    }

    fn close(&mut self) {
        self.file = None;
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
        let n = segments(&self.path)?.last().map_or(1, |(n, _)| n + 1);
        fs::rename(&self.path, segment_path(&self.path, n))?;
        sync_dir(&self.path);
        self.open().map(|_| ())
    }
}

/// Writes to stdout (the `path: None` configuration).
#[derive(Debug, Default)]
pub struct StdoutStorage;

impl Storage for StdoutStorage {
    fn open(&mut self) -> io::Result<u64> {
        Ok(0)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
    fn truncate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn can_rotate(&self) -> bool {
        false
    }
    fn rotate(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes available to unprivileged users on the file system holding `path` (or its directory).
/// `None` where this cannot be measured.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        let st = nix::sys::statvfs::statvfs(dir).ok()?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let free = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
        Some(free)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Name of rotated segment `n` of the active file `path` (`path.000001`).
pub fn segment_path(path: &Path, n: u64) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n:06}"));
    PathBuf::from(s)
}

/// Rotated segments of the active file `path`, oldest first, as `(number, path)`.
pub fn segments(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if rest.len() >= 6 && rest.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = rest.parse::<u64>() {
                // Keep the caller's style: `audit.log.000001`, not `./audit.log.000001`.
                let p = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.join(name),
                    _ => PathBuf::from(name),
                };
                out.push((n, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// All files of a log, oldest first: the rotated segments, then the active file (if present).
pub fn log_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = segments(path)?.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// Adds the rotated segments of every given active file that were not given themselves, so
/// `zonegate log verify zonegate-audit.log` checks the whole chain. Returns the full list and
/// the added files.
pub fn with_segments(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    // An active file that does not exist (kill -9 between a rotation's rename and the new
    // file's creation) is left out when it has segments.
    let mut all: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.exists() || segments(p).map_or(true, |s| s.is_empty()))
        .cloned()
        .collect();
    let mut seen: Vec<PathBuf> = paths
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let mut added = Vec::new();
    for p in paths {
        let Ok(segs) = segments(p) else { continue };
        for (_, s) in segs {
            let canon = s.canonicalize().unwrap_or_else(|_| s.clone());
            if !seen.contains(&canon) {
                seen.push(canon);
                all.push(s.clone());
                added.push(s);
            }
        }
    }
    (all, added)
}

/// The last complete line of a file, and the torn bytes after it.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// The last line that ends with `\n` (without it, raw bytes), and its 1-based line number.
    pub(crate) last_line: Option<(Vec<u8>, u64)>,
    /// Length of the file up to and including that line's `\n`.
    pub(crate) good_len: u64,
    /// Bytes after it (a torn write), 0 when the file ends with `\n`.
    pub(crate) torn_bytes: u64,
}

/// Reads the tail of a log file: scans lines once (bounded memory: one line at a time).
pub(crate) fn read_tail(path: &Path) -> io::Result<Tail> {
    let mut f = File::open(path)?;
    let total = f.metadata()?.len();
    // Fast path for big files: start near the end, at a line boundary.
    let mut start = 0u64;
    let mut skipped_head = false;
    if total > 1 << 20 {
        start = total - (1 << 20);
        f.seek(SeekFrom::Start(start))?;
        let mut skip = Vec::new();
        let mut r = BufReader::new(&mut f);
        let n = r.read_until(b'\n', &mut skip)?;
        if skip.last() == Some(&b'\n') {
            start += n as u64;
            skipped_head = true;
        } else {
            start = 0; // no line boundary in the last MiB: scan it all
        }
    }
    f.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::new(f);
    let mut tail = Tail {
        good_len: start,
        ..Tail::default()
    };
    let mut buf = Vec::new();
    let mut lineno = 0u64;
    loop {
        buf.clear();
        let n = r.by_ref().take(16 << 20).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            lineno += 1;
            tail.good_len += n as u64;
            buf.pop();
            tail.last_line = Some((std::mem::take(&mut buf), lineno));
        } else {
            tail.torn_bytes = total - tail.good_len;
            break;
        }
    }
    if skipped_head {
        // Line numbers are unknown in the fast path; count them for the report.
        if let Some((_, n)) = &mut tail.last_line {
            *n = count_lines(path, tail.good_len).unwrap_or(*n);
        }
    }
    Ok(tail)
}

fn count_lines(path: &Path, upto: u64) -> io::Result<u64> {
    let f = File::open(path)?;
    let mut r = BufReader::with_capacity(1 << 16, f.take(upto));
    let mut count = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        count += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        r.consume(n);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        for n in [2u64, 10, 1] {
            fs::write(segment_path(&p, n), "x").unwrap();
        }
        fs::write(dir.path().join("a.log.torn"), "x").unwrap();
        fs::write(&p, "x").unwrap();
        let files = log_files(&p).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["a.log.000001", "a.log.000002", "a.log.000010", "a.log"]
        );
    }

    #[test]
    fn tail_finds_torn_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        fs::write(&p, "one\ntwo\nthr").unwrap();
        let t = read_tail(&p).unwrap();
        assert_eq!(t.last_line, Some((b"two".to_vec(), 2)));
        assert_eq!(t.good_len, 8);
        assert_eq!(t.torn_bytes, 3);
    }
}
