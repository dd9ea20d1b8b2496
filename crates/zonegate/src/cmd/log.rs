//! `zonegate log verify|show|keygen`: the auditor's side of the tamper-evident audit log.
//!
//! Thin wrappers over `zonegate_audit::{verify, show, keys}`. Exit status: 0 fine, 1 the log
//! failed verification, 2 usage or input error (unreadable file, bad key, bad filter).

use std::path::PathBuf;

use zonegate_audit::show::{self, Filter, OffsetDateTime, SrcFilter};
use zonegate_audit::{keys, verify, Anchor, Decision, Kind, VerifyOptions};

/// Subcommands of `zonegate log`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Verify a log's hash chain (and checkpoint signatures with --key).
    ///
    /// Give the active file (its rotated segments FILE.000001, ... are added) or any set of
    /// files: they are put in chain order by their first seq. Exit 0 with a summary, 1 naming the first bad record (file, line, seq), 2 when
    /// a file or the key cannot be read. A torn last line (crash during a write) is a warning.
    Verify {
        /// Log files (the active file and its rotated segments), any order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Public key file (from `zonegate log keygen`): verify checkpoint signatures and
        /// require the log to end with a signed checkpoint.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// With --key: accept a log that does not end with a checkpoint (e.g. after a crash).
        #[arg(long)]
        allow_unsigned_tail: bool,
        /// Accept a first record that is not the start of the chain (check a later part alone).
        #[arg(long)]
        allow_partial: bool,
        /// A chain head noted from an earlier run (`SEQ:HASH`, printed as "chain head"): the
        /// record must still be there with that hash. Detects a cut tail without a key.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Vec<Anchor>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show records, filtered, one aligned line each (or JSON lines with --json).
    ///
    /// Does not check the chain: use `zonegate log verify` for that.
    Show {
        /// Log files, any order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Records at or after this time (RFC 3339, or YYYY-MM-DD[THH:MM[:SS]] in UTC).
        #[arg(long, value_parser = parse_time_arg)]
        since: Option<OffsetDateTime>,
        /// Records before this time.
        #[arg(long, value_parser = parse_time_arg)]
        until: Option<OffsetDateTime>,
        /// Conduit id.
        #[arg(long)]
        conduit: Option<String>,
        /// Source: IP (any port), IP:PORT, or a network (10.1.0.0/16, fd00::/64).
        #[arg(long, value_parser = SrcFilter::parse)]
        src: Option<SrcFilter>,
        /// Function code: number or name (16, write_multiple_registers).
        #[arg(long, value_parser = parse_fc)]
        fc: Option<String>,
        /// allow | deny | would_deny.
        #[arg(long, value_parser = parse_decision)]
        decision: Option<Decision>,
        /// Record kind: request, outcome, genesis, start, stop, policy_load, checkpoint, ...
        #[arg(long, value_parser = parse_kind)]
        kind: Option<Kind>,
        /// Sequence numbers: N, A..B (inclusive) or A.. (e.g. around a verify finding).
        #[arg(long, value_name = "RANGE", value_parser = show::parse_seq_range)]
        seq: Option<(u64, u64)>,
        /// Print the matching records as JSON lines, exactly as stored.
        #[arg(long)]
        json: bool,
    },
    /// Make an Ed25519 key pair for signed checkpoints.
    ///
    /// Writes PREFIX.key (secret seed, 64 hex digits, mode 0600; give it to the gateway as
    /// audit.signing_key) and PREFIX.pub (public key, 64 hex digits; give it to auditors for
    /// `zonegate log verify --key`). Refuses to overwrite an existing key.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

/// clap value parser for `--since`/`--until`.
fn parse_time_arg(s: &str) -> Result<OffsetDateTime, String> {
    show::parse_time(s)
}

const DECISIONS: [&str; 3] = ["allow", "deny", "would_deny"];

fn parse_decision(s: &str) -> Result<Decision, String> {
    Decision::from_name(s).ok_or_else(|| unknown_name("decision", s, DECISIONS.iter().copied()))
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::from_name(s).ok_or_else(|| unknown_name("kind", s, Kind::ALL.iter().map(|k| k.as_str())))
}

/// `--fc`: a number 0-255 or a public function's name, so that a typo is an error (exit 2)
/// rather than a filter that silently matches nothing. Kept as given: records name the function.
fn parse_fc(s: &str) -> Result<String, String> {
    if let Ok(n) = s.parse::<u64>() {
        return if n <= 255 {
            Ok(n.to_string())
        } else {
            Err(format!("{s:?}: a function code is 0-255"))
        };
    }
    if zonegate_policy::function_code(s).is_some() {
        return Ok(s.to_owned());
    }
    let names = (0..=255u8).filter_map(zonegate_policy::function_name);
    Err(unknown_name("function", s, names))
}

/// "unknown kind "x" (did you mean y?); expected one of ...".
fn unknown_name<'a>(what: &str, s: &str, names: impl Iterator<Item = &'a str> + Clone) -> String {
    let best = names
        .clone()
        .map(|n| (edit_distance(s, n), n))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, n)| *d <= (n.len() / 3).max(2));
    let all: Vec<&str> = names.collect();
    match best {
        Some((_, n)) => format!(
            "unknown {what} {s:?} (did you mean {n}?); expected one of: {}",
            all.join(", ")
        ),
        None => format!("unknown {what} {s:?}; expected one of: {}", all.join(", ")),
    }
}

/// Levenshtein distance (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(command: Command) -> u8 {
    match command {
        Command::Verify {
            files,
            key,
            allow_unsigned_tail,
            allow_partial,
            anchor,
            json,
        } => {
            let mut opts = VerifyOptions::default();
            opts.require_final_checkpoint = !allow_unsigned_tail;
            opts.allow_partial = allow_partial;
            opts.anchors = anchor;
            run_verify(&files, key, opts, json)
        }
        Command::Show {
            files,
            since,
            until,
            conduit,
            src,
            fc,
            decision,
            kind,
            seq,
            json,
        } => {
            let mut filter = Filter::default();
            filter.seq = seq;
            filter.since = since;
            filter.until = until;
            filter.conduit = conduit;
            filter.src = src;
            filter.fc = fc;
            filter.decision = decision;
            filter.kind = kind;
            run_show(&files, &filter, json)
        }
        Command::Keygen { out } => {
            match keys::generate().and_then(|k| keys::write_key_pair(&out, &k)) {
                Ok((k, p)) => {
                    println!("secret key: {} (mode 0600; audit.signing_key)", k.display());
                    println!("public key: {} (zonegate log verify --key)", p.display());
                    0
                }
                Err(e) => {
                    eprintln!("zonegate log keygen: {e}");
                    2
                }
            }
        }
    }
}

/// The given files plus the rotated segments (`FILE.000001`, ...) of each, noted on stderr.
fn expand(files: &[PathBuf]) -> Vec<PathBuf> {
    let (all, added) = zonegate_audit::storage::with_segments(files);
    if let (Some(first), Some(last)) = (added.first(), added.last()) {
        let range = if added.len() == 1 {
            first.display().to_string()
        } else {
            format!("{} .. {}", first.display(), last.display())
        };
        eprintln!(
            "note: including {} rotated segment(s): {range}",
            added.len()
        );
    }
    all
}

fn run_verify(files: &[PathBuf], key: Option<PathBuf>, mut opts: VerifyOptions, json: bool) -> u8 {
    if let Some(k) = key {
        match keys::load_verifying_key(&k) {
            Ok(k) => opts.key = Some(k),
            Err(e) => {
                eprintln!("zonegate log verify: {e}");
                return 2;
            }
        }
    }
    let files = expand(files);
    let report = match verify(&files, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zonegate log verify: {e}");
            return 2;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("zonegate log verify: {e}");
                return 2;
            }
        }
    } else {
        println!("{report}");
    }
    u8::from(!report.is_ok())
}

fn run_show(files: &[PathBuf], filter: &Filter, json: bool) -> u8 {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut broken_pipe = false;
    let files = expand(files);
    let result = show::for_each(&files, filter, |e, line| {
        if broken_pipe {
            return;
        }
        let r = if json {
            writeln!(out, "{line}")
        } else {
            writeln!(out, "{}", show::format_line(e))
        };
        broken_pipe = r.is_err();
    });
    let _ = out.flush();
    match result {
        Ok(c) => {
            if c.unreadable > 0 {
                let at = c
                    .first_unreadable
                    .as_ref()
                    .map(|(f, l)| format!(", the first at {}:{l}", f.display()))
                    .unwrap_or_default();
                eprintln!(
                    "warning: {} line(s) are not audit records (not UTF-8 or not JSON{at}; run \
                     `zonegate log verify`)",
                    c.unreadable
                );
            }
            0
        }
        Err(e) => {
            eprintln!("zonegate log show: {e}");
            2
        }
    }
}
