//! Passive inventory: every address seen, its role, the unit ids and functions, and what
//! devices said about themselves in FC 43/14 and FC 17 answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use foldhash::HashMap;
use serde::Serialize;

/// At most this many addresses are kept (a sweep of spoofed sources cannot grow it further).
const MAX_ASSETS: usize = 65_536;

/// The role an address played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It sent requests.
    Master,
    /// It answered them.
    Slave,
}

/// What one address is known to be.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// Its address.
    pub address: IpAddr,
    /// `master` or `slave` (an address in both roles appears twice).
    pub role: Role,
    /// Unit ids it used (master) or answered for (slave).
    pub unit_ids: BTreeSet<u8>,
    /// Function codes it sent (master) or was sent (slave).
    pub functions: BTreeSet<u8>,
    /// Requests it sent or received.
    pub requests: u64,
    /// FC 43/14 objects per unit id: vendor, product, revision and the rest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub identification: BTreeMap<u8, BTreeMap<String, String>>,
    /// FC 17 server id per unit id (hex).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_id: BTreeMap<u8, String>,
}

/// The passive inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    assets: HashMap<(IpAddr, Role), Asset>,
    dropped: u64,
}

/// The name of FC 43/14 object `id` (Application Protocol V1.1b3 table 6.21.1).
fn object_name(id: u8) -> String {
    match id {
        0 => "vendor".into(),
        1 => "product".into(),
        2 => "revision".into(),
        3 => "vendor_url".into(),
        4 => "product_name".into(),
        5 => "model_name".into(),
        6 => "user_application_name".into(),
        other => format!("object_{other}"),
    }
}

impl Inventory {
    fn entry(&mut self, address: IpAddr, role: Role) -> Option<&mut Asset> {
        if !self.assets.contains_key(&(address, role)) && self.assets.len() >= MAX_ASSETS {
            self.dropped += 1;
            return None;
        }
        Some(self.assets.entry((address, role)).or_insert_with(|| Asset {
            address,
            role,
            unit_ids: BTreeSet::new(),
            functions: BTreeSet::new(),
            requests: 0,
            identification: BTreeMap::new(),
            server_id: BTreeMap::new(),
        }))
    }

    /// Records one request from `master` to `slave`.
    pub(crate) fn request(&mut self, master: IpAddr, slave: IpAddr, unit: u8, function: u8) {
        for (address, role) in [(master, Role::Master), (slave, Role::Slave)] {
            if let Some(a) = self.entry(address, role) {
                a.unit_ids.insert(unit);
                a.functions.insert(function);
                a.requests += 1;
            }
        }
    }

    /// Records an FC 43/14 object a device returned.
    pub(crate) fn object(&mut self, slave: IpAddr, unit: u8, id: u8, value: &[u8]) {
        if let Some(a) = self.entry(slave, Role::Slave) {
            a.identification
                .entry(unit)
                .or_default()
                .insert(object_name(id), String::from_utf8_lossy(value).into_owned());
        }
    }

    /// Records an FC 17 answer.
    pub(crate) fn server_id(&mut self, slave: IpAddr, unit: u8, data: &[u8]) {
        if let Some(a) = self.entry(slave, Role::Slave) {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            a.server_id.insert(unit, hex);
        }
    }

    /// Every asset, sorted by address then role.
    pub fn assets(&self) -> Vec<&Asset> {
        let mut v: Vec<&Asset> = self.assets.values().collect();
        v.sort_by_key(|a| (a.address, a.role));
        v
    }

    /// Addresses that did not fit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
