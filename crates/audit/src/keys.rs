//! Ed25519 keys for signed checkpoints, and what a checkpoint signs.
//!
//! # Key files (written by `zonegate log keygen --out PREFIX`)
//! - `PREFIX.key`: the 32-byte secret seed as 64 lowercase hex digits and a newline, mode 0600.
//! - `PREFIX.pub`: the 32-byte public key as 64 lowercase hex digits and a newline.
//!
//! Readers ignore surrounding whitespace and lines starting with `#`.
//!
//! # What a checkpoint signs
//! A `checkpoint` record with sequence number `seq` signs the chain head before it, i.e. its
//! own `prev` (the hash of record `seq - 1`, which covers every record before it):
//!
//! ```text
//! message = "zonegate-audit checkpoint v1 " + decimal(seq) + " " + prev
//! ```
//!
//! `signature` is the lowercase hex of the 64-byte Ed25519 signature over those ASCII bytes;
//! `key_id` is the first 16 hex digits of SHA-256 of the 32-byte public key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::chain::sha256_hex;
use crate::error::AuditError;

/// The bytes a checkpoint with sequence number `seq` and chain head `prev` signs.
pub fn checkpoint_message(seq: u64, prev: &str) -> Vec<u8> {
    format!("zonegate-audit checkpoint v1 {seq} {prev}").into_bytes()
}

/// First 16 hex digits of SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let mut id = sha256_hex(key.as_bytes());
    id.truncate(16);
    id
}

/// Signs a checkpoint; returns the hex signature.
pub fn sign_checkpoint(key: &SigningKey, seq: u64, prev: &str) -> String {
    hex::encode(key.sign(&checkpoint_message(seq, prev)).to_bytes())
}

/// Checks a checkpoint signature given as hex.
pub fn verify_checkpoint(key: &VerifyingKey, seq: u64, prev: &str, signature_hex: &str) -> bool {
    let Ok(bytes) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    key.verify(&checkpoint_message(seq, prev), &Signature::from_bytes(&arr))
        .is_ok()
}

/// Makes a new key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey, AuditError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| AuditError::Key(format!("no randomness from the OS: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_hex32(path: &Path, what: &str) -> Result<[u8; 32], AuditError> {
    let text = fs::read_to_string(path)
        .map_err(|e| AuditError::Key(format!("{}: cannot read {what}: {e}", path.display())))?;
    let hex_text: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let bytes = hex::decode(&hex_text).map_err(|e| {
        AuditError::Key(format!(
            "{}: {what} is not hex (expected 64 hex digits): {e}",
            path.display()
        ))
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        AuditError::Key(format!(
            "{}: {what} has {} bytes, expected 32 (64 hex digits)",
            path.display(),
            bytes.len()
        ))
    })
}

/// Reads a secret key file (`PREFIX.key`). Warns (tracing) when others can read it.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "audit signing key is readable by group/others; chmod 600 it"
                );
            }
        }
    }
    Ok(SigningKey::from_bytes(&read_hex32(path, "secret key")?))
}

/// Reads a public key file (`PREFIX.pub`).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let bytes = read_hex32(path, "public key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| {
        AuditError::Key(format!(
            "{}: not a valid Ed25519 public key: {e}",
            path.display()
        ))
    })
}

/// Writes `PREFIX.key` (mode 0600, refuses to overwrite) and `PREFIX.pub`; returns both paths.
pub fn write_key_pair(prefix: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), AuditError> {
    let mut key_path = prefix.as_os_str().to_owned();
    key_path.push(".key");
    let key_path = PathBuf::from(key_path);
    let mut pub_path = prefix.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);

    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let io_err = |p: &Path, e: std::io::Error| AuditError::Key(format!("{}: {e}", p.display()));
    let mut f = opts.open(&key_path).map_err(|e| io_err(&key_path, e))?;
    writeln!(f, "{}", hex::encode(key.to_bytes())).map_err(|e| io_err(&key_path, e))?;
    f.sync_all().map_err(|e| io_err(&key_path, e))?;
    let vk = key.verifying_key();
    fs::write(&pub_path, format!("{}\n", hex::encode(vk.as_bytes())))
        .map_err(|e| io_err(&pub_path, e))?;
    Ok((key_path, pub_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = generate().unwrap();
        let prev = crate::chain::GENESIS_PREV;
        let sig = sign_checkpoint(&k, 5, prev);
        assert!(verify_checkpoint(&k.verifying_key(), 5, prev, &sig));
        assert!(!verify_checkpoint(&k.verifying_key(), 6, prev, &sig));
        assert!(!verify_checkpoint(&k.verifying_key(), 5, prev, "00"));
        assert_eq!(key_id(&k.verifying_key()).len(), 16);
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("audit");
        let k = generate().unwrap();
        let (kp, pp) = write_key_pair(&prefix, &k).unwrap();
        assert_eq!(load_signing_key(&kp).unwrap().to_bytes(), k.to_bytes());
        assert_eq!(load_verifying_key(&pp).unwrap(), k.verifying_key());
        assert!(write_key_pair(&prefix, &k).is_err(), "must not overwrite");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&kp).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
