//! The receive side's replay state on disk: the stream, epoch and highest sequence number
//! accepted, so that a datagram captured before a restart of the receive side is still
//! rejected as `replayed` after it.
//!
//! One line of text, written to a temporary file, synced and renamed over the old one (a crash
//! leaves the old state or the new one, never half of one):
//!
//! ```text
//! zonegate-replicate-state 1 stream=0123456789abcdef epoch=1764700000000000 seq=4711
//! ```
//!
//! A missing file is a first start. A file naming another stream (the replication's id or
//! blocks changed, so its old datagrams are `foreign_stream` anyway) is ignored. A file that
//! does not parse is an error: the receive side refuses to start rather than silently opening
//! the replay window (delete the file to start afresh, knowingly).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &str = "zonegate-replicate-state";
const VERSION: &str = "1";
/// Longest state file read: one short line.
const MAX_LEN: u64 = 256;

/// Where the verification state stood: the epoch and highest sequence number accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayState {
    /// The stream id.
    pub stream: [u8; 8],
    /// The transmit agent's epoch.
    pub epoch: u64,
    /// The highest sequence number accepted in it.
    pub seq: u64,
}

/// Why a state file could not be used.
#[derive(Debug)]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replay state {}: {}; delete it to start with an empty replay window",
            self.path.display(),
            self.problem
        )
    }
}

impl std::error::Error for StateError {}

impl ReplayState {
    /// The file's line.
    pub fn encode(&self) -> String {
        format!(
            "{MAGIC} {VERSION} stream={} epoch={} seq={}\n",
            hex::encode(self.stream),
            self.epoch,
            self.seq
        )
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut words = text.trim_end_matches('\n').split(' ');
        if words.next() != Some(MAGIC) {
            return Err(format!("not a replay state file (no `{MAGIC}`)"));
        }
        if words.next() != Some(VERSION) {
            return Err("a replay state of another version".into());
        }
        let mut field = |name: &str| -> Result<&str, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("`{name}=` missing"))
        };
        let stream = field("stream")?;
        let epoch = field("epoch")?;
        let seq = field("seq")?;
        if words.next().is_some() {
            return Err("trailing text".into());
        }
        let mut s = [0u8; 8];
        hex::decode_to_slice(stream, &mut s).map_err(|e| format!("stream: {e}"))?;
        Ok(Self {
            stream: s,
            epoch: epoch.parse().map_err(|e| format!("epoch: {e}"))?,
            seq: seq.parse().map_err(|e| format!("seq: {e}"))?,
        })
    }

    /// Reads `path`: `Ok(None)` when it does not exist or names another stream.
    pub fn load(path: &Path, stream: [u8; 8]) -> Result<Option<Self>, StateError> {
        let err = |problem: String| StateError {
            path: path.to_path_buf(),
            problem,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        if meta.len() > MAX_LEN {
            return Err(err(format!(
                "{} bytes: not a replay state file",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let state = Self::parse(&text).map_err(err)?;
        Ok((state.stream == stream).then_some(state))
    }

    /// Writes `path` atomically: a temporary file beside it, synced, renamed over it.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.encode().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}
