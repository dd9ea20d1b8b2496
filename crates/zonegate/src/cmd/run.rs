//! `zonegate run -c MODEL`: run the gateway for every conduit of the model with a `gateway:`
//! block, until SIGINT/SIGTERM. SIGHUP, or saving the model file, reloads it.
//!
//! Before anything listens, the model passes the checks of `zonegate check` ([`crate::gate`]):
//! an error finding refuses to start unless its id is named in `--accept-findings` (the accepted
//! findings are recorded in the audit trail's `policy_load` record); warnings are printed. Every
//! reload passes the same gate, and a refused reload keeps the old policy in force.
//!
//! Exit status: 0 after a clean shutdown; 1 when the model has error findings (each printed as
//! `zonegate check` prints it); 2 when the model does not load (each error printed as
//! `file:line:col: key: message`), no conduit has a gateway, an upstream is not supported yet,
//! a listener cannot bind, or the audit log cannot be opened. The gateway itself lives in
//! `zonegate_gateway`.
//!
//! `--check`: load, review and compile the model, check what the start would open (TLS files,
//! the admin token and the admin TLS files), print a summary and exit (0 fine, 1 error
//! findings, 2 anything else) without binding a socket or opening the audit log: for
//! `ExecStartPre=` and before a reload.
//!
//! As a service (packaging/zonegate.service, `Type=notify`): `READY=1` goes to
//! `$NOTIFY_SOCKET` once every listener is up, `WATCHDOG=1` at half of `WatchdogSec=`,
//! `STOPPING=1` at shutdown ([`crate::notify`]). With `admin: {listen: ...}` in the model the
//! admin endpoint (metrics, health, dashboard; `zonegate_admin`) starts before the gateway,
//! not ready until the listeners are up.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zonegate_gateway::{Gateway, GatewayOptions, Metrics, StartError};
use zonegate_policy::Model;

use crate::gate::{self, Accepted};

/// Arguments of `zonegate run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML) to enforce.
    #[arg(short = 'c', long = "config", value_name = "MODEL")]
    pub(crate) model: PathBuf,
    /// Seconds to let clients' in-flight requests finish at shutdown.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub(crate) drain_timeout: f64,
    /// Session threads of the data path (0 = one per CPU but one, at least one): each runs its
    /// own single-threaded runtime, client connections are spread over them in turn, and a
    /// session stays on its thread with the device connections it uses. The accept loops,
    /// reloads and the admin endpoint run on one more thread; the audit writer and the monitor
    /// have their own.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Run the sessions on one work-stealing runtime with --threads workers instead (tokio's
    /// multi-threaded scheduler; the data path of earlier versions, kept for comparison).
    #[arg(long)]
    pub(crate) work_stealing: bool,
    /// Run only this half of the model's one-way replications (`transmit` on the OT side,
    /// `receive` in the DMZ); the gateway is not started. Default: both halves when local.
    #[arg(long, value_enum)]
    pub(crate) side: Option<super::replicate::Side>,
    /// Start even though the model has error findings with these check ids (comma-separated,
    /// e.g. ZG-C017,ZG-C011): a deliberate exception, recorded in the audit log.
    #[arg(
        long,
        value_name = "IDS",
        value_delimiter = ',',
        value_parser = gate::parse_check_id
    )]
    pub(crate) accept_findings: Vec<&'static str>,
    /// Load, check and compile the model, print a summary and exit; binds nothing.
    #[arg(long)]
    pub(crate) check: bool,
}

/// Session threads when `--threads` is not given: one per CPU but one, at least one.
///
/// The core left over is for the gateway's other busy work: the audit writer (a SHA-256-chained
/// record per request), the monitor, and the kernel's loopback and NIC processing that every
/// send triggers. On the project's 2-core machine one session thread against two gave 1.21x and
/// 1.49x of haproxy's req/s at 16 and 64 connections (shared device connections) against 1.05x
/// and 1.25x, with p99 0.37x / 0.76x of haproxy's against 0.63x / 1.09x: a session thread
/// that shares its core with the audit writer is preempted mid-batch, and every session on it
/// waits (README, "One session thread per CPU but one").
fn default_session_threads(cpus: usize) -> usize {
    cpus.saturating_sub(1).max(1)
}

/// Where the audit log of `model` goes: the absolute path of its file, or `None` for stdout.
fn audit_file(model: &zonegate_policy::Model) -> Option<PathBuf> {
    let path = model.audit.as_ref()?.path.as_deref()?;
    let path = model.resolve(path);
    // The gateway's working directory is not the operator's: print and use one absolute path.
    Some(std::path::absolute(&path).unwrap_or(path))
}

/// Loads the model and runs the design gate; `Err(status)` after printing why not.
fn review(path: &Path, accepted: &Accepted) -> Result<Model, u8> {
    let site = match zonegate_toolkit::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "zonegate run: {}: {} load error(s); nothing started",
                path.display(),
                errors.len()
            );
            return Err(2);
        }
    };
    let review = gate::review(&site, accepted);
    review.print("run", &path.display().to_string());
    if review.refuses() {
        eprintln!("zonegate run: nothing started");
        return Err(1);
    }
    Ok((*site).clone())
}

/// The admin token of the model's `admin:` block, read from its file (`Ok(None)`: no token).
fn admin_token(model: &Model) -> Result<Option<String>, String> {
    let Some(file) = model.admin.as_ref().and_then(|a| a.token_file.as_ref()) else {
        return Ok(None);
    };
    zonegate_admin::read_token(&model.resolve(file))
        .map(Some)
        .map_err(|e| format!("admin.token_file: {e}"))
}

/// The admin endpoint's rustls configuration from the model's `admin.tls` block, its files
/// resolved against the model's folder (`Ok(None)`: plain HTTP).
fn admin_tls(model: &Model) -> Result<Option<Arc<zonegate_gateway::mbaps::ServerConfig>>, String> {
    let Some(t) = model.admin.as_ref().and_then(|a| a.tls.as_ref()) else {
        return Ok(None);
    };
    zonegate_admin::tls_config(&t.resolved(|p| model.resolve(p)))
        .map(Some)
        .map_err(|e| format!("admin.{e}"))
}

/// `--check`: everything the start would do short of binding and opening; the exit status.
fn check(path: &Path, model: &Model) -> u8 {
    let mut problems = Vec::new();
    let policy = match zonegate_policy::Policy::compile(model) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("zonegate run --check: {}: does not compile", path.display());
            return 2;
        }
    };
    let gateways: Vec<_> = policy
        .conduits()
        .iter()
        .filter_map(|c| c.gateway.as_ref().map(|g| (c, g)))
        .collect();
    if gateways.is_empty() && model.replications.is_empty() {
        problems.push("no conduit has a gateway block and there is no replication".to_owned());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "model: {} (policy {})",
        path.display(),
        model.policy_hash()
    );
    for (c, g) in &gateways {
        if let Err(u) = g.runnable() {
            problems.push(format!("conduit {}: {} is not supported yet", c.id, u.what));
        }
        for f in g.tls.iter().flat_map(|t| t.files()) {
            if let Err(e) = std::fs::File::open(f) {
                problems.push(format!("conduit {}: TLS file {}: {e}", c.id, f.display()));
            }
        }
        let _ = writeln!(
            out,
            "conduit {}: listen {} -> upstream {}, mode {}, {} rule(s), max_connections {} (wait {:?})",
            c.id,
            g.listen,
            g.upstream,
            g.mode.as_str(),
            c.rules().len(),
            g.max_connections,
            g.max_connections_wait,
        );
    }
    let _ = writeln!(
        out,
        "audit log: {}",
        audit_file(model).map_or_else(|| "stdout".to_owned(), |p| p.display().to_string())
    );
    match &model.admin {
        Some(a) => {
            if let Err(e) = admin_token(model) {
                problems.push(e);
            }
            if let Err(e) = admin_tls(model) {
                problems.push(e);
            }
            let _ = writeln!(
                out,
                "admin: {}://{}/ ({})",
                if a.tls.is_some() { "https" } else { "http" },
                a.listen,
                match (a.token_file.is_some(), a.tls.is_some()) {
                    (true, true) => "mutual TLS and bearer token",
                    (false, true) => "mutual TLS",
                    (true, false) => "bearer token",
                    (false, false) => "loopback, no token",
                }
            );
        }
        None => {
            let _ = writeln!(out, "admin: off (no admin: block)");
        }
    }
    let _ = out.flush();
    for p in &problems {
        eprintln!("zonegate run --check: {}: {p}", path.display());
    }
    if problems.is_empty() {
        let _ = writeln!(std::io::stdout(), "ok: the model would start");
        0
    } else {
        2
    }
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let accepted = Accepted::new(&args.accept_findings);
    let model = match review(&args.model, &accepted) {
        Ok(model) => model,
        Err(status) => return status,
    };
    if args.check {
        return check(&args.model, &model);
    }
    let audit = audit_file(&model);
    // The admin port's credentials: a file that does not load starts nothing.
    let admins = admin_token(&model).and_then(|token| Ok((token, admin_tls(&model)?)));
    let (admin_token, admin_tls) = match admins {
        Ok(both) => both,
        Err(e) => {
            eprintln!(
                "zonegate run: {}: {e}; nothing started",
                args.model.display()
            );
            return 2;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = match (args.threads, args.work_stealing) {
        (0, false) => default_session_threads(cpus),
        (0, true) => cpus,
        (n, _) => n,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // With session threads the main runtime only accepts, reloads and serves the admin port.
    builder.worker_threads(if args.work_stealing { threads } else { 1 });
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zonegate run: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let audit_label = audit.as_ref().map_or_else(
        || "stdout (the model sets no audit.path)".to_owned(),
        |p| p.display().to_string(),
    );
    let options = GatewayOptions {
        drain_timeout: std::time::Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 3600.0)),
        // The path printed below is the path written, whatever the working directory.
        audit_path: audit.map(Some),
        model_gate: Some(gate::model_gate(accepted)),
        metrics: Some(Arc::clone(&metrics)),
        session_threads: if args.work_stealing { 0 } else { threads },
        ..GatewayOptions::default()
    };
    runtime.block_on(async move {
        let replications = match super::replicate::start(&args.model, args.side).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        // Without replications the gateway runs (or says why it cannot) as before.
        if replications.only && !replications.is_empty() {
            super::replicate::wait_for_signal().await;
            replications.stop().await;
            return 0;
        }
        // The admin endpoint first: /healthz answers and /readyz says "not ready" while the
        // gateway starts.
        let admin = match &model.admin {
            Some(a) => {
                match zonegate_admin::Admin::start_with_tls(
                    a.listen,
                    Arc::clone(&metrics),
                    admin_token,
                    admin_tls,
                )
                .await
                {
                    Ok(admin) => Some(admin),
                    Err(e) => {
                        eprintln!(
                            "zonegate run: admin endpoint: cannot listen on {}: {e}",
                            a.listen
                        );
                        return 2;
                    }
                }
            }
            None => None,
        };
        let admin_url = admin.as_ref().map(zonegate_admin::Admin::url);
        let gateway = match Gateway::start_file(&args.model, options).await {
            Ok(g) => g,
            Err(StartError::Model(errors)) => {
                eprintln!("{errors}");
                eprintln!(
                    "zonegate run: {}: {} load error(s); nothing started",
                    args.model.display(),
                    errors.len()
                );
                return 2;
            }
            // The file changed between the review above and the start, and now fails it.
            Err(StartError::Rejected(why)) => {
                eprintln!("zonegate run: {}: {why}", args.model.display());
                eprintln!("zonegate run: nothing started");
                return 1;
            }
            Err(e) => {
                eprintln!("zonegate run: {e}");
                return 2;
            }
        };
        // The addresses are printed once SIGINT/SIGTERM/SIGHUP are handled, so a supervisor
        // that waits for them may signal right away.
        let watchdog = crate::notify::spawn_watchdog();
        let summary = gateway
            .run_until_signal_then(|listeners| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "audit log: {audit_label}");
                for l in listeners {
                    let _ = writeln!(
                        out,
                        "listening on {} (conduit {}, upstream {}, mode {})",
                        l.serial.clone().unwrap_or_else(|| l.addr.to_string()),
                        l.conduit,
                        l.upstream,
                        l.mode
                    );
                }
                if let Some(url) = &admin_url {
                    let _ = writeln!(
                        out,
                        "admin on {url} (dashboard; /metrics, /healthz, /readyz)"
                    );
                }
                let _ = out.flush();
                // systemd: the service is up once every listener is.
                let status = format!(
                    "READY=1\nSTATUS=listening on {} conduit(s)",
                    listeners.len()
                );
                if let Err(e) = crate::notify::notify(&status) {
                    tracing::warn!("systemd notify failed: {e}");
                }
            })
            .await;
        let _ = crate::notify::notify("STOPPING=1");
        if let Some(w) = watchdog {
            w.abort();
        }
        if let Some(a) = admin {
            a.stop();
        }
        replications.stop().await;
        if summary.sessions_cut > 0 {
            eprintln!(
                "zonegate run: {} session(s) were cut at the drain deadline",
                summary.sessions_cut
            );
        }
        0
    })
}

#[cfg(test)]
mod tests {
    use super::default_session_threads;

    #[test]
    fn the_default_leaves_one_core_for_the_audit_writer_and_monitor_but_never_runs_no_session_thread(
    ) {
        assert_eq!(default_session_threads(0), 1);
        assert_eq!(default_session_threads(1), 1);
        assert_eq!(default_session_threads(2), 1);
        assert_eq!(default_session_threads(4), 3);
        assert_eq!(default_session_threads(16), 15);
    }
}
