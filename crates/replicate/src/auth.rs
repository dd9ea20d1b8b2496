//! Authentication tags: HMAC-SHA256 (RFC 2104, FIPS 198-1) under a shared key, or Ed25519
//! (RFC 8032) with the secret key on the transmit side only.
//!
//! Key files use the format of `zonegate log keygen` (see `zonegate_audit::keys`): 32 bytes as
//! 64 hex digits; whitespace and lines starting with `#` are ignored. For HMAC both sides read
//! the same secret; for Ed25519 the transmit side reads `PREFIX.key`, the receive side
//! `PREFIX.pub`, so a compromised receive side cannot forge data.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zonegate_policy::ReplicationAuth;

/// Length of an HMAC-SHA256 tag.
pub const HMAC_TAG_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_TAG_LEN: usize = 64;
/// Shortest HMAC key accepted: the hash's output length (RFC 2104 §3).
pub const MIN_HMAC_KEY_LEN: usize = 32;

const BLOCK: usize = 64;

/// A key file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// HMAC-SHA256 with the key's inner and outer pads precomputed.
#[derive(Clone)]
pub struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    /// A key of any length (longer than the block is hashed first, RFC 2104 §2).
    pub fn new(key: &[u8]) -> Self {
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for i in 0..BLOCK {
            ipad[i] ^= k[i];
            opad[i] ^= k[i];
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        Self { inner, outer }
    }

    /// The tag of `message`.
    pub fn tag(&self, message: &[u8]) -> [u8; HMAC_TAG_LEN] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// True when `tag` is the tag of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        let want = self.tag(message);
        tag.len() == want.len() && want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// What the transmit side signs with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TagKey {
    /// Shared secret.
    Hmac(Box<HmacKey>),
    /// Ed25519 secret key.
    Ed25519(Box<SigningKey>),
}

/// What the receive side verifies with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum VerifyKey {
    /// Shared secret.
    Hmac(Box<HmacKey>),
    /// Ed25519 public key.
    Ed25519(VerifyingKey),
}

impl TagKey {
    /// Which algorithm.
    pub fn auth(&self) -> ReplicationAuth {
        match self {
            Self::Hmac(_) => ReplicationAuth::HmacSha256,
            Self::Ed25519(_) => ReplicationAuth::Ed25519,
        }
    }

    /// Appends the tag of `message` to `out`.
    pub fn append_tag(&self, message: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Hmac(k) => out.extend_from_slice(&k.tag(message)),
            Self::Ed25519(k) => out.extend_from_slice(&k.sign(message).to_bytes()),
        }
    }

    /// The matching verification key (for tests and the probe, which run both halves).
    pub fn verify_key(&self) -> VerifyKey {
        match self {
            Self::Hmac(k) => VerifyKey::Hmac(k.clone()),
            Self::Ed25519(k) => VerifyKey::Ed25519(k.verifying_key()),
        }
    }

    /// Reads the transmit side's key file.
    pub fn load(auth: ReplicationAuth, path: &Path) -> Result<Self, KeyError> {
        match auth {
            ReplicationAuth::Ed25519 => zonegate_audit::keys::load_signing_key(path)
                .map(|k| Self::Ed25519(Box::new(k)))
                .map_err(|e| KeyError(e.to_string())),
            _ => read_hmac_key(path).map(|k| Self::Hmac(Box::new(HmacKey::new(&k)))),
        }
    }
}

impl VerifyKey {
    /// Which algorithm.
    pub fn auth(&self) -> ReplicationAuth {
        match self {
            Self::Hmac(_) => ReplicationAuth::HmacSha256,
            Self::Ed25519(_) => ReplicationAuth::Ed25519,
        }
    }

    /// Length of the tags this key checks.
    pub fn tag_len(&self) -> usize {
        tag_len(self.auth())
    }

    /// True when `tag` authenticates `message`.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        match self {
            Self::Hmac(k) => k.verify(message, tag),
            Self::Ed25519(k) => Signature::from_slice(tag)
                .map(|s| k.verify_strict(message, &s).is_ok())
                .unwrap_or(false),
        }
    }

    /// Reads the receive side's key file.
    pub fn load(auth: ReplicationAuth, path: &Path) -> Result<Self, KeyError> {
        match auth {
            ReplicationAuth::Ed25519 => zonegate_audit::keys::load_verifying_key(path)
                .map(Self::Ed25519)
                .map_err(|e| KeyError(e.to_string())),
            _ => read_hmac_key(path).map(|k| Self::Hmac(Box::new(HmacKey::new(&k)))),
        }
    }
}

/// Tag length of an algorithm.
pub fn tag_len(auth: ReplicationAuth) -> usize {
    match auth {
        ReplicationAuth::Ed25519 => ED25519_TAG_LEN,
        _ => HMAC_TAG_LEN,
    }
}

/// Reads an HMAC key file: hex digits (at least 64, i.e. 32 bytes), whitespace and `#` lines
/// ignored.
pub fn read_hmac_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError(format!("{}: cannot read the key file: {e}", path.display())))?;
    let digits: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let key = hex::decode(&digits).map_err(|e| {
        KeyError(format!(
            "{}: the key file must hold hex digits: {e}",
            path.display()
        ))
    })?;
    if key.len() < MIN_HMAC_KEY_LEN {
        return Err(KeyError(format!(
            "{}: an HMAC-SHA256 key needs at least {MIN_HMAC_KEY_LEN} bytes ({} hex digits); \
             this one has {}",
            path.display(),
            MIN_HMAC_KEY_LEN * 2,
            key.len()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test cases 1, 2 and 6 (key longer than the block).
    #[test]
    fn rfc4231_vectors() {
        let k = HmacKey::new(&[0x0b; 20]);
        assert_eq!(
            hex::encode(k.tag(b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let k = HmacKey::new(b"Jefe");
        assert_eq!(
            hex::encode(k.tag(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let k = HmacKey::new(&[0xaa; 131]);
        assert_eq!(
            hex::encode(k.tag(b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verify_rejects_a_changed_or_short_tag() {
        let k = HmacKey::new(b"Jefe");
        let mut t = k.tag(b"m");
        assert!(k.verify(b"m", &t));
        assert!(!k.verify(b"m", &t[..31]));
        t[31] ^= 1;
        assert!(!k.verify(b"m", &t));
    }
}
