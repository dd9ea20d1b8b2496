//! `zonegate cert`: a lab PKI for Modbus/TCP Security, made with rcgen.
//!
//! ```text
//! zonegate cert ca     --dir pki                                  # ca.pem, ca.key
//! zonegate cert server --dir pki --name gateway --san localhost --san 127.0.0.1
//! zonegate cert client --dir pki --name op1 --role Operator       # op1.pem, op1.key
//! ```
//!
//! Keys are ECDSA P-256 (what spec v36 R-61/R-62 names), written mode 0600; no file is
//! overwritten. A client certificate carries its role as the spec says (R-21, R-22): extension
//! 1.3.6.1.4.1.50316.802.1 holding a DER UTF8String. This is a lab CA for trying the gateway,
//! not a production PKI: its key sits in a file next to the certificates.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// The role extension's OID arcs (Modbus.org PEN 50316).
const ROLE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 50316, 802, 1];
/// The common name of the lab CA (`server` and `client` rebuild the issuer from it).
const CA_NAME: &str = "zonegate lab CA";

/// `zonegate cert` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a lab CA: DIR/ca.pem and DIR/ca.key.
    Ca {
        /// Folder for the files (created if missing).
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Make a server certificate signed by the lab CA: DIR/NAME.pem and DIR/NAME.key.
    Server {
        /// Folder of the lab CA, and of the new files.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// File name and common name.
        #[arg(long, default_value = "gateway")]
        name: String,
        /// Subject alternative names (DNS names or IP addresses); repeat the flag.
        #[arg(long = "san", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        sans: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Make a client certificate with a Modbus/TCP Security role: DIR/NAME.pem, DIR/NAME.key.
    Client {
        /// Folder of the lab CA, and of the new files.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// File name and common name.
        #[arg(long)]
        name: String,
        /// The role (extension 1.3.6.1.4.1.50316.802.1); without it, the null role.
        #[arg(long)]
        role: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(command: Command) -> u8 {
    match make(command) {
        Ok(files) => {
            let mut out = std::io::stdout().lock();
            for f in files {
                let _ = writeln!(out, "wrote {}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("zonegate cert: {e}");
            2
        }
    }
}

fn make(command: Command) -> Result<Vec<PathBuf>, String> {
    match command {
        Command::Ca { dir, days } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
            let cert = ca_params(days)?
                .self_signed(&key)
                .map_err(|e| format!("cannot sign the CA: {e}"))?;
            write_pair(&dir, "ca", &cert.pem(), &key.serialize_pem())
        }
        Command::Server {
            dir,
            name,
            sans,
            days,
        } => {
            let mut p = CertificateParams::new(sans)
                .map_err(|e| format!("bad subject alternative name: {e}"))?;
            leaf(&mut p, &name, days, ExtendedKeyUsagePurpose::ServerAuth)?;
            sign(&dir, &name, p)
        }
        Command::Client {
            dir,
            name,
            role,
            days,
        } => {
            let mut p = CertificateParams::new(Vec::<String>::new())
                .map_err(|e| format!("cannot make the certificate: {e}"))?;
            leaf(&mut p, &name, days, ExtendedKeyUsagePurpose::ClientAuth)?;
            if let Some(role) = role {
                p.custom_extensions.push(CustomExtension::from_oid_content(
                    ROLE_OID,
                    role_der(&role)?,
                ));
            }
            sign(&dir, &name, p)
        }
    }
}

/// The lab PKI of `zonegate demo` in `dir` (a new folder): a CA, the gateway's server
/// certificate (localhost, 127.0.0.1, ::1) and two clients, `operator` (role `Operator`) and
/// `engineer` (role `Engineer`).
pub(crate) fn lab_pki(dir: &Path) -> Result<(), String> {
    let dir = dir.to_path_buf();
    make(Command::Ca {
        dir: dir.clone(),
        days: 30,
    })?;
    make(Command::Server {
        dir: dir.clone(),
        name: "gateway".to_owned(),
        sans: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        days: 30,
    })?;
    for (name, role) in [("operator", "Operator"), ("engineer", "Engineer")] {
        make(Command::Client {
            dir: dir.clone(),
            name: name.to_owned(),
            role: Some(role.to_owned()),
            days: 30,
        })?;
    }
    Ok(())
}

/// The DER UTF8String of a role, checked as the gateway will read it.
fn role_der(role: &str) -> Result<Vec<u8>, String> {
    let mut der = vec![0x0C];
    let n = role.len();
    match n {
        0 => return Err("the role is empty".to_owned()),
        1..=127 => der.push(u8::try_from(n).unwrap_or(0)),
        128..=255 => der.extend_from_slice(&[0x81, u8::try_from(n).unwrap_or(0)]),
        _ => return Err(format!("the role is {n} bytes, too long")),
    }
    der.extend_from_slice(role.as_bytes());
    // What the gateway would make of it: refuse to mint a certificate it reads as no role.
    zonegate_policy::role::role_value(&der).map_err(|why| format!("role `{role}`: {why}"))?;
    Ok(der)
}

fn validity(p: &mut CertificateParams, days: u32) -> Result<(), String> {
    if days == 0 {
        return Err("--days must be at least 1".to_owned());
    }
    let now = time_now();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
    Ok(())
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ca_params(days: u32) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| format!("cannot make the CA: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, days)?;
    Ok(p)
}

fn leaf(
    p: &mut CertificateParams,
    name: &str,
    days: u32,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("`{name}` is not a usable file name"));
    }
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![usage];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(p, days)
}

/// Signs `params` with the lab CA in `dir` and writes DIR/NAME.pem and DIR/NAME.key.
fn sign(dir: &Path, name: &str, params: CertificateParams) -> Result<Vec<PathBuf>, String> {
    let ca_key_path = dir.join("ca.key");
    let ca_pem = std::fs::read_to_string(&ca_key_path).map_err(|e| {
        format!(
            "cannot read {} ({e}); make the lab CA first: zonegate cert ca --dir {}",
            ca_key_path.display(),
            dir.display()
        )
    })?;
    let ca_key = KeyPair::from_pem(&ca_pem)
        .map_err(|e| format!("{}: not a private key: {e}", ca_key_path.display()))?;
    // The issuer as `cert ca` made it: same name, same key, so what it signs chains to ca.pem.
    let issuer = ca_params(1)?
        .self_signed(&ca_key)
        .map_err(|e| format!("cannot load the CA: {e}"))?;
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| format!("cannot sign: {e}"))?;
    write_pair(dir, name, &cert.pem(), &key.serialize_pem())
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Result<Vec<PathBuf>, String> {
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    for p in [&c, &k] {
        if p.exists() {
            return Err(format!("{} exists; not overwriting it", p.display()));
        }
    }
    write_new(&k, key, 0o600)?;
    write_new(&c, cert, 0o644)?;
    Ok(vec![c, k])
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cert_makes_a_ca_a_server_and_a_client_with_a_role_and_private_keys() {
        let dir = std::env::temp_dir().join(format!("zonegate-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        make(Command::Ca {
            dir: dir.clone(),
            days: 10,
        })
        .unwrap();
        make(Command::Server {
            dir: dir.clone(),
            name: "gateway".into(),
            sans: vec!["localhost".into(), "127.0.0.1".into()],
            days: 10,
        })
        .unwrap();
        make(Command::Client {
            dir: dir.clone(),
            name: "op1".into(),
            role: Some("Operator".into()),
            days: 10,
        })
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        for k in ["ca.key", "gateway.key", "op1.key"] {
            let mode = std::fs::metadata(dir.join(k)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{k}");
        }
        let pem = std::fs::read_to_string(dir.join("op1.pem")).unwrap();
        let der = rustls_pem(&pem);
        let leaf = zonegate_policy::role::read_leaf(&der);
        assert_eq!(leaf.role, Ok("Operator".to_owned()));
        assert_eq!(leaf.subject, "CN=op1");
        // Never overwrites.
        assert!(make(Command::Ca {
            dir: dir.clone(),
            days: 1
        })
        .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cert_refuses_a_role_the_gateway_would_read_as_none() {
        assert!(role_der("").is_err());
        assert!(role_der(&"a".repeat(200)).is_err());
        assert!(role_der("Op\nAdmin").is_err());
        assert_eq!(role_der("Operator").unwrap()[..2], [0x0C, 8]);
    }

    fn rustls_pem(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&body)
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = T.iter().position(|t| *t == c).unwrap() as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
