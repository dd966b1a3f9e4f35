//! The svrd daemon: one router of the configuration, run as a control thread (this module's
//! loop), a BFD thread, the management listener and the dataplane workers.
//!
//! The control loop owns everything slow. It feeds ESKM messages that arrive in BFD
//! metadata to the key exchange, validates peer certificates, carries out the exchange's
//! actions (messages to send, keys to install, paths to take in or out of service,
//! alarms), replies to management requests, and publishes a new key epoch to the workers
//! whenever anything they use has changed.

mod bfdauth;
mod certs;
mod classic;
mod engine;
mod keyring;
pub mod keystore;
mod links;
mod neighbours;
mod plan;
mod ports;
mod reload;
mod sys;
mod tombstones;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info, warn};

use svr_dataplane::counters::DropReason;
use svr_dataplane::epoch::{EpochPublisher, EpochReader, epoch_channel};
use svr_dataplane::forward::EngineConfig as ForwardConfig;
use svr_dataplane::group::{GroupCounters, PortReplacer, RunningGroup};
use svr_dataplane::io::afxdp::XdpAttachment;
use svr_dataplane::worker::{ControlQueues, Polling, WorkerConfig};

pub use keyring::PeerAccess;
pub use plan::{
    CrlPlan, DpdkDevice, PathPlan, PeerPlan, Plan, PlanError, PortBinding, PortPlan, RoutePlan,
    ServicePlan,
};
pub use ports::{SuppliedPort, ports_needing_dpdk, without_dpdk_message};
pub use reload::{Reload, ReloadError, prepare as prepare_reload, read_plan};

use crate::alarm::{AlarmCause, AlarmTable};
use crate::bfd::driver::{Driver, DriverHandle};
use crate::bfd::frames::{EpochLinks, FrameTransport};
use crate::bfd::{PathId, PathSpec};
use crate::config::CertificateSource;
use crate::kex::{self, Action, MessageSigner, PeerId};
use crate::mgmt::{self, Command, KeyStatus, PeerPathCertificate, PeerPathSecurity, Reply};
use crate::pki::{IdentityConfig, KeyProtection, OwnIdentity, TrustStore, ValidatedPeer};
use certs::Certificates;
use keyring::{Keyring, metadata_keys};
use keystore::MlKemKeys;
use ports::PortSource;

/// How long the control loop waits for BFD metadata before it looks at its other inputs.
const TICK: Duration = Duration::from_millis(20);

/// Longest wait at shutdown for the workers to send BFD's last packets.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(200);

/// The command-line settings of `svrd`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The authority's configuration file.
    pub config: PathBuf,
    /// The router to run, when the configuration has several.
    pub router: Option<String>,
    /// Directory of the generated certificate and key.
    pub state_dir: Option<PathBuf>,
    /// The management socket.
    pub socket: PathBuf,
    /// How long a sender keeps the old key after the new one, and a receiver the old one
    /// after the switch (30 s; tests shorten it).
    pub key_grace: Duration,
    /// TCTI of the TPM that seals the router's generated private keys (the certificate key
    /// and the ML-KEM decapsulation keys); `None` keeps them in mode-0600 files.
    pub tpm: Option<String>,
    /// Replaces the polling interval of every certificate revocation list (tests shorten
    /// it; the configuration's unit is hours).
    pub crl_poll: Option<Duration>,
}

/// Flags the signal handlers set.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// SIGTERM or SIGINT: stop.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reload the configuration file and the trusted CAs.
    pub reload: Arc<AtomicBool>,
}

/// An error that stops the daemon, at start-up or later.
#[derive(Debug)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration cannot be read or parsed, or names no router to run.
    Config(String),
    /// The configuration cannot be run as this router.
    Plan(PlanError),
    /// The router's certificate, key or trusted CAs cannot be loaded.
    Pki(String),
    /// The key exchange rejected its setup.
    Kex(String),
    /// BFD sockets could not be opened.
    Bfd(String),
    /// A dataplane port or worker could not be started.
    Dataplane(String),
    /// The management socket could not be opened.
    Management(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Config(message) => write!(f, "configuration: {message}"),
            DaemonError::Plan(error) => write!(f, "configuration: {error}"),
            DaemonError::Pki(message) => write!(f, "certificates: {message}"),
            DaemonError::Kex(message) => write!(f, "key exchange: {message}"),
            DaemonError::Bfd(message) => write!(f, "bfd: {message}"),
            DaemonError::Dataplane(message) => write!(f, "dataplane: {message}"),
            DaemonError::Management(message) => write!(f, "management socket: {message}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// Runs the router until `signals.stop` is set.
pub fn run(options: &Options, signals: &Signals) -> Result<(), DaemonError> {
    run_router(options, signals, PortSource::Configured)
}

/// Runs the router until `signals.stop` is set, over ports the caller opened in place of
/// the AF_XDP or DPDK ports of its configuration: one per device-interface of the router.
/// Everything else is as [`run`] does it. This runs several routers in one process, joined
/// by memory ports, without root or network interfaces.
pub fn run_with_ports(
    options: &Options,
    signals: &Signals,
    ports: Vec<SuppliedPort>,
) -> Result<(), DaemonError> {
    run_router(options, signals, PortSource::Supplied(ports))
}

/// Runs the router of `options` over the ports of `ports`.
fn run_router(options: &Options, signals: &Signals, ports: PortSource) -> Result<(), DaemonError> {
    let config =
        crate::config::load(&options.config).map_err(|e| DaemonError::Config(e.to_string()))?;
    let hostname = sys::hostname();
    let router = config
        .select_router(options.router.as_deref(), &hostname)
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    let plan = Plan::resolve(&config, router).map_err(DaemonError::Plan)?;
    info!(router = %plan.router, node = %plan.node, peers = plan.peers.len(), paths = plan.paths.len(), wan_mtu = plan.wan_mtu(), "starting");

    ports.check(&plan)?;

    let mut daemon = Daemon::start(options, plan, ports)?;
    let result = daemon.run(signals);
    daemon.shutdown();
    info!(router = %daemon.plan.router, "stopped");
    result
}

struct Daemon {
    options: Options,
    plan: Plan,
    /// ML-KEM parameter sets whose key pairs were made at start-up.
    ml_kem_levels: std::collections::BTreeSet<kex::MlKemLevel>,
    started: Instant,
    identity: Arc<OwnIdentity>,
    certs: Certificates,
    ml_kem: MlKemKeys,
    key_grace: Duration,
    kex: kex::Engine,
    next_timer: Option<Duration>,
    bfd: DriverHandle,
    /// Per plan path: its BFD session, or `None` for a retired path.
    bfd_paths: Vec<Option<PathId>>,
    /// Sessions of paths removed by a reload, administratively down, kept so that the
    /// path gets its session back if it is added again.
    bfd_parked: Vec<ParkedPath>,
    bfd_stop: Arc<AtomicBool>,
    bfd_thread: Option<JoinHandle<()>>,
    keyring: Keyring,
    publisher: EpochPublisher,
    worker_stop: Arc<AtomicBool>,
    worker_rotate: Arc<AtomicBool>,
    worker_thread: Option<RunningGroup>,
    counters: GroupCounters,
    port_replacer: PortReplacer,
    /// The queues between the workers and the control and BFD threads.
    control: Arc<ControlQueues>,
    /// A reader of the published key epochs, for the BFD thread's link addresses.
    reader: EpochReader,
    neighbours: neighbours::Neighbours,
    /// The XDP program of each AF_XDP port; `None` for a port without a kernel stack.
    attachments: Vec<Option<Arc<XdpAttachment>>>,
    /// EAL's runtime directory, removed at a clean stop when EAL left it empty.
    dpdk_runtime_dir: Option<PathBuf>,
    links: links::Links,
    alarms: AlarmTable,
    metadata_rekeyed_at: Instant,
    metadata_index: u32,
    /// Reloads that changed the classic-mode keys.
    classic_key_changes: u64,
    mgmt: mgmt::Server,
    requests: std::sync::mpsc::Receiver<mgmt::Pending>,
    last_payload_rekey: Instant,
}

/// The BFD session of a removed path.
#[derive(Debug, Clone, Copy)]
struct ParkedPath {
    local: std::net::IpAddr,
    remote: std::net::IpAddr,
    id: PathId,
}

/// Signs key-exchange messages with the router's certificate key.
struct IdentitySigner(Arc<OwnIdentity>);

impl MessageSigner for IdentitySigner {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).unwrap_or_else(|error| {
            // An empty signature makes the peer reject the message, and the exchange
            // retransmits it; the cause is local, so it is logged here.
            error!(%error, "cannot sign a key-exchange message");
            Vec::new()
        })
    }
}

/// Verifies a peer's key-exchange messages with its validated certificate key.
struct CertificateVerifier(ValidatedPeer);

impl kex::PeerVerifier for CertificateVerifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), kex::error::SignatureError> {
        self.0.verify(message, signature).map_err(|_| kex::error::SignatureError::Mismatch)
    }
}

impl Daemon {
    fn start(options: &Options, plan: Plan, ports: PortSource) -> Result<Daemon, DaemonError> {
        // The socket comes first: a second svrd started with the socket of a running one
        // fails here, before it touches the state directory, a port or an XDP program.
        let (mgmt, requests) = mgmt::Server::start(&options.socket)
            .map_err(|e| DaemonError::Management(e.to_string()))?;
        info!(socket = %options.socket.display(), "management socket open");

        let state_dir = options
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/svrd").join(&plan.router));
        let protection = key_protection(options)?;
        let mut identity_config = IdentityConfig::generated(&plan.peering_common_name, &state_dir);
        identity_config.protection = protection.clone();
        if let Some((certificate, key)) = &plan.certificate {
            identity_config.certificate = Some(certificate.clone());
            identity_config.private_key = Some(key.clone());
        }
        let identity = Arc::new(
            OwnIdentity::load(&identity_config, SystemTime::now())
                .map_err(|e| DaemonError::Pki(e.to_string()))?,
        );
        let trust = load_trust(&plan)?;
        if let Some((certificate, _)) = &plan.certificate {
            crate::pki::own_check::check_installed(
                &identity,
                &plan.peering_common_name,
                &trust,
                SystemTime::now(),
            )
            .map_err(|e| {
                let path = certificate.display();
                DaemonError::Pki(format!("the router's own certificate {path} is unusable: {e}"))
            })?;
        }
        info!(
            common_name = %plan.peering_common_name,
            self_signed = identity.is_self_signed(),
            trusted_cas = plan.trusted_cas.len(),
            crls = plan.crls.len(),
            tpm = options.tpm.is_some(),
            "certificate loaded"
        );

        // The ML-KEM key pairs live as long as the state directory, sealed by the TPM when
        // there is one.
        let mut rng = os_seeded_rng()?;
        let levels: std::collections::BTreeSet<_> = if plan.eskm {
            plan.peers.iter().filter_map(|p| p.algorithm.ml_kem()).collect()
        } else {
            std::collections::BTreeSet::new()
        };
        let ml_kem = levels
            .iter()
            .map(|&level| keystore::load_or_generate(&state_dir, level, &protection, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DaemonError::Pki(format!("ML-KEM key: {e}")))?;
        let ml_kem_keys = MlKemKeys::new(&ml_kem);
        let started = Instant::now();
        let (kex, pending) =
            engine::build(&plan, &identity, ml_kem, options.key_grace, Duration::ZERO)?;
        let certs = Certificates::new(&plan, identity_config, trust, options.crl_poll)?;

        let opened = ports.open(&plan)?;
        let without_kernel: Vec<bool> =
            (0..plan.ports.len()).map(|index| opened.lacks_kernel_stack(index)).collect();
        let neighbours = neighbours::Neighbours::new(&plan, without_kernel, &opened.macs);
        let ports::OpenedPorts { ports, attachments, macs, dpdk_runtime_dir } = opened;
        let mut keyring = Keyring::new(&plan, macs);
        let (publisher, reader) = epoch_channel(keyring.epoch(&plan));
        let links = links::Links::new(
            attachments.iter().map(|attachment| attachment.as_ref().map(|a| a.ifindex())).collect(),
        );
        let worker_config = WorkerConfig {
            engine: ForwardConfig {
                rotation_grace: options.key_grace,
                wan_mtu: plan.wan_mtu(),
                ..ForwardConfig::default()
            },
            polling: if plan.busy_polling {
                Polling::Busy
            } else {
                Polling::Adaptive { empty_polls: 64, sleep: Duration::from_millis(1) }
            },
            ..WorkerConfig::default()
        };
        let workers::Workers {
            stop: worker_stop,
            rotate: worker_rotate,
            counters,
            port_replacer,
            control,
            running,
        } = workers::start_workers(worker_config, &plan.worker_cores, ports, &reader)?;
        let worker_thread = Some(running);

        let BfdThread { handle: bfd, paths: bfd_paths, stop: bfd_stop, thread: bfd_thread } =
            start_bfd(&plan, &control, &reader)?;

        let mut daemon = Daemon {
            options: options.clone(),
            ml_kem_levels: levels,
            alarms: AlarmTable::new(&plan.node),
            plan,
            started,
            identity,
            certs,
            ml_kem: ml_kem_keys,
            key_grace: options.key_grace,
            kex,
            next_timer: None,
            bfd,
            bfd_paths,
            bfd_parked: Vec::new(),
            bfd_stop,
            bfd_thread: Some(bfd_thread),
            keyring,
            publisher,
            worker_stop,
            worker_rotate,
            worker_thread,
            counters,
            port_replacer,
            control,
            reader,
            neighbours,
            attachments,
            dpdk_runtime_dir,
            links,
            metadata_rekeyed_at: Instant::now(),
            metadata_index: 0,
            classic_key_changes: 0,
            mgmt,
            requests,
            last_payload_rekey: Instant::now(),
        };
        if daemon.plan.eskm {
            daemon.handle(pending);
        } else {
            daemon.install_classic();
        }
        daemon.poll_neighbours();
        daemon.publish();
        Ok(daemon)
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn run(&mut self, signals: &Signals) -> Result<(), DaemonError> {
        while !signals.stop.load(Ordering::Relaxed) {
            let mut changed = false;

            if let Some((path, bytes)) = self.bfd.recv_metadata(TICK) {
                changed |= self.receive(path, &bytes);
                while let Some((path, bytes)) = self.bfd.recv_metadata(Duration::ZERO) {
                    changed |= self.receive(path, &bytes);
                }
            }

            changed |= self.poll_links();
            changed |= self.poll_paths();

            let now = self.now();
            if self.next_timer.is_some_and(|at| at <= now) {
                self.next_timer = None;
                let actions = self.kex.on_timer(now);
                changed |= self.handle(actions);
            }

            while let Ok((command, reply)) = self.requests.try_recv() {
                let answer = self.command(command, &mut changed);
                let _ = reply.send(answer);
            }

            changed |= self.poll_neighbours();

            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }

            changed |= self.poll_certificates();
            changed |= self.poll_rotation_requests();

            // payload-key-rekey-interval: the workers rotate every session's payload key.
            if self
                .plan
                .payload_rekey_interval
                .is_some_and(|every| self.last_payload_rekey.elapsed() >= every)
            {
                self.last_payload_rekey = Instant::now();
                info!("payload keys of all sessions rotating");
                self.worker_rotate.store(true, Ordering::Relaxed);
            }

            if changed {
                self.publish();
            }
        }
        Ok(())
    }

    /// Hands a message from a peer path to the key exchange; returns whether anything the
    /// workers use changed.
    fn receive(&mut self, path: PathId, bytes: &[u8]) -> bool {
        let Some(index) = self.bfd_paths.iter().position(|p| *p == Some(path)) else {
            return false;
        };
        let peer = self.plan.paths[index].peer;
        if !self.plan.eskm {
            debug!(peer = %self.plan.peers[peer].name, "key-exchange message ignored: ESKM is off");
            return false;
        }
        if !self.certs.admits(peer, bytes) {
            debug!(peer = %self.plan.peers[peer].name, "key-exchange message dropped: peering removed");
            return false;
        }
        let receipt = self.kex.receive(PeerId(peer as u32), bytes, self.now());
        if let Err(error) = &receipt.result {
            debug!(peer = %self.plan.peers[peer].name, %error, "key-exchange message rejected");
        }
        self.handle(receipt.actions)
    }

    /// Carries out the key exchange's actions; returns whether anything the workers use
    /// changed. Without ESKM the keys come from the security policies, so actions are
    /// ignored.
    fn handle(&mut self, actions: Vec<Action>) -> bool {
        if !self.plan.eskm {
            return false;
        }
        let mut changed = false;
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send { peer, bytes } => self.send(peer, bytes),
                Action::ArmTimer { at } => self.next_timer = Some(at),
                Action::ValidateCertificate { peer, certificate } => {
                    queue.extend(self.validate(peer, certificate));
                }
                Action::CertificateReturned { peer, certificate } => {
                    changed |= self.certificate_returned(peer, certificate);
                }
                Action::SealTowardsPeer { peer, key } => {
                    if let Some(slot) = self.keyring.peer_metadata.get_mut(peer.0 as usize) {
                        *slot = key.as_ref().map(metadata_keys);
                        changed = true;
                    }
                }
                Action::OpenKeys { keys } => {
                    self.keyring.own = keys.iter().map(metadata_keys).collect();
                    let index = self.kex.metadata_key_index();
                    if index != self.metadata_index {
                        info!(index, "metadata key installed");
                        self.metadata_index = index;
                        self.metadata_rekeyed_at = Instant::now();
                    }
                    changed = true;
                }
                Action::PathService { peer, in_service } => {
                    if let Some(slot) = self.keyring.peer_in_service.get_mut(peer.0 as usize) {
                        if *slot != in_service {
                            info!(peer = %self.plan.peers[peer.0 as usize].name, in_service, "peer paths");
                        }
                        *slot = in_service;
                        changed = true;
                    }
                }
                Action::Alarm { peer, kind, raised, detail } => {
                    self.alarm(peer, kind, raised, &detail)
                }
            }
        }
        changed | self.refresh_pair_secrets()
    }

    /// Sends a key-exchange message on the first path to the peer that BFD has up, or on
    /// every path when none is.
    fn send(&mut self, peer: PeerId, bytes: Vec<u8>) {
        if self.certs.access(peer.0 as usize) == PeerAccess::Removed {
            return;
        }
        let paths: Vec<usize> = (0..self.plan.paths.len())
            .filter(|&i| self.plan.paths[i].peer == peer.0 as usize && !self.plan.paths[i].retired)
            .collect();
        let up = paths.iter().copied().find(|&i| self.keyring.path_up[i]);
        let targets = match up {
            Some(path) => vec![path],
            None => paths,
        };
        for path in targets {
            let Some(id) = self.bfd_paths.get(path).copied().flatten() else {
                continue;
            };
            if let Err(error) = self.bfd.send_metadata(id, bytes.clone()) {
                warn!(%error, "cannot queue a key-exchange message");
            }
        }
    }

    fn alarm(&mut self, peer: PeerId, kind: kex::AlarmKind, raised: bool, detail: &str) {
        let Some(router) = self.plan.peers.get(peer.0 as usize).map(|p| p.name.clone()) else {
            return;
        };
        // A rejected certificate has its own alarm, raised where it was validated.
        if kind == kex::AlarmKind::CertificateRejected {
            return;
        }
        let cause = AlarmCause::PeerUnauthenticated { peer: router.clone() };
        if raised {
            warn!(peer = %router, ?kind, detail, "alarm raised");
            let spec = crate::alarm::peer_unauthenticated(&router, detail);
            self.alarms.raise(cause, spec, SystemTime::now());
        } else {
            self.alarms.clear(&cause);
        }
    }

    /// Re-derives the pair secrets of every peer; returns whether any changed.
    fn refresh_pair_secrets(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.plan.peers.len() {
            let secrets = self.kex.pair_secrets(PeerId(index as u32));
            let old = &self.keyring.pair_secrets[index];
            let same =
                old.len() == secrets.len() && old.iter().zip(&secrets).all(|(a, b)| **a == **b);
            if !same {
                bfdauth::install_keys(&self.bfd, &self.plan, &self.bfd_paths, index, &secrets);
                self.keyring.pair_secrets[index] = secrets;
                changed = true;
            }
        }
        changed
    }

    /// Follows BFD's view of each path; returns whether any path changed.
    fn poll_paths(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.bfd_paths.len() {
            let Some(id) = self.bfd_paths[index] else {
                continue;
            };
            // A path whose port lost its interface stays down at once, without waiting for
            // BFD's detection time to pass.
            let port = self.plan.paths[index].port;
            let up = self.bfd.is_up(id) && self.links.is_bound(port);
            if up == self.keyring.path_up[index] {
                continue;
            }
            self.keyring.path_up[index] = up;
            changed = true;
            let path = &self.plan.paths[index];
            let peer = &self.plan.peers[path.peer];
            if up {
                info!(peer = %peer.name, local = %path.local, remote = %path.remote, "peer path up");
            } else {
                warn!(peer = %peer.name, local = %path.local, remote = %path.remote, "peer path down");
            }
            let actions = self.kex.interface_changed(PeerId(path.peer as u32), self.now());
            self.handle(actions);
        }
        changed
    }

    fn publish(&mut self) {
        let epoch = self.keyring.epoch(&self.plan);
        debug!(generation = epoch.generation, "key epoch published");
        self.publisher.publish(epoch);
    }

    /// Puts `trust` in force, and has every certificate checked again when it differs.
    fn replace_trust(&mut self, trust: TrustStore) {
        if self.certs.pki.trust.replace_with(trust) {
            self.certs.recheck_soon();
        }
    }

    fn reload_trust(&mut self) {
        match load_trust(&self.plan) {
            Ok(trust) => {
                self.replace_trust(trust);
                info!("trusted CAs reloaded");
            }
            Err(error) => error!(%error, "cannot reload trusted CAs; keeping the previous set"),
        }
    }

    fn command(&mut self, command: Command, changed: &mut bool) -> Reply {
        let began = Instant::now();
        match command {
            Command::ShowPeersSecurity => {
                let rows = self.peer_rows();
                let text = mgmt::render_peers_security(&rows, began.elapsed());
                Reply::ok(text, serde_json::to_value(&rows).unwrap_or_default())
            }
            Command::ShowPeersCertificate => {
                let rows = self.certificate_rows();
                let text = mgmt::render_peers_certificate(&rows, began.elapsed());
                Reply::ok(text, serde_json::to_value(&rows).unwrap_or_default())
            }
            Command::ShowKeyStatus if !self.plan.eskm => {
                let status = self.classic_key_status();
                let text = mgmt::render_key_status(std::slice::from_ref(&status), began.elapsed());
                Reply::ok(text, serde_json::to_value([&status]).unwrap_or_default())
            }
            Command::ShowKeyStatus => {
                let status = KeyStatus {
                    node: format!("{}.{}", self.plan.node, self.plan.router),
                    key_manager_state: "Inactive".into(),
                    rekey_index: 1,
                    key_change_count: 0,
                    config_key_change_count: 0,
                    metadata_rekey_index: self.kex.metadata_key_index(),
                    metadata_last_rekey_secs: self.metadata_rekeyed_at.elapsed().as_secs(),
                    metadata_next_rekey_secs: self.plan.timers.rekey_interval.map(|every| {
                        every.saturating_sub(self.metadata_rekeyed_at.elapsed()).as_secs()
                    }),
                    metadata_key_manager_state: if self.plan.eskm {
                        "Active Leader"
                    } else {
                        "Inactive"
                    }
                    .into(),
                };
                let text = mgmt::render_key_status(std::slice::from_ref(&status), began.elapsed());
                Reply::ok(text, serde_json::to_value([&status]).unwrap_or_default())
            }
            Command::RotateMetadataKey if !self.plan.eskm => Reply::error(
                "metadata keys cannot be rotated with enhanced-security-key-management false: \
                 they come from the security policies, so change the policy's keys on every \
                 router and reload"
                    .to_string(),
            ),
            Command::RotateMetadataKey => {
                let actions = self.kex.rotate_metadata_key(self.now());
                *changed |= self.handle(actions);
                let index = self.kex.metadata_key_index();
                info!(index, "metadata key rotated on request");
                Reply::ok(
                    format!("Metadata key rotated: new index {index}\n"),
                    serde_json::json!({ "index": index }),
                )
            }
            Command::RotatePayloadKeys => {
                // The workers start the rotations at their next burst; the interval's
                // schedule counts from this request.
                self.last_payload_rekey = Instant::now();
                self.worker_rotate.store(true, Ordering::Relaxed);
                info!("payload keys of all sessions rotating on request");
                Reply::ok(
                    "Payload-key rotation requested for every session this router started\n"
                        .to_string(),
                    serde_json::json!({ "requested": true }),
                )
            }
            Command::ShowAlarms => Reply::ok(self.alarms.render_table(), self.alarms.to_json()),
            Command::ShowAlarm { id } => {
                let Ok(parsed) = id.parse() else {
                    return Reply::error(format!("alarm id {id}: expected <node>:<number>"));
                };
                match (self.alarms.render_detail(&parsed), self.alarms.detail_json(&parsed)) {
                    (Some(text), Some(json)) => Reply::ok(text, json),
                    _ => Reply::error(format!("no alarm with id {id}")),
                }
            }
            Command::ShowStats => self.stats(),
            Command::ReloadCertificates => self.reload_certificates(changed),
        }
    }

    fn peer_rows(&self) -> Vec<PeerPathSecurity> {
        self.plan
            .paths
            .iter()
            .enumerate()
            .filter(|(_, path)| !path.retired)
            .map(|(index, path)| {
                let peer = &self.plan.peers[path.peer];
                let snapshot = self.kex.snapshot(PeerId(path.peer as u32));
                let mut row = PeerPathSecurity {
                    peer: peer.name.clone(),
                    node: self.plan.node.clone(),
                    network_interface: self.plan.ports[path.port].network_interface.clone(),
                    destination: path.remote.to_string(),
                    status: if self.keyring.path_up[index] { "up" } else { "down" }.into(),
                    hostname: None,
                    path_mtu: None,
                    security_status: snapshot
                        .as_ref()
                        .map_or("ESKM_DISABLED".into(), |s| s.status.to_string()),
                    salt: snapshot.as_ref().map_or(0, |s| s.salt),
                    peer_salt: snapshot.as_ref().map_or(0, |s| s.peer_salt),
                    key_index: snapshot.as_ref().map_or(0, |s| s.key_index),
                    peer_key_index: snapshot.as_ref().map_or(0, |s| s.peer_key_index),
                    cert_received: snapshot.as_ref().is_some_and(|s| s.cert_rec),
                    cert_acknowledged: snapshot.as_ref().is_some_and(|s| s.cert_ack),
                    salt_received: snapshot.as_ref().is_some_and(|s| s.salt_rec),
                    salt_acknowledged: snapshot.as_ref().is_some_and(|s| s.salt_ack),
                    key_received: snapshot.as_ref().is_some_and(|s| s.key_rec),
                    key_acknowledged: snapshot.as_ref().is_some_and(|s| s.key_ack),
                };
                self.mask_removed(path.peer, &mut row);
                if !self.plan.eskm {
                    self.classic_row(path, &mut row);
                }
                row
            })
            .collect()
    }

    fn certificate_rows(&self) -> Vec<PeerPathCertificate> {
        let local = sys::pem("CERTIFICATE", self.identity.certificate_der());
        self.plan
            .paths
            .iter()
            .enumerate()
            .filter(|(_, path)| !path.retired)
            .map(|(index, path)| PeerPathCertificate {
                local_router: self.plan.router.clone(),
                peer: self.plan.peers[path.peer].name.clone(),
                node: self.plan.node.clone(),
                network_interface: self.plan.ports[path.port].network_interface.clone(),
                destination: path.remote.to_string(),
                status: if self.keyring.path_up[index] { "up" } else { "down" }.into(),
                hostname: None,
                path_mtu: None,
                local_certificate: local.clone(),
                peer_certificate: self.certs.peers[path.peer]
                    .certificate
                    .as_deref()
                    .map(|der| sys::pem("CERTIFICATE", der)),
            })
            .collect()
    }

    fn stats(&self) -> Reply {
        let drops: Vec<(&str, u64)> = DropReason::ALL
            .iter()
            .map(|&reason| (reason.name(), self.counters.drops(reason)))
            .collect();
        let forwarding = [
            ("ingress_forwarded", self.counters.ingress_forwarded()),
            ("egress_forwarded", self.counters.egress_forwarded()),
            ("transit_forwarded", self.counters.transit_forwarded()),
            ("sessions_created", self.counters.sessions_created()),
            ("rotations_started", self.counters.rotations_started()),
            ("key_switches", self.counters.key_switches()),
            ("tombstones_forgotten", self.counters.tombstones_forgotten()),
            ("punted", self.counters.punted()),
        ];
        let bfd = self.bfd.counters();
        let malformed = bfd.truncated
            + bfd.bad_version
            + bfd.length_too_short
            + bfd.length_exceeds_datagram
            + bfd.zero_detect_mult
            + bfd.multipoint_set
            + bfd.zero_my_discriminator
            + bfd.zero_your_discriminator
            + bfd.authentication_unsupported;
        let bfd_drops = [
            ("malformed", malformed),
            ("ttl_not_255", bfd.ttl_not_255),
            ("unknown_discriminator", bfd.unknown_discriminator),
            ("no_session", bfd.no_session),
            ("source_mismatch", bfd.source_mismatch),
            ("metadata_rejected", bfd.metadata_rejected),
            ("auth_missing", bfd.auth_missing),
            ("auth_bad", bfd.auth_bad),
        ];
        let neighbours = self.neighbours.counters().named();
        let (text, json) = mgmt::render_stats(&mgmt::StatsCounters {
            drops: &drops,
            forwarding: &forwarding,
            bfd_drops: &bfd_drops,
            neighbours: &neighbours,
            resolves_neighbours: self.neighbours.resolves_any(),
        });
        Reply::ok(text, json)
    }

    /// Stops BFD, which tells the peers with AdminDown, then the workers once they have
    /// sent those packets.
    fn shutdown(&mut self) {
        self.bfd_stop.store(true, Ordering::Relaxed);
        if let Some(bfd) = self.bfd_thread.take() {
            let _ = bfd.join();
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while !self.control.to_send.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.worker_stop.store(true, Ordering::Relaxed);
        if let Some(workers) = self.worker_thread.take() {
            workers.join();
        }
        if let Some(dir) = &self.dpdk_runtime_dir {
            ports::remove_runtime_dir(dir);
        }
        let _ = self.mgmt.path();
    }
}

/// A ChaCha-based CSPRNG seeded from the operating system, for the key exchange.
fn os_seeded_rng() -> Result<rand::rngs::StdRng, DaemonError> {
    use rand::SeedableRng;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| DaemonError::Kex(format!("system random number generator: {e}")))?;
    Ok(rand::rngs::StdRng::from_seed(seed))
}

/// Returns where generated private keys are kept: sealed by the TPM of `--tpm`, or in files.
fn key_protection(options: &Options) -> Result<KeyProtection, DaemonError> {
    match &options.tpm {
        None => Ok(KeyProtection::File),
        #[cfg(feature = "tpm")]
        Some(tcti) => Ok(KeyProtection::Tpm { tcti: tcti.clone() }),
        #[cfg(not(feature = "tpm"))]
        Some(_) => Err(DaemonError::Pki(
            "a TPM is configured but svrd was built without the tpm feature".into(),
        )),
    }
}

fn load_trust(plan: &Plan) -> Result<TrustStore, DaemonError> {
    let mut trust = TrustStore::new();
    for source in &plan.trusted_cas {
        let (bytes, origin) = match source {
            CertificateSource::File(path) => (
                std::fs::read(path).map_err(|e| DaemonError::Pki(format!("{path}: {e}")))?,
                path.as_str(),
            ),
            CertificateSource::Content(text) => (text.clone().into_bytes(), "inline CA content"),
        };
        trust.add_certificates(&bytes).map_err(|e| DaemonError::Pki(format!("{origin}: {e}")))?;
    }
    Ok(trust)
}

/// The BFD thread and what the control loop keeps of it.
struct BfdThread {
    handle: DriverHandle,
    paths: Vec<Option<PathId>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts the BFD thread for the active paths of `plan`. It runs over the workers: they
/// punt BFD packets into `control` and send the frames it queues there, addressed with the
/// epochs `reader` reads.
fn start_bfd(
    plan: &Plan,
    control: &Arc<ControlQueues>,
    reader: &EpochReader,
) -> Result<BfdThread, DaemonError> {
    let specs: Vec<PathSpec> = plan
        .paths
        .iter()
        .filter(|path| !path.retired)
        .map(|path| {
            let mut spec = PathSpec::new(crate::bfd::Flavour::PeerPath, path.local, path.remote);
            spec.config = path.bfd;
            spec
        })
        .collect();
    let links = Box::new(EpochLinks::new(reader.clone()));
    let transport = Box::new(FrameTransport::new(Arc::clone(control), links));
    let (mut driver, handle) =
        Driver::with_transport(specs, transport).map_err(|e| DaemonError::Bfd(e.to_string()))?;
    // The driver numbers the sessions of active paths in plan order.
    let mut next = 0;
    let ids = plan
        .paths
        .iter()
        .map(|path| {
            (!path.retired).then(|| {
                next += 1;
                PathId(next - 1)
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name("svrd-bfd".into())
        .spawn(move || {
            let _entered = span.enter();
            if let Err(error) = driver.run(&thread_stop) {
                error!(%error, "bfd stopped");
            }
            driver.shutdown();
        })
        .map_err(|e| DaemonError::Bfd(e.to_string()))?;
    Ok(BfdThread { handle, paths: ids, stop, thread })
}
