//! Replay: a model's policy evaluated on observed requests, the "what would enforce block"
//! review. A request is judged by the conduits that lead to its server: the conduit whose
//! gateway upstream is that address, else the conduits that connect a zone holding it (by
//! network or asset address). No such conduit means deny (`no_conduit`), as enforcement would.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use zonegate_modbus::{Request, UnitId};
use zonegate_policy::{Model, Policy, RateLimiter, Transaction, Upstream};

/// Examples of would-deny requests kept (distinct by reason, rule, master, slave, unit, fc).
const MAX_EXAMPLES: usize = 20;

/// One would-deny request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// When (RFC 3339).
    pub ts: String,
    /// The master.
    pub src: IpAddr,
    /// The slave.
    pub dst: IpAddr,
    /// Unit id.
    pub unit: u8,
    /// Function code.
    pub fc: u8,
    /// Why it would be denied.
    pub reason: String,
    /// The rule that decided, if any.
    pub rule: Option<String>,
    /// The conduit, if any.
    pub conduit: Option<String>,
}

/// The result of a replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Requests the policy allows.
    pub allowed: u64,
    /// Requests enforcement would deny.
    pub would_deny: u64,
    /// Would-deny counts per reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Request counts per deciding rule (`conduit/rule`), allowed and denied.
    pub by_rule: BTreeMap<String, u64>,
    /// The first distinct would-deny requests.
    pub examples: Vec<Example>,
}

/// A policy under replay.
#[derive(Debug)]
pub struct Replay {
    policy: Policy,
    limiter: RateLimiter,
    /// Per conduit (policy order): addresses its traffic goes to.
    targets: Vec<Targets>,
    base: Instant,
    first_us: Option<u64>,
    summary: Summary,
}

#[derive(Debug, Default)]
struct Targets {
    upstream: Option<IpAddr>,
    zones: Vec<zonegate_policy::Cidr>,
}

impl Replay {
    /// Compiles `model`. `base` is the instant the first request's time maps to (rate limits
    /// run on the capture's clock from there).
    pub fn new(model: &Model, base: Instant) -> Result<Self, String> {
        let policy = Policy::compile(model).map_err(|e| e.to_string())?;
        let limiter = RateLimiter::new(&policy);
        let targets = model
            .conduits
            .iter()
            .map(|c| {
                let upstream = c.gateway.as_ref().and_then(|g| match &g.upstream {
                    Upstream::Tcp { host, .. } => host.parse().ok(),
                    _ => None,
                });
                let mut zones = Vec::new();
                for z in model
                    .zones
                    .iter()
                    .filter(|z| c.connects.iter().any(|id| id.value == z.id))
                {
                    zones.extend(z.networks.iter().map(|n| n.value));
                    zones.extend(
                        z.assets
                            .iter()
                            .filter_map(|a| a.address)
                            .map(zonegate_policy::Cidr::host),
                    );
                }
                Targets { upstream, zones }
            })
            .collect();
        Ok(Self {
            policy,
            limiter,
            targets,
            base,
            first_us: None,
            summary: Summary::default(),
        })
    }

    /// Judges one request from `src` to `dst`.
    pub fn request(&mut self, ts_us: u64, src: IpAddr, dst: IpAddr, unit: u8, pdu: &[u8]) {
        let first = *self.first_us.get_or_insert(ts_us);
        let now = self.base + Duration::from_micros(ts_us.saturating_sub(first));
        let fc = pdu.first().copied().unwrap_or(0);
        let by_upstream: Vec<usize> = self
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.upstream == Some(dst))
            .map(|(i, _)| i)
            .collect();
        let candidates: Vec<usize> = if by_upstream.is_empty() {
            self.targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.zones.iter().any(|z| z.contains(dst)))
                .map(|(i, _)| i)
                .collect()
        } else {
            by_upstream
        };
        let outcome = match Request::parse(pdu) {
            // A request the codec rejects never reaches the policy: the gateway answers it.
            Err(_) => Err(("invalid_request".to_string(), None, None)),
            Ok(request) => {
                let tx = Transaction {
                    src,
                    unit: UnitId::new(unit),
                    request: &request,
                    role: None,
                };
                let mut first_denial = None;
                let mut allowed = None;
                for &i in &candidates {
                    let Some(conduit) = self.policy.conduits().get(i) else {
                        continue;
                    };
                    let verdict = conduit.decide(&tx, &self.limiter, now);
                    if verdict.is_allow() {
                        allowed = Some(format!("{}/{}", conduit.id, verdict.rule.unwrap_or("")));
                        break;
                    }
                    if first_denial.is_none() {
                        first_denial = Some((
                            verdict.reason.as_str().to_string(),
                            verdict.rule.map(str::to_string),
                            Some(conduit.id.to_string()),
                        ));
                    }
                }
                match allowed {
                    Some(rule) => Ok(rule),
                    None => Err(first_denial.unwrap_or(("no_conduit".to_string(), None, None))),
                }
            }
        };
        let s = &mut self.summary;
        match outcome {
            Ok(rule) => {
                s.allowed += 1;
                *s.by_rule.entry(rule).or_default() += 1;
            }
            Err((reason, rule, conduit)) => {
                s.would_deny += 1;
                *s.by_reason.entry(reason.clone()).or_default() += 1;
                if let (Some(r), Some(c)) = (&rule, &conduit) {
                    *s.by_rule.entry(format!("{c}/{r}")).or_default() += 1;
                }
                let example = Example {
                    ts: crate::time::rfc3339(ts_us),
                    src,
                    dst,
                    unit,
                    fc,
                    reason,
                    rule,
                    conduit,
                };
                let same = |e: &Example| {
                    (&e.reason, &e.rule, e.src, e.dst, e.unit, e.fc)
                        == (
                            &example.reason,
                            &example.rule,
                            example.src,
                            example.dst,
                            example.unit,
                            example.fc,
                        )
                };
                if s.examples.len() < MAX_EXAMPLES && !s.examples.iter().any(same) {
                    s.examples.push(example);
                }
            }
        }
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}
