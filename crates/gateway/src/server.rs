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
//! Shutdown: stop accepting, let every session answer what it has in flight (bounded by the drain
//! timeout), then write the audit `stop` record and flush the log.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};
use zonegate_audit::{AuditError, AuditLog, Event, Kind, Storage};
use zonegate_policy::{LoadErrors, Model, Policy};

use crate::conn::Session;
use crate::record::Recorder;
use crate::settings::{audit_config, conduit_state, gateway_conduits, Unsupported};
use crate::state::{ConduitShared, ConduitState, Tracker};

/// Makes the byte sink of the audit log (tests inject faults with it).
pub type AuditStorageFactory = Arc<dyn Fn() -> Box<dyn Storage> + Send + Sync>;

/// The design review a model must pass before it is enforced, at start and at every reload
/// (`zonegate run` runs the toolkit's checks). `Ok(notes)`: the model may run; each note (a
/// warning, a finding accepted by the operator) goes into the `policy_load` / `policy_reload`
/// record. `Err(why)`: the model is refused (the old policy stays in force on a reload).
pub type ModelGate = Arc<dyn Fn(&Model) -> Result<Vec<String>, String> + Send + Sync>;

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
            Self::Rejected(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

/// A listener the gateway bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    /// The conduit id.
    pub conduit: String,
    /// The address actually bound (the port is filled in when the model says port 0).
    pub addr: SocketAddr,
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
}

struct Inner {
    conduits: Vec<Arc<ConduitShared>>,
    listeners: Vec<BoundListener>,
    shutdown_tx: watch::Sender<bool>,
    recorder: Recorder,
    tracker: Arc<Tracker>,
    options: GatewayOptions,
    current: Mutex<Current>,
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    inner: Arc<Inner>,
    accept_tasks: Vec<JoinHandle<()>>,
}

/// Loads and compiles a model given as text.
fn compile(text: &str, name: &str) -> Result<(Model, Policy), LoadErrors> {
    let model = zonegate_policy::load_str(text, name)?;
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
        let (model, policy) = compile(text, name).map_err(StartError::Model)?;
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
            let listener =
                TcpListener::bind(g.listen)
                    .await
                    .map_err(|source| StartError::Bind {
                        conduit: g.id.clone(),
                        addr: g.listen,
                        source,
                    })?;
            let addr = listener.local_addr().unwrap_or(g.listen);
            bound.push((g.index, g.id.clone(), listener, addr));
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
        let mut conduits = Vec::new();
        let mut listeners = Vec::new();
        let mut sockets = Vec::new();
        for (index, conduit_id, listener, addr) in bound {
            let state =
                conduit_state(&policy, Some(index)).map_err(|what| StartError::Unsupported {
                    conduit: conduit_id.clone(),
                    what,
                })?;
            listeners.push(BoundListener {
                conduit: conduit_id.clone(),
                addr,
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
                connections: AtomicUsize::new(0),
                shutdown: shutdown_rx.clone(),
                drain_timeout: options.drain_timeout,
                tracker: Arc::clone(&tracker),
                pool: Arc::default(),
            });
            conduits.push(Arc::clone(&shared));
            sockets.push((listener, shared));
        }

        let accept_tasks = sockets
            .into_iter()
            .map(|(listener, shared)| tokio::spawn(accept_loop(listener, shared)))
            .collect();
        let inner = Arc::new(Inner {
            conduits,
            listeners,
            shutdown_tx,
            recorder,
            tracker,
            options,
            current: Mutex::new(Current { policy_hash: hash }),
        });
        Ok(Self {
            inner,
            accept_tasks,
        })
    }

    /// The listeners, in model order.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.inner.listeners
    }

    /// Live client sessions across all listeners.
    pub fn sessions(&self) -> usize {
        self.inner.tracker.active()
    }

    /// Re-reads the model file and applies it (see the module docs). On error the old policy
    /// stays in force, the errors are logged and a `policy_rejected` record is written.
    pub fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let Some(path) = self.inner.options.model_path.clone() else {
            return Err(ReloadError::NoFile);
        };
        let result = std::fs::read_to_string(&path)
            .map_err(ReloadError::Read)
            .and_then(|text| self.apply_text(&text, &path.display().to_string(), false));
        self.report_reload(&result);
        result
    }

    /// Applies a model given as text, as a reload would (tests, the demo).
    pub fn reload_text(&self, text: &str, name: &str) -> Result<ReloadOutcome, ReloadError> {
        let result = self.apply_text(text, name, true);
        self.report_reload(&result);
        result
    }

    fn report_reload(&self, result: &Result<ReloadOutcome, ReloadError>) {
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
        if !force && current.policy_hash == hash {
            return Ok(ReloadOutcome::Unchanged);
        }
        let (model, policy) = compile(text, name).map_err(ReloadError::Model)?;
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
                    conduit_state(&policy, Some(g.index)).map_err(|what| {
                        ReloadError::Unsupported(format!(
                            "conduit {}: {what} is not supported yet",
                            shared.conduit
                        ))
                    })?
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
                        limiter: crate::settings::new_limiter(&policy),
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
        current.policy_hash.clone_from(&hash);
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
        let path = self.inner.options.model_path.clone();
        // The watcher compares the file's content with what was last seen, starting from the
        // text actually loaded: an edit made between loading and this point is still picked up
        // (an mtime stamp taken here would miss it), and so is a same-size edit within one
        // mtime tick. The model file is small; hashing it once per tick costs nothing.
        let mut seen = self.current_hash();
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
                    if let Some(p) = path.as_deref() {
                        let _ = self.reload();
                        seen = file_hash(p).unwrap_or(seen);
                    } else {
                        warn!("SIGHUP ignored: the gateway was started without a model file");
                    }
                }
                _ = tick.tick(), if path.is_some() => {
                    let now = path.as_deref().and_then(file_hash);
                    match now {
                        Some(hash) if hash != seen => {
                            seen = hash;
                            info!("model file changed: reloading");
                            let _ = self.reload();
                        }
                        Some(_) => {}
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

    /// Stops accepting, drains the sessions (bounded by the drain timeout), writes the audit
    /// `stop` record and flushes the log.
    pub async fn shutdown(self) -> ShutdownSummary {
        let _ = self.inner.shutdown_tx.send(true);
        for task in self.accept_tasks {
            let _ = task.await;
        }
        let deadline =
            Instant::now() + self.inner.options.drain_timeout + Duration::from_millis(500);
        let cut = self.inner.tracker.wait_idle(deadline).await;
        if cut > 0 {
            warn!("{cut} session(s) still open after the drain deadline; closing them");
        }
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

/// Accepts clients until shutdown, enforcing `max_connections`.
async fn accept_loop(listener: TcpListener, shared: Arc<ConduitShared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    let max = shared.state.load().settings.max_connections;
                    if shared.connections.load(Ordering::Acquire) >= max {
                        if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                            warn!(
                                conduit = %shared.conduit, %peer,
                                "refusing a connection: max_connections ({max}) reached"
                            );
                            last_refusal_log = Some(Instant::now());
                        }
                        let mut ev = Event::new(Kind::Connection);
                        ev.conduit = Some(Arc::clone(&shared.conduit));
                        ev.src = Some(peer.to_string());
                        ev.reason = Some("max_connections".into());
                        ev.message = Some(format!("refused: max_connections ({max}) reached"));
                        shared.recorder.record_denial(ev);
                        drop(socket);
                        continue;
                    }
                    shared.connections.fetch_add(1, Ordering::AcqRel);
                    shared.tracker.enter();
                    tokio::spawn(Session::serve(socket, peer, Arc::clone(&shared)));
                }
                Err(e) => {
                    warn!(conduit = %shared.conduit, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}
