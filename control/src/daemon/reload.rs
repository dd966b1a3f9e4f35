//! Configuration reload on SIGHUP: reads the file again, compares the router's new setup
//! with the running one, and applies the changes that can take effect while it runs.
//!
//! The comparison ([`prepare`]) is pure. It keeps every peer and peer path at the index the
//! running router gave it, because the workers' sessions refer to peers and paths by index.
//! A removed peer or path stays behind as a retired entry that never carries traffic, and
//! new ones are appended. Settings read only at start-up keep their running values and are
//! listed in [`Reload::restart_needed`]. A reload with any error changes nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{error, info, warn};

use super::plan::{PathPlan, PeerPlan, Plan, PlanError, RoutePlan};
use super::{BfdThread, Daemon, ParkedPath, load_trust, start_bfd};
use crate::alarm::AlarmCause;
use crate::bfd::packet::Diagnostic;
use crate::bfd::{Flavour, PathSpec};
use crate::classic::ClassicKeys;
use crate::config::{self, LoadError};
use crate::kex::{self, MlKemLevel, PeerConfig, PeerId};

/// The outcome of comparing a new setup with the running one.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The setup to run from now on: the new one, with the running values of every
    /// setting that needs a restart, and the running indices of peers and paths.
    pub plan: Plan,
    /// One line per change that the reload applies.
    pub changes: Vec<String>,
    /// Changes that take effect only after a restart; the reload leaves them out.
    pub restart_needed: Vec<String>,
    /// Indices of peers added, or added back after an earlier removal.
    pub peers_added: Vec<usize>,
    /// Indices of peers removed (now retired).
    pub peers_removed: Vec<usize>,
    /// Indices of peers whose peering-common-name or ml-kem-keygen-priority changed. The
    /// key exchange drops their state and starts again with the certificate exchange.
    pub peers_replaced: Vec<usize>,
    /// Indices of peers whose key-exchange algorithm changed: they exchange new keys and
    /// keep the old ones until then.
    pub peers_algorithm: Vec<usize>,
    /// Whether peer paths were added or removed, so BFD restarts with the new set.
    pub paths_changed: bool,
    /// Indices of paths whose BFD timers changed.
    pub bfd_changed: Vec<usize>,
    /// Whether services, tenants or service routes changed.
    pub forwarding_changed: bool,
    /// Whether the key-exchange timers changed.
    pub timers_changed: bool,
    /// Whether the certificate revocation lists (locations or intervals) changed.
    pub crls_changed: bool,
    /// Whether the classic-mode keys changed, so the keyring installs them again.
    pub classic_changed: bool,
}

impl Reload {
    /// Returns whether the reload changes nothing that applies while running.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A reason a reload is rejected. The router keeps running its previous setup.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration file cannot be read.
    Read(LoadError),
    /// One configuration error in the file, with its line and column.
    Invalid { path: PathBuf, error: String },
    /// The file no longer defines the running router.
    RouterMissing { router: String },
    /// The new configuration cannot run as this router.
    Plan(PlanError),
    /// A change needs something that only a restart sets up.
    NeedsRestart { change: String },
    /// Two peers would share a peering-common-name, or a peer would use this router's.
    DuplicateCommonName { name: String },
    /// The trusted CAs of the new configuration cannot be loaded.
    Trust(String),
    /// A certificate-revocation-list location that svrd cannot fetch from.
    Crl(String),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Read(error) => write!(f, "{error}"),
            ReloadError::Invalid { path, error } => write!(f, "{}: {error}", path.display()),
            ReloadError::RouterMissing { router } => {
                write!(f, "the configuration no longer defines router {router}")
            }
            ReloadError::Plan(error) => write!(f, "{error}"),
            ReloadError::NeedsRestart { change } => {
                write!(f, "{change}; this needs a restart of svrd")
            }
            ReloadError::DuplicateCommonName { name } => {
                write!(f, "peering-common-name {name} is used twice; expected one per router")
            }
            ReloadError::Trust(message) => write!(f, "trusted CAs: {message}"),
            ReloadError::Crl(message) => write!(f, "certificate-revocation-list {message}"),
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Read(error) => Some(error),
            ReloadError::Plan(error) => Some(error),
            _ => None,
        }
    }
}

/// Reads the configuration file and resolves the setup of `router` from it.
pub fn read_plan(path: &Path, router: &str) -> Result<Plan, Vec<ReloadError>> {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(LoadError::Invalid { path, errors }) => {
            return Err(errors
                .errors
                .iter()
                .map(|error| ReloadError::Invalid { path: path.clone(), error: error.to_string() })
                .collect());
        }
        Err(error) => return Err(vec![ReloadError::Read(error)]),
    };
    let Some(found) = config.router(router) else {
        return Err(vec![ReloadError::RouterMissing { router: router.to_string() }]);
    };
    Plan::resolve(&config, found).map_err(|error| vec![ReloadError::Plan(error)])
}

/// Compares `new` with the `running` setup. `ml_kem_levels` are the ML-KEM parameter sets
/// whose key pairs the router made at start-up.
pub fn prepare(
    running: &Plan,
    new: Plan,
    ml_kem_levels: &BTreeSet<MlKemLevel>,
) -> Result<Reload, Vec<ReloadError>> {
    let mut errors = Vec::new();
    let mut reload = Reload {
        plan: running.clone(),
        changes: Vec::new(),
        restart_needed: startup_changes(running, &new),
        peers_added: Vec::new(),
        peers_removed: Vec::new(),
        peers_replaced: Vec::new(),
        peers_algorithm: Vec::new(),
        paths_changed: false,
        bfd_changed: Vec::new(),
        forwarding_changed: false,
        timers_changed: false,
        crls_changed: false,
        classic_changed: false,
    };

    // Ports: new index to running index, by device-interface name.
    let port_map: Vec<Option<usize>> = new
        .ports
        .iter()
        .map(|port| running.ports.iter().position(|p| p.name == port.name))
        .collect();

    let peer_map = align_peers(running, &new, ml_kem_levels, &mut reload, &mut errors);
    align_paths(running, &new, &peer_map, &port_map, &mut reload, &mut errors);
    let routes = remap_routes(&new, &peer_map, &port_map, &mut errors);
    remap_classic(running, &new, &peer_map, &mut reload);
    check_common_names(&reload.plan, &mut errors);

    let plan = &mut reload.plan;
    if plan.services != new.services {
        reload.changes.push(format!("services: {}", names(&new.services, |s| &s.name)));
        reload.forwarding_changed = true;
    }
    if plan.tenants != new.tenants {
        reload.changes.push(format!("tenants: {}", new.tenants.join(", ")));
        reload.forwarding_changed = true;
    }
    if plan.routes != routes {
        reload.changes.push(format!("service routes: {} entries", routes.len()));
        reload.forwarding_changed = true;
    }
    if plan.timers != new.timers {
        reload.changes.push(format!(
            "key-exchange timers: retransmit {:?}, timeout {:?}, rekey {}",
            new.timers.retransmit_interval,
            new.timers.timeout,
            describe_interval(new.timers.rekey_interval)
        ));
        reload.timers_changed = true;
    }
    if plan.payload_rekey_interval != new.payload_rekey_interval {
        reload.changes.push(format!(
            "payload-key-rekey-interval: {}",
            describe_interval(new.payload_rekey_interval)
        ));
    }
    if plan.trusted_cas != new.trusted_cas {
        reload.changes.push(format!("trusted CAs: {} sources", new.trusted_cas.len()));
    }
    if plan.crls != new.crls {
        for crl in &new.crls {
            if let Err(error) = crate::pki::CrlSource::parse(&crl.location) {
                errors.push(ReloadError::Crl(format!("{}: {error}", crl.location)));
            }
        }
        let locations: Vec<&str> = new.crls.iter().map(|crl| crl.location.as_str()).collect();
        reload.changes.push(format!(
            "certificate revocation lists: {}",
            if locations.is_empty() { "none".to_string() } else { locations.join(", ") }
        ));
        reload.crls_changed = true;
    }
    plan.services = new.services;
    plan.tenants = new.tenants;
    plan.routes = routes;
    plan.timers = new.timers;
    plan.payload_rekey_interval = new.payload_rekey_interval;
    plan.trusted_cas = new.trusted_cas;
    plan.crls = new.crls;

    if errors.is_empty() { Ok(reload) } else { Err(errors) }
}

/// Lists the differences in settings that are read only at start-up.
fn startup_changes(running: &Plan, new: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    if running.node != new.node {
        lines.push(format!("node {} -> {}", running.node, new.node));
    }
    if running.peering_common_name != new.peering_common_name {
        lines.push(format!(
            "peering-common-name {} -> {}",
            running.peering_common_name, new.peering_common_name
        ));
    }
    if running.ml_kem_keygen_priority != new.ml_kem_keygen_priority {
        lines.push("ml-kem-keygen-priority".to_string());
    }
    if running.eskm != new.eskm {
        lines.push(format!("enhanced-security-key-management {}", new.eskm));
    }
    if running.certificate != new.certificate {
        lines.push("the router's client-certificate".to_string());
    }
    if running.busy_polling != new.busy_polling {
        let mode = if new.busy_polling { "busy" } else { "adaptive" };
        lines.push(format!("dataplane polling-mode {mode}"));
    }
    if running.worker_cores != new.worker_cores {
        lines.push(format!("dataplane worker-cores {:?}", new.worker_cores));
    }
    if running.eal_arguments != new.eal_arguments {
        lines.push(format!("dataplane eal-argument {:?}", new.eal_arguments));
    }
    for port in &new.ports {
        match running.ports.iter().find(|p| p.name == port.name) {
            None => lines.push(format!("device-interface {} added", port.name)),
            Some(old) if old != port => {
                lines.push(format!("device-interface {} changed", port.name));
            }
            Some(_) => {}
        }
    }
    for port in &running.ports {
        if !new.ports.iter().any(|p| p.name == port.name) {
            lines.push(format!("device-interface {} removed", port.name));
        }
    }
    lines
}

/// Places the new peers at their running indices; returns the new index of each.
fn align_peers(
    running: &Plan,
    new: &Plan,
    ml_kem_levels: &BTreeSet<MlKemLevel>,
    reload: &mut Reload,
    errors: &mut Vec<ReloadError>,
) -> Vec<usize> {
    let peers = &mut reload.plan.peers;
    let mut map = Vec::with_capacity(new.peers.len());
    for peer in &new.peers {
        if let Some(level) = peer.algorithm.ml_kem()
            && !ml_kem_levels.contains(&level)
        {
            errors.push(ReloadError::NeedsRestart {
                change: format!(
                    "peer {} uses {level}, whose key pair this router makes only at start-up",
                    peer.name
                ),
            });
        }
        let slot = match running.peers.iter().position(|p| p.name == peer.name) {
            Some(slot) => {
                let old = &running.peers[slot];
                if old.retired {
                    reload.peers_added.push(slot);
                    reload.changes.push(format!("peer {} added", peer.name));
                } else if old.peering_common_name != peer.peering_common_name
                    || old.ml_kem_keygen_priority != peer.ml_kem_keygen_priority
                {
                    reload.peers_replaced.push(slot);
                    reload.changes.push(format!(
                        "peer {}: peering-common-name {}, ml-kem-keygen-priority {}; keys \
                         exchanged again",
                        peer.name, peer.peering_common_name, peer.ml_kem_keygen_priority
                    ));
                } else if old.algorithm != peer.algorithm {
                    reload.peers_algorithm.push(slot);
                    reload
                        .changes
                        .push(format!("peer {}: key exchange {}", peer.name, peer.algorithm));
                }
                peers[slot] = PeerPlan { retired: false, ..peer.clone() };
                slot
            }
            None => {
                peers.push(PeerPlan { retired: false, ..peer.clone() });
                reload.peers_added.push(peers.len() - 1);
                reload.changes.push(format!("peer {} added", peer.name));
                peers.len() - 1
            }
        };
        map.push(slot);
    }
    for (slot, old) in running.peers.iter().enumerate() {
        if !old.retired && !new.peers.iter().any(|p| p.name == old.name) {
            peers[slot].retired = true;
            reload.peers_removed.push(slot);
            reload.changes.push(format!("peer {} removed", old.name));
        }
    }
    map
}

/// Places the new peer paths at their running indices. A path is the same path when its
/// peer, port and both waypoints are.
fn align_paths(
    running: &Plan,
    new: &Plan,
    peer_map: &[usize],
    port_map: &[Option<usize>],
    reload: &mut Reload,
    errors: &mut Vec<ReloadError>,
) {
    let mut matched = vec![false; running.paths.len()];
    for path in &new.paths {
        let peer = peer_map[path.peer];
        let Some(port) = port_map[path.port] else {
            errors.push(ReloadError::NeedsRestart {
                change: format!(
                    "peer path {} -> {} leaves from device-interface {}, which is not running",
                    path.local, path.remote, new.ports[path.port].name
                ),
            });
            continue;
        };
        let aligned = PathPlan { peer, port, retired: false, ..path.clone() };
        let peer_name = &reload.plan.peers[peer].name;
        let same = |p: &PathPlan| {
            p.peer == peer && p.port == port && p.local == path.local && p.remote == path.remote
        };
        match running.paths.iter().position(same) {
            Some(slot) => {
                matched[slot] = true;
                let old = &running.paths[slot];
                if old.retired {
                    reload.paths_changed = true;
                    reload.changes.push(format!(
                        "peer path {} -> {} to {peer_name} added",
                        path.local, path.remote
                    ));
                } else if old.bfd != path.bfd {
                    reload.bfd_changed.push(slot);
                    reload.changes.push(format!(
                        "peer path {} -> {} to {peer_name}: bfd timers",
                        path.local, path.remote
                    ));
                }
                reload.plan.paths[slot] = aligned;
            }
            None => {
                reload.plan.paths.push(aligned);
                reload.paths_changed = true;
                reload.changes.push(format!(
                    "peer path {} -> {} to {peer_name} added",
                    path.local, path.remote
                ));
            }
        }
    }
    for (slot, old) in running.paths.iter().enumerate() {
        if !old.retired && !matched[slot] {
            reload.plan.paths[slot].retired = true;
            reload.paths_changed = true;
            reload.changes.push(format!("peer path {} -> {} removed", old.local, old.remote));
        }
    }
    // A path with new BFD timers restarts anyway when the path set changes.
    if reload.paths_changed {
        reload.bfd_changed.clear();
    }
}

/// Places the new classic-mode keys at the running peer indices, and records a change
/// when they differ from the running keys. A change between ESKM and classic mode needs a
/// restart and is listed there, so the running keys stay.
fn remap_classic(running: &Plan, new: &Plan, peer_map: &[usize], reload: &mut Reload) {
    let (Some(old), Some(keys)) = (&running.classic, &new.classic) else {
        return;
    };
    let peers = reload.plan.peers.len();
    let mut peer_metadata = vec![None; peers];
    let mut pair_secrets = vec![Vec::new(); peers];
    for (new_index, &slot) in peer_map.iter().enumerate() {
        peer_metadata[slot] = keys.peer_metadata.get(new_index).cloned().flatten();
        pair_secrets[slot] = keys.pair_secrets.get(new_index).cloned().unwrap_or_default();
    }
    let remapped = ClassicKeys {
        own: keys.own.clone(),
        own_by_interface: keys.own_by_interface.clone(),
        peer_metadata,
        pair_secrets,
    };
    if !remapped.same_keys(old) {
        let ids: Vec<String> =
            remapped.own.iter().map(|k| format!("{:#010x}", k.index())).collect();
        reload.changes.push(format!(
            "classic-mode keys from the security policies: own security ids {}",
            ids.join(", ")
        ));
        reload.classic_changed = true;
    }
    reload.plan.classic = Some(Arc::new(remapped));
}

/// Rewrites the new service routes to the running indices of peers and ports.
fn remap_routes(
    new: &Plan,
    peer_map: &[usize],
    port_map: &[Option<usize>],
    errors: &mut Vec<ReloadError>,
) -> Vec<RoutePlan> {
    let mut routes = Vec::with_capacity(new.routes.len());
    for route in &new.routes {
        match route {
            RoutePlan::Peer { service, peer } => {
                routes.push(RoutePlan::Peer { service: service.clone(), peer: peer_map[*peer] });
            }
            RoutePlan::Local { service, port, gateway } => match port_map[*port] {
                Some(running) => routes.push(RoutePlan::Local {
                    service: service.clone(),
                    port: running,
                    gateway: *gateway,
                }),
                None => errors.push(ReloadError::NeedsRestart {
                    change: format!(
                        "service-route for {service} leaves from device-interface {}, which \
                         is not running",
                        new.ports[*port].name
                    ),
                }),
            },
        }
    }
    routes
}

/// Rejects a setup in which two active peers, or a peer and this router, share a
/// peering-common-name: the key exchange could not tell them apart.
fn check_common_names(plan: &Plan, errors: &mut Vec<ReloadError>) {
    let mut seen = BTreeSet::from([plan.peering_common_name.as_str()]);
    for peer in plan.peers.iter().filter(|p| !p.retired) {
        if !seen.insert(peer.peering_common_name.as_str()) {
            errors
                .push(ReloadError::DuplicateCommonName { name: peer.peering_common_name.clone() });
        }
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &String) -> String {
    let list: Vec<&str> = items.iter().map(|item| name(item).as_str()).collect();
    if list.is_empty() { "none".to_string() } else { list.join(", ") }
}

fn describe_interval(interval: Option<std::time::Duration>) -> String {
    interval.map_or("never".to_string(), |every| format!("{every:?}"))
}

impl Daemon {
    /// Reloads the configuration file. Every error is logged and leaves the running setup
    /// as it was, except that the trusted CAs it names are read again.
    pub(super) fn reload(&mut self) -> bool {
        info!(file = %self.options.config.display(), "reloading the configuration");
        let prepared = read_plan(&self.options.config, &self.plan.router)
            .and_then(|new| prepare(&self.plan, new, &self.ml_kem_levels))
            .and_then(|reload| match load_trust(&reload.plan) {
                Ok(trust) => Ok((reload, trust)),
                Err(error) => Err(vec![ReloadError::Trust(error.to_string())]),
            });
        let (reload, trust) = match prepared {
            Ok(prepared) => prepared,
            Err(errors) => {
                for error in &errors {
                    error!(%error, "configuration reload rejected");
                }
                error!(
                    errors = errors.len(),
                    "configuration not reloaded; the running configuration stays in force"
                );
                self.reload_trust();
                return false;
            }
        };
        for change in &reload.restart_needed {
            warn!(%change, "configuration change needs a restart of svrd; not applied");
        }
        if reload.is_empty() {
            self.replace_trust(trust);
            info!("configuration reloaded: no change that applies while running");
            return false;
        }
        if let Err(error) = self.apply(&reload) {
            error!(%error, "configuration reload failed; the running configuration stays in force");
            return false;
        }
        self.replace_trust(trust);
        for change in &reload.changes {
            info!(%change, "configuration change applied");
        }
        info!(changes = reload.changes.len(), "configuration reloaded");
        true
    }

    /// Applies a prepared reload. Only the change of BFD sessions can fail; it is done
    /// first. When a path cannot be added to the running BFD thread, BFD restarts with the
    /// new set, and when that fails too it runs the previous paths again.
    fn apply(&mut self, reload: &Reload) -> Result<(), super::DaemonError> {
        if reload.paths_changed
            && let Err(error) = self.update_bfd_paths(&reload.plan)
        {
            warn!(%error, "cannot change the running bfd sessions; restarting bfd");
            self.restart_bfd(&reload.plan).or_else(|error| {
                let previous = self.plan.clone();
                self.restart_bfd(&previous).map_err(|again| {
                    error!(error = %again, "bfd cannot run the previous peer paths either");
                    again
                })?;
                Err(error)
            })?;
        }
        self.plan = reload.plan.clone();
        self.neighbours.plan(&self.plan, std::time::Instant::now());

        let peers = self.plan.peers.len();
        let keyring = &mut self.keyring;
        keyring.peer_metadata.resize(peers, None);
        keyring.pair_secrets.resize(peers, Vec::new());
        keyring.peer_in_service.resize(peers, false);
        keyring.path_up.resize(self.plan.paths.len(), false);
        let reset: Vec<usize> =
            reload.peers_removed.iter().chain(&reload.peers_replaced).copied().collect();
        self.certs.sync_peers(&self.plan, &reset);
        if reload.crls_changed {
            for source in self.certs.set_crls(&self.plan, self.options.crl_poll) {
                self.alarms.clear(&AlarmCause::CrlUnavailable { source });
            }
        }
        for &slot in reload.peers_removed.iter().chain(&reload.peers_replaced) {
            self.keyring.peer_metadata[slot] = None;
            self.keyring.pair_secrets[slot].clear();
            super::bfdauth::install_keys(&self.bfd, &self.plan, &self.bfd_paths, slot, &[]);
            self.keyring.peer_in_service[slot] = false;
            let name = self.plan.peers[slot].name.clone();
            self.alarms.clear(&AlarmCause::PeerUnauthenticated { peer: name.clone() });
            self.alarms.clear(&AlarmCause::PeerCertificateInvalid { peer: name });
        }
        for (index, path) in self.plan.paths.iter().enumerate() {
            if path.retired {
                self.keyring.path_up[index] = false;
            }
        }
        for &slot in &reload.bfd_changed {
            let path = &self.plan.paths[slot];
            if let Some(id) = self.bfd_paths.get(slot).copied().flatten()
                && let Err(error) = self.bfd.set_config(id, path.bfd)
            {
                warn!(%error, local = %path.local, remote = %path.remote, "cannot change bfd timers");
            }
        }

        if !self.plan.eskm {
            if self.install_classic() && reload.classic_changed {
                self.classic_key_changes += 1;
            }
            self.publish();
            return Ok(());
        }
        let now = self.now();
        let mut actions = Vec::new();
        for &slot in reload.peers_removed.iter().chain(&reload.peers_replaced) {
            actions.extend(self.kex.remove_peer(PeerId(slot as u32), now));
        }
        for &slot in reload.peers_added.iter().chain(&reload.peers_replaced) {
            let peer = &self.plan.peers[slot];
            let config = PeerConfig {
                peering_common_name: peer.peering_common_name.clone(),
                ml_kem_keygen_priority: peer.ml_kem_keygen_priority,
                algorithm: peer.algorithm,
            };
            match self.kex.add_peer(PeerId(slot as u32), config, now) {
                Ok(more) => actions.extend(more),
                Err(error) => error!(peer = %peer.name, %error, "key exchange rejected the peer"),
            }
        }
        for &slot in &reload.peers_algorithm {
            let algorithm = self.plan.peers[slot].algorithm;
            actions.extend(self.kex.set_algorithm(PeerId(slot as u32), algorithm, now));
        }
        if reload.timers_changed {
            let timers = kex::KexTimers {
                switch_delay: self.options.key_grace,
                grace: self.options.key_grace,
                ..self.plan.timers
            };
            actions.extend(self.kex.set_timers(timers, now));
        }
        self.handle(actions);
        self.publish();
        Ok(())
    }

    /// Adds a BFD session for each new path of `plan` and takes each retired path's session
    /// administratively down, leaving the sessions of unchanged paths running. A path added
    /// back after its removal gets its old session back, brought up again.
    fn update_bfd_paths(&mut self, plan: &Plan) -> Result<(), super::DaemonError> {
        let bfd_error = |e: crate::bfd::driver::DriverError| super::DaemonError::Bfd(e.to_string());
        self.bfd_paths.resize(plan.paths.len(), None);
        self.keyring.path_up.resize(plan.paths.len(), false);
        for (slot, path) in plan.paths.iter().enumerate() {
            match (path.retired, self.bfd_paths[slot]) {
                (false, None) => {
                    let id = match self.bfd_parked.iter().position(|parked| {
                        parked.local == path.local && parked.remote == path.remote
                    }) {
                        Some(index) => {
                            let parked = self.bfd_parked.swap_remove(index);
                            self.bfd.set_config(parked.id, path.bfd).map_err(bfd_error)?;
                            self.bfd.admin_up(parked.id).map_err(bfd_error)?;
                            parked.id
                        }
                        None => {
                            let mut spec =
                                PathSpec::new(Flavour::PeerPath, path.local, path.remote);
                            spec.config = path.bfd;
                            self.bfd.add_path(spec).map_err(bfd_error)?
                        }
                    };
                    self.bfd_paths[slot] = Some(id);
                    self.keyring.path_up[slot] = false;
                    // A peer added by this reload has no pair secret yet.
                    let secrets =
                        self.keyring.pair_secrets.get(path.peer).cloned().unwrap_or_default();
                    if !secrets.is_empty() {
                        super::bfdauth::install_keys(
                            &self.bfd,
                            plan,
                            &self.bfd_paths,
                            path.peer,
                            &secrets,
                        );
                    }
                }
                (true, Some(id)) => {
                    self.bfd.admin_down(id, Diagnostic::AdministrativelyDown).map_err(bfd_error)?;
                    self.bfd_paths[slot] = None;
                    self.keyring.path_up[slot] = false;
                    self.bfd_parked.push(ParkedPath { local: path.local, remote: path.remote, id });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Stops the BFD thread and starts one for the active paths of `plan`. Every path then
    /// starts down: the old thread's shutdown sends AdminDown on every session, so paths
    /// that did not change also go down until their new sessions come up.
    fn restart_bfd(&mut self, plan: &Plan) -> Result<(), super::DaemonError> {
        self.bfd_stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.bfd_thread.take() {
            let _ = thread.join();
        }
        let BfdThread { handle, paths, stop, thread } =
            start_bfd(plan, &self.control, &self.reader)?;
        self.bfd = handle;
        self.bfd_paths = paths;
        self.bfd_stop = stop;
        self.bfd_thread = Some(thread);
        self.bfd_parked.clear();
        // The key exchange hears of each path again when BFD brings it up.
        self.keyring.path_up = vec![false; plan.paths.len()];
        // The new BFD sessions authenticate with the pair keys already agreed.
        for (peer, secrets) in self.keyring.pair_secrets.iter().enumerate() {
            if !secrets.is_empty() {
                super::bfdauth::install_keys(&self.bfd, plan, &self.bfd_paths, peer, secrets);
            }
        }
        Ok(())
    }
}
