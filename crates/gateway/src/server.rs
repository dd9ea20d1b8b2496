//! The running gateway: one listener per conduit with a `gateway:` block, reload, shutdown.
//!
//! ```text
//!  Gateway::start(model)
//!    ├─ audit writer (zonegate-audit, its own thread)        ◀── every session appends events
//!    ├─ conduit C1: TcpListener ── accept loop ── Session task per client (conn.rs)
//!    ├─ conduit C2: ...
//!    └─ run_until_signal(): SIGINT/SIGTERM → shutdown; SIGHUP or a changed model file → reload
//! ```
//!
//! Reload: the model is loaded and compiled in full; if anything is wrong, every error is logged,
//! a `policy_rejected` record is written and the old policy stays in force. Otherwise each
//! listener's [`ConduitState`] is swapped: new requests see the new rules, no connection drops.
//! A changed `listen` address or a new gateway conduit needs a restart (logged as a warning);
//! a changed upstream applies to the next device connection a session opens.
//!
//! Accepting (limits, backpressure at `max_connections`) is in [`accept`].
//!
//! Shutdown: stop accepting, let every session answer what it has in flight (bounded by the drain
//! timeout), then write the audit `stop` record and flush the log.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};
use zonegate_audit::{AuditError, AuditLog, Event, Kind, Storage};
use zonegate_policy::{LoadErrors, Model, Policy};

use crate::metrics::{ConduitInfo, Metrics};
use crate::record::Recorder;
use crate::settings::{audit_config, conduit_state, gateway_conduits, limiter_for, Unsupported};
use crate::state::{ConduitShared, ConduitState, Tracker, UpstreamTarget};
use crate::watch::{ConduitWatch, MonitorStats, Watch};

mod accept;

use crate::workers::SessionThreads;
use accept::accept_loop;

/// Makes the byte sink of the audit log (tests inject faults with it).
pub type AuditStorageFactory = Arc<dyn Fn() -> Box<dyn Storage> + Send + Sync>;

/// The design review a model must pass before it is enforced, at start and at every reload
/// (`zonegate run` runs the toolkit's checks). `Ok(notes)`: the model may run; each note (a
/// warning, a finding accepted by the operator) goes into the `policy_load` / `policy_reload`
/// record. `Err(why)`: the model is refused (the old policy stays in force on a reload).
pub type ModelGate = Arc<dyn Fn(&Model) -> Result<Vec<String>, String> + Send + Sync>;
/// Called with the model file's path right after a reload has read it (tests use it to save
/// the file in the window between that read and the watcher's next look).
pub type ReloadReadHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// How the gateway is started.
#[derive(Clone)]
pub struct GatewayOptions {
    /// The model file, watched for changes and re-read on SIGHUP; `None` for a model given as
    /// text (the demo).
    pub model_path: Option<PathBuf>,
    /// How long sessions may take to answer their in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// How often the model file's modification time and size are checked.
    pub watch_interval: Duration,
    /// Replace the model's `audit.path` (e.g. the demo's choice); `Some(None)` = stdout.
    pub audit_path: Option<Option<PathBuf>>,
    /// Write the audit log through this storage instead of the file (fault injection in tests;
    /// the model's `audit.path` still names the chain to continue).
    pub audit_storage: Option<AuditStorageFactory>,
    /// The design review every model passes before it is enforced (`None`: none).
    pub model_gate: Option<ModelGate>,
    /// Connect to each conduit's device once at start and say (stderr, audit log) when it is
    /// unreachable; the gateway starts either way (default true). Off for a device that takes
    /// a single connection and is slow to free it, and for test devices that accept only once.
    pub probe_upstreams: bool,
    /// Test hook, see [`ReloadReadHook`]; `None` in production.
    #[doc(hidden)]
    pub reload_read_hook: Option<ReloadReadHook>,
    /// The registry to count into (made before the start so that the admin endpoint can
    /// serve `/healthz` and a not-ready `/readyz` while the gateway starts); `None`: a new one.
    pub metrics: Option<Arc<Metrics>>,
    /// Test hook: the live monitor's thread holds this lock while it processes a transaction
    /// (a test holding it fills the monitor's queue); `None` in production.
    #[doc(hidden)]
    pub monitor_hold: Option<Arc<Mutex<()>>>,
    /// Run the sessions on this many threads of their own, each a single-threaded runtime,
    /// client connections spread over them in turn (workers.rs); 0 (the default): on the
    /// runtime the gateway is started on.
    pub session_threads: usize,
}

impl fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("model_path", &self.model_path)
            .field("drain_timeout", &self.drain_timeout)
            .field("watch_interval", &self.watch_interval)
            .field("audit_path", &self.audit_path)
            .field("audit_storage", &self.audit_storage.is_some())
            .field("model_gate", &self.model_gate.is_some())
            .field("probe_upstreams", &self.probe_upstreams)
            .field("reload_read_hook", &self.reload_read_hook.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("monitor_hold", &self.monitor_hold.is_some())
            .field("session_threads", &self.session_threads)
            .finish()
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            drain_timeout: Duration::from_secs(5),
            watch_interval: Duration::from_secs(1),
            audit_path: None,
            audit_storage: None,
            model_gate: None,
            probe_upstreams: true,
            reload_read_hook: None,
            metrics: None,
            monitor_hold: None,
            session_threads: 0,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The model has errors (each with file, line, column and key).
    Model(LoadErrors),
    /// The model file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No conduit of the model has a `gateway:` block.
    NoGateway,
    /// A conduit asks for something this version cannot do yet (TLS, RTU upstreams).
    Unsupported {
        /// The conduit id.
        conduit: String,
        /// What is not supported.
        what: String,
    },
    /// A listener could not bind its address.
    Bind {
        /// The conduit id.
        conduit: String,
        /// The `listen` address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The audit log could not be opened.
    Audit(AuditError),
    /// The model failed [`GatewayOptions::model_gate`] (the design review).
    Rejected(String),
    /// A TLS file of a conduit (certificate, key, CA bundle, CRL) cannot be used.
    Tls {
        /// The conduit id.
        conduit: String,
        /// The file and the problem.
        what: String,
    },
    /// The session threads ([`GatewayOptions::session_threads`]) could not be started.
    SessionThreads(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Model(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::NoGateway => f.write_str(
                "no conduit of the model has a `gateway:` block, so there is nothing to enforce \
                 (add `gateway: {listen: ..., upstream: tcp://...}` to a conduit)",
            ),
            Self::Unsupported { conduit, what } => {
                write!(f, "conduit {conduit}: {what} is not supported yet")
            }
            Self::Bind {
                conduit,
                addr,
                source,
            } => write!(f, "conduit {conduit}: cannot listen on {addr}: {source}"),
            Self::Audit(e) => write!(f, "cannot open the audit log: {e}"),
            Self::SessionThreads(e) => write!(f, "cannot start the session threads: {e}"),
            Self::Rejected(why) => f.write_str(why),
            Self::Tls { conduit, what } => write!(f, "conduit {conduit}: {what}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Where a conduit's clients come from: a TCP socket, or a serial line (bus slave).
enum Listener {
    Tcp(TcpListener),
    Serial(zonegate_policy::SerialLine),
}

/// A listener the gateway bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    /// The conduit id.
    pub conduit: String,
    /// The address actually bound (the port is filled in when the model says port 0); for a
    /// serial listener the line's source identity (`zonegate_policy::line_source`), port 0.
    pub addr: SocketAddr,
    /// A serial listener: `rtu:///dev/ttyY?...` (then `addr` is no socket).
    pub serial: Option<String>,
    /// The upstream device (`host:port`).
    pub upstream: String,
    /// `enforce` or `monitor`.
    pub mode: &'static str,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The new policy is in force.
    Applied {
        /// Hex SHA-256 of the new model text.
        policy_hash: String,
        /// Warnings (changes that need a restart).
        warnings: Vec<String>,
    },
    /// The model file did not change (same hash); nothing was done.
    Unchanged,
}

/// Why a reload was rejected (the old policy stays in force).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// There is no model file to re-read (the model was given as text).
    NoFile,
    /// The model file could not be read.
    Read(std::io::Error),
    /// The new model has errors.
    Model(LoadErrors),
    /// The new model asks for something unsupported.
    Unsupported(String),
    /// The new model failed [`GatewayOptions::model_gate`] (the design review).
    Rejected(String),
    /// A TLS file cannot be used (the TLS settings in force stay): the file and the problem.
    Tls(String),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFile => f.write_str("the gateway was started without a model file"),
            Self::Read(e) => write!(f, "cannot read the model file: {e}"),
            Self::Model(errors) => {
                write!(f, "{} error(s) in the new model", errors.len())?;
                for e in errors.iter() {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
            Self::Unsupported(what) => f.write_str(what),
            Self::Rejected(why) => write!(f, "the new model fails the design checks: {why}"),
            Self::Tls(what) => write!(f, "TLS settings kept: {what}"),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSummary {
    /// Sessions still open when the drain deadline passed (closed anyway).
    pub sessions_cut: usize,
}

struct Current {
    policy_hash: String,
    /// Hash of the TLS files (certificates, keys, CA bundles, CRLs) the states in force were
    /// built from: a reload with the same model text still applies when they changed.
    tls_hash: String,
}

struct Inner {
    conduits: Vec<Arc<ConduitShared>>,
    listeners: Vec<BoundListener>,
    shutdown_tx: watch::Sender<bool>,
    recorder: Recorder,
    tracker: Arc<Tracker>,
    options: GatewayOptions,
    current: Mutex<Current>,
    /// Asks `run_until_signal` to reload from the model file, as SIGHUP does.
    reload_now: Arc<Notify>,
    /// What `/metrics` and the dashboard show (metrics.rs).
    metrics: Arc<Metrics>,
    /// The live monitor (watch.rs).
    watch: Arc<Watch>,
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    inner: Arc<Inner>,
    accept_tasks: Vec<JoinHandle<()>>,
    /// The start-up reachability probes of the devices (aborted at shutdown if still running,
    /// so that no record follows the `stop` record).
    probe_tasks: Vec<JoinHandle<()>>,
}

/// Loads and compiles a model given as text; `file` is the model file it was read from, if
/// any, against whose folder its relative paths resolve (never the current directory).
fn compile(text: &str, name: &str, file: Option<&Path>) -> Result<(Model, Policy), LoadErrors> {
    let model = match file {
        Some(path) => zonegate_policy::load_file_text(text, path)?,
        None => zonegate_policy::load_str(text, name)?,
    };
    let policy = Policy::compile(&model)?;
    Ok((model, policy))
}

/// Hex SHA-256 of the model text (the `policy_hash` of audit records).
fn policy_hash(text: &str) -> String {
    zonegate_audit::sha256_hex(text.as_bytes())
}

impl Gateway {
    /// Starts the gateway for the model file at `path` (watched and reloadable).
    pub async fn start_file(path: &Path, mut options: GatewayOptions) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        options.model_path = Some(path.to_path_buf());
        Self::start_text(&text, &path.display().to_string(), options).await
    }

    /// Starts the gateway for a model given as text (`name` is used in error messages).
    pub async fn start_text(
        text: &str,
        name: &str,
        options: GatewayOptions,
    ) -> Result<Self, StartError> {
        let (model, policy) =
            compile(text, name, options.model_path.as_deref()).map_err(StartError::Model)?;
        let notes = match &options.model_gate {
            Some(gate) => gate(&model).map_err(StartError::Rejected)?,
            None => Vec::new(),
        };
        let policy = Arc::new(policy);
        let hash = policy_hash(text);
        let gateways = gateway_conduits(&policy)
            .map_err(|Unsupported(conduit, what)| StartError::Unsupported { conduit, what })?;
        if gateways.is_empty() {
            return Err(StartError::NoGateway);
        }

        // Bind every listener before anything else happens, so a bad address fails fast.
        let mut bound = Vec::with_capacity(gateways.len());
        for g in &gateways {
            if let Some(line) = &g.serial {
                // A serial listener (bus slave): no socket; its line opens in serve_line.
                bound.push((
                    g.index,
                    g.id.clone(),
                    Listener::Serial(line.clone()),
                    g.listen,
                ));
                continue;
            }
            let listener =
                TcpListener::bind(g.listen)
                    .await
                    .map_err(|source| StartError::Bind {
                        conduit: g.id.clone(),
                        addr: g.listen,
                        source,
                    })?;
            let addr = listener.local_addr().unwrap_or(g.listen);
            bound.push((g.index, g.id.clone(), Listener::Tcp(listener), addr));
        }

        let (audit_cfg, sync, on_failure) = audit_config(&model, &options, &hash);
        let handle = match &options.audit_storage {
            Some(make) => AuditLog::start_with_storage(audit_cfg, make()),
            None => AuditLog::start(audit_cfg),
        }
        .map_err(StartError::Audit)?;
        let recorder = Recorder::new(handle, sync, on_failure);
        let mut message = format!("loaded {name}");
        for n in &notes {
            message.push_str("; ");
            message.push_str(n);
        }
        drop(recorder.handle().policy_loaded(&hash, &message));

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let tracker = Arc::new(Tracker::default());
        let metrics = options.metrics.clone().unwrap_or_default();
        metrics.set_audit(recorder.handle().clone());
        let watch = Arc::new(Watch::new(options.monitor_hold.clone()));
        let sessions = match options.session_threads {
            0 => None,
            n => Some(Arc::new(
                SessionThreads::start(n).map_err(StartError::SessionThreads)?,
            )),
        };
        let mut conduits = Vec::new();
        let mut listeners = Vec::new();
        let mut sockets = Vec::new();
        for (index, conduit_id, listener, addr) in bound {
            let state =
                conduit_state(&policy, Some(index), None).map_err(|what| StartError::Tls {
                    conduit: conduit_id.clone(),
                    what,
                })?;
            listeners.push(BoundListener {
                conduit: conduit_id.clone(),
                addr,
                serial: match &listener {
                    Listener::Serial(line) => Some(line.url()),
                    Listener::Tcp(_) => None,
                },
                upstream: state.settings.upstream.label.to_string(),
                mode: state.settings.mode.as_str(),
            });
            info!(
                conduit = %conduit_id,
                "listening on {addr}, upstream {}, mode {}",
                state.settings.upstream.label,
                state.settings.mode.as_str()
            );
            let shared = Arc::new(ConduitShared {
                conduit: Arc::from(conduit_id.as_str()),
                state: ArcSwap::from_pointee(state),
                recorder: recorder.clone(),
                shutdown: shutdown_rx.clone(),
                drain_timeout: options.drain_timeout,
                tracker: Arc::clone(&tracker),
                pool: Arc::default(),
                admitted: Default::default(),
                metrics: Arc::clone(&metrics),
                watch: ConduitWatch::new(Arc::clone(&watch)),
                sessions: sessions.clone(),
            });
            let _ = shared.pool.metrics.set(Arc::clone(&metrics));
            conduits.push(Arc::clone(&shared));
            sockets.push((listener, shared));
        }

        watch.configure(&model, &conduits, &recorder);
        let probe_tasks = if options.probe_upstreams {
            conduits
                .iter()
                .map(|shared| tokio::spawn(probe_upstream(Arc::clone(shared))))
                .collect()
        } else {
            Vec::new()
        };
        let accept_tasks = sockets
            .into_iter()
            .map(|(listener, shared)| match listener {
                Listener::Tcp(l) => tokio::spawn(accept_loop(l, shared)),
                Listener::Serial(line) => {
                    tokio::spawn(crate::serial_listen::serve_line(line, shared))
                }
            })
            .collect();
        metrics.set_policy(&hash, conduit_infos(&model, &conduits, &listeners));
        metrics.set_listeners_up(true);
        let inner = Arc::new(Inner {
            conduits,
            listeners,
            shutdown_tx,
            recorder,
            tracker,
            options,
            current: Mutex::new(Current {
                policy_hash: hash,
                tls_hash: tls_files_hash(&policy) + &watch.files_hash(),
            }),
            reload_now: Arc::new(Notify::new()),
            metrics,
            watch,
        });
        Ok(Self {
            inner,
            accept_tasks,
            probe_tasks,
        })
    }

    /// The listeners, in model order.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.inner.listeners
    }

    /// The live monitor's counters (transactions queued, dropped, processed; alerts).
    pub fn monitor_stats(&self) -> MonitorStats {
        self.inner.watch.stats()
    }

    /// Live client sessions across all listeners.
    pub fn sessions(&self) -> usize {
        self.inner.tracker.active()
    }

    /// The gateway's metrics and live view (served by the admin endpoint, `zonegate-admin`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.inner.metrics)
    }

    /// Re-reads the model file and applies it (see the module docs). On error the old policy
    /// stays in force, the errors are logged and a `policy_rejected` record is written.
    pub fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        self.reload_from_file().1
    }

    /// [`Gateway::reload`], also giving the hash of the text it read (`None` when it read
    /// nothing): what the watcher must compare the file with next, since a save made after
    /// this read has not been applied.
    fn reload_from_file(&self) -> (Option<String>, Result<ReloadOutcome, ReloadError>) {
        let Some(path) = self.inner.options.model_path.clone() else {
            return (None, Err(ReloadError::NoFile));
        };
        let read = std::fs::read_to_string(&path);
        if let Some(hook) = &self.inner.options.reload_read_hook {
            hook(&path);
        }
        let (read_hash, result) = match read {
            Ok(text) => (
                Some(policy_hash(&text)),
                self.apply_text(&text, &path.display().to_string(), false),
            ),
            Err(e) => (None, Err(ReloadError::Read(e))),
        };
        self.report_reload(&result);
        (read_hash, result)
    }

    /// A handle that makes a running [`Gateway::run_until_signal`] reload the model file, as
    /// SIGHUP does.
    pub fn reload_trigger(&self) -> ReloadTrigger {
        ReloadTrigger {
            notify: Arc::clone(&self.inner.reload_now),
        }
    }

    /// Applies a model given as text, as a reload would (tests, the demo).
    pub fn reload_text(&self, text: &str, name: &str) -> Result<ReloadOutcome, ReloadError> {
        let result = self.apply_text(text, name, true);
        self.report_reload(&result);
        result
    }

    fn report_reload(&self, result: &Result<ReloadOutcome, ReloadError>) {
        if !matches!(result, Ok(ReloadOutcome::Unchanged)) {
            self.inner.metrics.reloaded(result.is_ok());
        }
        match result {
            Ok(ReloadOutcome::Applied {
                policy_hash,
                warnings,
            }) => {
                info!(
                    "policy reloaded ({})",
                    &policy_hash[..policy_hash.len().min(12)]
                );
                for w in warnings {
                    warn!("{w}");
                }
                let message = if warnings.is_empty() {
                    "reloaded".to_owned()
                } else {
                    format!("reloaded; {}", warnings.join("; "))
                };
                drop(
                    self.inner
                        .recorder
                        .handle()
                        .policy_reloaded(policy_hash, &message),
                );
            }
            Ok(ReloadOutcome::Unchanged) => info!("model file unchanged; nothing to reload"),
            Err(e) => {
                error!("new policy REJECTED, the old policy stays in force: {e}");
                drop(self.inner.recorder.handle().policy_rejected(&e.to_string()));
            }
        }
    }

    /// Hash of the TLS files the policy in force names, as they are on disk now.
    fn tls_hash_now(&self) -> String {
        let policy = self
            .inner
            .conduits
            .first()
            .map(|c| c.state.load().policy.clone());
        policy.map(|p| tls_files_hash(&p)).unwrap_or_default() + &self.inner.watch.files_hash()
    }

    /// Hash of the model text the policy in force was compiled from.
    fn current_hash(&self) -> String {
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .policy_hash
            .clone()
    }

    fn apply_text(
        &self,
        text: &str,
        name: &str,
        force: bool,
    ) -> Result<ReloadOutcome, ReloadError> {
        let hash = policy_hash(text);
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && current.policy_hash == hash && current.tls_hash == self.tls_hash_now() {
            return Ok(ReloadOutcome::Unchanged);
        }
        let (model, policy) = compile(text, name, self.inner.options.model_path.as_deref())
            .map_err(ReloadError::Model)?;
        let gate_notes = match &self.inner.options.model_gate {
            Some(gate) => gate(&model).map_err(ReloadError::Rejected)?,
            None => Vec::new(),
        };
        let policy = Arc::new(policy);
        let gateways = gateway_conduits(&policy).map_err(|Unsupported(conduit, what)| {
            ReloadError::Unsupported(format!("conduit {conduit}: {what} is not supported yet"))
        })?;

        // Build every new state first; swap only when all are good.
        let mut warnings = gate_notes;
        let mut states: Vec<ConduitState> = Vec::with_capacity(self.inner.conduits.len());
        for (shared, bound) in self.inner.conduits.iter().zip(&self.inner.listeners) {
            let found = gateways.iter().find(|g| g.id.as_str() == &*shared.conduit);
            let state = match found {
                Some(g) => {
                    let listen = g.listen;
                    if listen.port() != 0 && listen != bound.addr {
                        warnings.push(format!(
                            "conduit {}: listen address changed to {listen}; it keeps listening on {} until a restart",
                            shared.conduit, bound.addr
                        ));
                    }
                    // The limiter carries over: a rule that keeps its id and rate keeps its
                    // buckets, so a reload does not reset a rate limit (14.7).
                    let old = shared.state.load();
                    let state = conduit_state(&policy, Some(g.index), Some(&old.limiter)).map_err(
                        |what| ReloadError::Tls(format!("conduit {}: {what}", shared.conduit)),
                    )?;
                    // The kind of a listener is fixed while it runs: a reload must not turn a
                    // Modbus/TCP Security port into a plaintext one (or back) under its clients.
                    if state.settings.tls.is_some() != old.settings.tls.is_some() {
                        return Err(ReloadError::Tls(format!(
                            "conduit {}: the listener on {} {} TLS; adding or removing `tls:` \
                             takes a restart",
                            shared.conduit,
                            bound.addr,
                            if old.settings.tls.is_some() {
                                "speaks"
                            } else {
                                "does not speak"
                            }
                        )));
                    }
                    state
                }
                None => {
                    warnings.push(format!(
                        "conduit {} is no longer a gateway conduit in the new model: its listener \
                         denies every request until a restart",
                        shared.conduit
                    ));
                    let old = shared.state.load();
                    ConduitState {
                        policy: Arc::clone(&policy),
                        index: None,
                        limiter: limiter_for(&policy, Some(&old.limiter)),
                        settings: old.settings.clone(),
                        rule_ids: Vec::new(),
                    }
                }
            };
            states.push(state);
        }
        for g in &gateways {
            if !self.inner.conduits.iter().any(|c| *c.conduit == *g.id) {
                warnings.push(format!(
                    "conduit {} ({}) is new: its listener starts at the next restart",
                    g.id, g.listen
                ));
            }
        }
        for (shared, state) in self.inner.conduits.iter().zip(states) {
            shared.state.store(Arc::new(state));
        }
        let infos = conduit_infos(&model, &self.inner.conduits, &self.inner.listeners);
        self.inner.metrics.set_policy(&hash, infos);
        // The monitor and the shadow candidates follow the model; their files never make a
        // reload fail (watch.rs).
        self.inner
            .watch
            .configure(&model, &self.inner.conduits, &self.inner.recorder);
        current.policy_hash.clone_from(&hash);
        current.tls_hash = tls_files_hash(&policy) + &self.inner.watch.files_hash();
        Ok(ReloadOutcome::Applied {
            policy_hash: hash,
            warnings,
        })
    }

    /// A handle that can trigger the shutdown from elsewhere (another task, a test).
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger {
            tx: self.inner.shutdown_tx.clone(),
        }
    }

    /// Runs until SIGINT or SIGTERM (or a [`ShutdownTrigger`]), reloading on SIGHUP and when
    /// the model file changes; then shuts down gracefully.
    pub async fn run_until_signal(self) -> ShutdownSummary {
        self.run_until_signal_then(|_| {}).await
    }

    /// Like [`Gateway::run_until_signal`], calling `ready` with the listeners once the signal
    /// handlers are in place: a supervisor that sees what `ready` prints may signal at once.
    pub async fn run_until_signal_then(
        self,
        ready: impl FnOnce(&[BoundListener]),
    ) -> ShutdownSummary {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = signal(SignalKind::interrupt()).ok();
        let mut sigterm = signal(SignalKind::terminate()).ok();
        let mut sighup = signal(SignalKind::hangup()).ok();
        ready(&self.inner.listeners);
        let mut stop_rx = self.inner.shutdown_tx.subscribe();
        let reload_now = Arc::clone(&self.inner.reload_now);
        let path = self.inner.options.model_path.clone();
        // The watcher compares the file's content with what was last seen, starting from the
        // text actually loaded: an edit made between loading and this point is still picked up
        // (an mtime stamp taken here would miss it), and so is a same-size edit within one
        // mtime tick. The model file is small; hashing it once per tick costs nothing.
        let mut seen = self.current_hash();
        // The TLS files are watched too (a renewed certificate, a new CRL): by content, and
        // a change is tried once, so a bad file is reported once, not at every tick.
        let mut seen_tls = self.tls_hash_now();
        let mut tick = tokio::time::interval(
            self.inner
                .options
                .watch_interval
                .max(Duration::from_millis(10)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = recv(&mut sigint) => { info!("SIGINT: shutting down"); break; }
                Some(()) = recv(&mut sigterm) => { info!("SIGTERM: shutting down"); break; }
                Some(()) = recv(&mut sighup) => {
                    info!("SIGHUP: reloading the model");
                    self.reload_on_request(&mut seen);
                }
                () = reload_now.notified() => {
                    info!("reload requested: reloading the model");
                    self.reload_on_request(&mut seen);
                }
                _ = tick.tick(), if path.is_some() => {
                    let now = path.as_deref().and_then(file_hash);
                    match now {
                        Some(hash) if hash != seen => {
                            info!("model file changed: reloading");
                            // What the reload read, not what the tick saw: a save in between
                            // is then still ahead of `seen`.
                            seen = self.reload_from_file().0.unwrap_or(hash);
                        }
                        Some(_) => {
                            let tls = self.tls_hash_now();
                            if tls != seen_tls {
                                info!("a TLS file changed: reloading");
                                seen_tls = tls;
                                seen = self.reload_from_file().0.unwrap_or(seen);
                            }
                        }
                        None if !seen.is_empty() => {
                            seen = String::new();
                            warn!("model file is gone; the current policy stays in force");
                        }
                        None => {}
                    }
                }
                r = stop_rx.changed() => {
                    if r.is_err() || *stop_rx.borrow() { break; }
                }
            }
        }
        self.shutdown().await
    }

    /// SIGHUP or a [`ReloadTrigger`]: reloads and notes, as what the watcher has seen, the
    /// hash of the text the reload read. (Re-reading the file here instead would take in a
    /// save made after the reload's read, and that save would never be applied: 14.9.)
    fn reload_on_request(&self, seen: &mut String) {
        if self.inner.options.model_path.is_none() {
            warn!("reload ignored: the gateway was started without a model file");
            return;
        }
        if let (Some(read), _) = self.reload_from_file() {
            *seen = read;
        }
    }

    /// Stops accepting, drains the sessions (bounded by the drain timeout), writes the audit
    /// `stop` record and flushes the log.
    pub async fn shutdown(self) -> ShutdownSummary {
        self.inner.metrics.set_listeners_up(false);
        let _ = self.inner.shutdown_tx.send(true);
        for probe in &self.probe_tasks {
            probe.abort();
        }
        for task in self.accept_tasks {
            let _ = task.await;
        }
        let deadline =
            Instant::now() + self.inner.options.drain_timeout + Duration::from_millis(500);
        let cut = self.inner.tracker.wait_idle(deadline).await;
        if cut > 0 {
            warn!("{cut} session(s) still open after the drain deadline; closing them");
        }
        // The monitor's last alerts (and its drop count) go in before the `stop` record.
        self.inner.watch.stop();
        let stop = self.inner.recorder.handle().shutdown();
        match tokio::time::timeout(Duration::from_secs(10), stop).await {
            Ok(Ok(_seq)) => {}
            Ok(Err(e)) => error!("audit log: cannot write the stop record: {e}"),
            Err(_) => error!("audit log: the stop record was not confirmed within 10 s"),
        }
        info!("gateway stopped");
        ShutdownSummary { sessions_cut: cut }
    }
}

/// Makes a running [`Gateway::run_until_signal`] reload the model file (as SIGHUP does).
#[derive(Debug, Clone)]
pub struct ReloadTrigger {
    notify: Arc<Notify>,
}

impl ReloadTrigger {
    /// Asks for a reload; several requests before the gateway gets to it make one reload.
    pub fn trigger(&self) {
        self.notify.notify_one();
    }
}

/// Triggers a graceful shutdown of a running [`Gateway`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Asks the gateway to shut down (as SIGTERM does).
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

async fn recv(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Hash of the model file's content as it is now (the reload trigger), in the form of
/// [`policy_hash`] so that it compares with the loaded policy's hash.
fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|bytes| zonegate_audit::sha256_hex(&bytes))
}

/// Hash of the content of every TLS file the gateway conduits of `policy` name (listener
/// `tls:` blocks and `tls://` upstreams); a missing file hashes as absent.
fn tls_files_hash(policy: &Policy) -> String {
    let mut all = String::new();
    for g in policy.conduits().iter().filter_map(|c| c.gateway.as_ref()) {
        let listener = g.tls.iter().flat_map(|t| t.files());
        let upstream = match &g.upstream {
            zonegate_policy::Upstream::Tls { ca, cert, key, .. } => {
                vec![ca.as_ref(), cert.as_ref(), key.as_ref()]
            }
            _ => Vec::new(),
        };
        for path in listener.chain(upstream.into_iter().flatten()) {
            all.push_str(&path.display().to_string());
            all.push('=');
            all.push_str(file_hash(path).as_deref().unwrap_or("absent"));
            all.push('\n');
        }
    }
    all
}

/// Connects to the conduit's device once at start, bounded by its `connect_timeout`: an
/// unreachable device is said on stderr and in the audit log (a `connection` record with
/// reason `upstream_unreachable`) at start, not first noticed at the first request. The
/// gateway starts anyway: the device may come up later, and requests are answered 0x0A until
/// it does.
async fn probe_upstream(shared: Arc<ConduitShared>) {
    let (target, timeout) = {
        let state = shared.state.load();
        (
            state.settings.upstream.clone(),
            state.settings.connect_timeout,
        )
    };
    let UpstreamTarget {
        host, port, label, ..
    } = &target;
    let why = if let Some(bus) = &target.bus {
        // A bus: the line exists / the converter accepts (bus.rs).
        match crate::bus::probe(bus, timeout).await {
            Ok(()) => {
                info!(conduit = %shared.conduit, "bus {label} is reachable");
                return;
            }
            Err(why) => why,
        }
    } else {
        let connecting = tokio::net::TcpStream::connect((host.as_str(), *port));
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(stream)) => {
                drop(stream);
                info!(conduit = %shared.conduit, "device {label} is reachable");
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {timeout:?}"),
        }
    };
    warn!(
        conduit = %shared.conduit,
        "device {label} is NOT reachable at start ({why}); starting anyway, requests are \
         answered 0x0A (gateway path unavailable) until it is"
    );
    let mut ev = Event::new(Kind::Connection);
    ev.conduit = Some(Arc::clone(&shared.conduit));
    ev.dst = Some(Arc::clone(label));
    ev.reason = Some("upstream_unreachable".into());
    ev.message = Some(format!("device unreachable at start: {why}"));
    shared.recorder.record(ev);
}

/// What the dashboard shows of each listener's conduit: zones and SL from the model, mode and
/// upstream from the state in force.
fn conduit_infos(
    model: &Model,
    conduits: &[Arc<ConduitShared>],
    listeners: &[BoundListener],
) -> Vec<ConduitInfo> {
    conduits
        .iter()
        .zip(listeners)
        .map(|(shared, bound)| {
            let state = shared.state.load();
            let c = model.conduit(&shared.conduit);
            ConduitInfo {
                id: shared.conduit.to_string(),
                zones: c
                    .map(|c| c.connects.iter().map(|z| z.value.clone()).collect())
                    .unwrap_or_default(),
                mode: state.settings.mode.as_str(),
                security_level: c.and_then(|c| c.security_level.as_ref().map(ToString::to_string)),
                listen: bound.addr.to_string(),
                upstream: state.settings.upstream.label.to_string(),
            }
        })
        .collect()
}
