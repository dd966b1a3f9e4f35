//! The daemon's certificate duties. It polls the certificate revocation lists on a fetch
//! thread and checks peer certificates again when a list, the trusted CAs or the date
//! changes. It carries out the reaction that `invalid-certificate-behavior` sets, raises
//! the alarms on the router's own certificate, and runs `reload local certificates`.
//!
//! A peer certificate that fails when it first arrives is rejected whatever the behavior:
//! no keys are exchanged with a peer that has not authenticated. The behavior decides what
//! happens to a peering whose certificate was valid and then turns invalid:
//! - fail-soft: the alarm is raised and the peering stays. A revoked or expired certificate
//!   also stops new sessions (the peer's keys leave the key epoch); sessions whose metadata
//!   handshake is done keep running.
//! - fail-hard: the alarm is raised and the peering is removed. The keys leave the epoch, the
//!   paths go out of service, and no key-exchange message goes to or comes from the peer,
//!   except a certificate other than the rejected one. BFD keeps running.
//!
//! When a valid certificate arrives, or the rejected one turns valid again (a CRL entry
//! withdrawn, a CA added), the peering is restored and a new key exchange starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info, warn};

use super::keyring::PeerAccess;
use super::plan::{CrlPlan, Plan};
use super::{CertificateVerifier, Daemon, DaemonError, engine, load_trust};
use crate::alarm::{AlarmCause, AlarmTable};
use crate::kex::msg::{self, Body};
use crate::kex::{Action, PeerId};
use crate::mgmt::{PeerPathSecurity, Reply};
use crate::pki::crl::DEFAULT_MAX_CRL_BYTES;
use crate::pki::validate::fingerprint;
use crate::pki::{
    CrlError, CrlPoller, CrlSource, CrlUpdate, IdentityConfig, InvalidCertificateVerdict,
    OwnIdentity, PeerCertificateOutcome, PeerCertificates, PeeringAction, TrustStore,
};

/// Time one CRL fetch may take in total before it counts as failed.
pub const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the size and modification time of CRL files are compared with those last
/// read, so an edited file is read again without waiting for its polling interval.
pub const CRL_FILE_WATCH: Duration = Duration::from_secs(2);

/// How often every peer certificate and the router's own are checked again, for dates.
pub const CERTIFICATE_CHECK: Duration = Duration::from_secs(60);

/// Certificate state of one peer as the daemon acts on it.
#[derive(Debug, Clone)]
pub struct PeerCertificateState {
    /// The peer's router name, used in alarms and logs.
    pub router: String,
    /// The name its certificate must carry (its peering-common-name).
    pub expected_name: String,
    /// The certificate the key exchange accepted, which later checks run on again.
    pub certificate: Option<Vec<u8>>,
    /// Access the certificate allows.
    pub access: PeerAccess,
    /// SHA-256 of the certificate that removed the peering under fail-hard.
    pub rejected: Option<[u8; 32]>,
}

/// The certificate side of the daemon: trust, CRLs, per-peer state.
pub struct Certificates {
    /// Sources of the router's own certificate and key.
    pub identity_config: IdentityConfig,
    /// Trusted CAs, CRLs in force, the validation cache and the configured behavior.
    pub pki: PeerCertificates,
    /// Per peer, in plan order.
    pub peers: Vec<PeerCertificateState>,
    crls: Vec<CrlWatch>,
    fetcher: Option<CrlFetcher>,
    recheck: bool,
    last_check: Instant,
    last_file_watch: Instant,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("crls", &self.crls.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

/// One configured CRL and its fetch state.
struct CrlWatch {
    /// The configuration it was made from, to tell a reload what changed.
    plan: CrlPlan,
    poller: CrlPoller,
    in_flight: bool,
    stamp: Option<FileStamp>,
}

/// Size and modification time of a CRL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl CrlWatch {
    fn new(crl: &CrlPlan, crl_poll: Option<Duration>) -> Result<CrlWatch, DaemonError> {
        let source = CrlSource::parse(&crl.location).map_err(|e| {
            DaemonError::Config(format!("certificate-revocation-list {}: {e}", crl.location))
        })?;
        let interval = crl_poll.unwrap_or(crl.polling_interval);
        let poller = CrlPoller::new(source, interval, crl.backoff_interval);
        Ok(CrlWatch { plan: crl.clone(), poller, in_flight: false, stamp: None })
    }

    /// Reads the file's stamp and returns whether it differs from the one last recorded.
    fn file_changed(&mut self) -> bool {
        let CrlSource::File(path) = self.poller.source() else {
            return false;
        };
        let stamp = file_stamp(path);
        let changed = stamp.is_some() && stamp != self.stamp;
        if changed {
            self.stamp = stamp;
        }
        changed
    }
}

fn file_stamp(path: &PathBuf) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp { len: meta.len(), modified: meta.modified().ok() })
}

impl Certificates {
    /// Sets up the certificate state of `plan`. `crl_poll` replaces every CRL's polling
    /// interval, which tests shorten. The fetch thread starts when a CRL is configured.
    pub fn new(
        plan: &Plan,
        identity_config: IdentityConfig,
        trust: TrustStore,
        crl_poll: Option<Duration>,
    ) -> Result<Self, DaemonError> {
        let crls = plan
            .crls
            .iter()
            .map(|crl| CrlWatch::new(crl, crl_poll))
            .collect::<Result<Vec<_>, _>>()?;
        let fetcher = if crls.is_empty() { None } else { Some(CrlFetcher::spawn()?) };
        let peers = plan
            .peers
            .iter()
            .map(|peer| PeerCertificateState {
                router: peer.name.clone(),
                expected_name: peer.peering_common_name.clone(),
                certificate: None,
                access: PeerAccess::Full,
                rejected: None,
            })
            .collect();
        Ok(Self {
            identity_config,
            pki: PeerCertificates::new(trust, plan.invalid_certificate_behavior),
            peers,
            crls,
            fetcher,
            recheck: true,
            last_check: Instant::now(),
            last_file_watch: Instant::now(),
        })
    }

    /// Takes the results of finished CRL fetches and starts the fetches that are due.
    /// Returns whether the revoked set changed, in which case the next
    /// [`Certificates::recheck_due`] is true.
    pub fn poll_crls(&mut self, router: &str, now: SystemTime, alarms: &mut AlarmTable) -> bool {
        let mut changed = false;
        let Some(fetcher) = &self.fetcher else {
            return false;
        };
        while let Ok((index, fetched, result)) = fetcher.results.try_recv() {
            // A reload may have replaced the list since the fetch started.
            let Some(watch) = self.crls.get_mut(index).filter(|w| w.poller.source() == &fetched)
            else {
                continue;
            };
            watch.in_flight = false;
            let source = watch.poller.source().display();
            let applied = match result {
                Ok(bytes) => {
                    watch.poller.apply(now, &bytes, &mut self.pki.revocations, &self.pki.trust)
                }
                Err(error) => {
                    watch.poller.fetch_failed(now);
                    Err(error)
                }
            };
            self.pki.crl_result(router, &source, &applied, now, alarms);
            match applied {
                Ok(CrlUpdate::Updated { entries, generation }) => {
                    info!(crl = %source, entries, generation, "certificate revocation list loaded");
                    changed = true;
                }
                Ok(CrlUpdate::Unchanged) => debug!(crl = %source, "CRL unchanged"),
                Err(error) => debug!(crl = %source, %error,
                    failures = watch.poller.failures(), "CRL fetch failed; retrying later"),
            }
        }

        let watch_files = self.last_file_watch.elapsed() >= CRL_FILE_WATCH;
        if watch_files {
            self.last_file_watch = Instant::now();
        }
        for (index, watch) in self.crls.iter_mut().enumerate() {
            let file_changed = watch_files && !watch.in_flight && watch.file_changed();
            if !fetch_due(&watch.poller, watch.in_flight, file_changed, now) {
                continue;
            }
            if watch.stamp.is_none()
                && let CrlSource::File(path) = watch.poller.source()
            {
                watch.stamp = file_stamp(path);
            }
            debug!(crl = %watch.poller.source().display(), "fetching CRL");
            if fetcher.requests.send((index, watch.poller.source().clone())).is_ok() {
                watch.in_flight = true;
            } else {
                error!("CRL fetch thread stopped; CRLs are no longer refreshed");
            }
        }
        if changed {
            self.recheck = true;
        }
        changed
    }

    /// Replaces the configured CRLs with those of `plan`. A CRL whose location and
    /// intervals did not change keeps its state; a new one is fetched at once; the
    /// revocations of a removed one stop applying. Returns the display names of the
    /// removed sources, whose alarms no longer apply.
    pub fn set_crls(&mut self, plan: &Plan, crl_poll: Option<Duration>) -> Vec<String> {
        let mut old: Vec<CrlWatch> = std::mem::take(&mut self.crls);
        for crl in &plan.crls {
            if let Some(position) = old.iter().position(|watch| &watch.plan == crl) {
                self.crls.push(old.swap_remove(position));
                continue;
            }
            match CrlWatch::new(crl, crl_poll) {
                Ok(watch) => self.crls.push(watch),
                // The reload checked every location, so this is not expected.
                Err(error) => error!(%error, "certificate revocation list not added"),
            }
        }
        // In-flight fetches of moved entries report to the wrong index; they are ignored
        // there and fetched again.
        for watch in &mut self.crls {
            if watch.in_flight {
                watch.in_flight = false;
                watch.poller.due_now();
            }
        }
        let mut removed = Vec::new();
        for watch in old {
            let source = watch.poller.source().display();
            if self.pki.revocations.remove(&source) {
                info!(crl = %source, "certificate revocation list removed");
            }
            removed.push(source);
        }
        if self.fetcher.is_none() && !self.crls.is_empty() {
            match CrlFetcher::spawn() {
                Ok(fetcher) => self.fetcher = Some(fetcher),
                Err(error) => error!(%error, "CRLs are not fetched until svrd restarts"),
            }
        }
        self.recheck = true;
        removed
    }

    /// Makes every CRL due now, as `reload local certificates` does.
    pub fn fetch_all_now(&mut self) {
        for watch in &mut self.crls {
            watch.poller.due_now();
        }
    }

    /// Returns whether certificates should be checked again now: after a change, or
    /// periodically.
    pub fn recheck_due(&self) -> bool {
        self.recheck || self.last_check.elapsed() >= CERTIFICATE_CHECK
    }

    /// Requests a check of every certificate at the next loop turn.
    pub fn recheck_soon(&mut self) {
        self.recheck = true;
    }

    fn rechecked(&mut self) {
        self.recheck = false;
        self.last_check = Instant::now();
    }

    /// Checks `certificate` for peer `index`, keeping its alarm in step.
    fn check(
        &mut self,
        index: usize,
        certificate: &[u8],
        now: SystemTime,
        alarms: &mut AlarmTable,
    ) -> Option<PeerCertificateOutcome> {
        let peer = self.peers.get(index)?;
        let (router, expected) = (peer.router.clone(), peer.expected_name.clone());
        let chain = [certificate.to_vec()];
        Some(self.pki.check_peer_named(&router, &expected, &chain, now, alarms))
    }

    /// Follows a reloaded plan: peers appended to it get a fresh state, and the peers in
    /// `reset` (removed, or replaced by another router) forget their certificate, so the
    /// next exchange validates from scratch.
    pub fn sync_peers(&mut self, plan: &Plan, reset: &[usize]) {
        for (index, peer) in plan.peers.iter().enumerate() {
            let fresh = PeerCertificateState {
                router: peer.name.clone(),
                expected_name: peer.peering_common_name.clone(),
                certificate: None,
                access: PeerAccess::Full,
                rejected: None,
            };
            match self.peers.get_mut(index) {
                None => self.peers.push(fresh),
                Some(state) if reset.contains(&index) => {
                    self.pki.forget(&state.router);
                    *state = fresh;
                }
                Some(_) => {}
            }
        }
    }

    /// Returns the access of peer `index`, or full access for an unknown index.
    pub fn access(&self, index: usize) -> PeerAccess {
        self.peers.get(index).map_or(PeerAccess::Full, |p| p.access)
    }

    /// Returns whether a key-exchange message from peer `index` goes to the exchange.
    pub fn admits(&self, index: usize, bytes: &[u8]) -> bool {
        self.peers.get(index).is_none_or(|p| admits_message(p.access, p.rejected.as_ref(), bytes))
    }
}

/// Returns what a peer may do after its certificate failed with this verdict.
pub fn access_after(verdict: &InvalidCertificateVerdict) -> PeerAccess {
    match (verdict.action, verdict.new_sessions) {
        (PeeringAction::RemoveUntilValid, _) => PeerAccess::Removed,
        (PeeringAction::Keep, false) => PeerAccess::NoNewSessions,
        (PeeringAction::Keep, true) => PeerAccess::Full,
    }
}

/// Returns whether a key-exchange message from a peer goes to the exchange. A removed
/// peering takes only a certificate message whose certificate differs from `rejected`
/// (SHA-256), since only a new certificate can restore it.
pub fn admits_message(access: PeerAccess, rejected: Option<&[u8; 32]>, bytes: &[u8]) -> bool {
    if access != PeerAccess::Removed {
        return true;
    }
    match msg::decode(bytes) {
        Ok(message) => match &message.body {
            Body::Certificate { certificate } => {
                rejected.is_none_or(|fp| fingerprint(certificate) != *fp)
            }
            _ => false,
        },
        Err(_) => false,
    }
}

/// Returns whether a CRL fetch should start: none is running, and the poll schedule is due
/// or the file changed.
pub fn fetch_due(poller: &CrlPoller, in_flight: bool, file_changed: bool, now: SystemTime) -> bool {
    !in_flight && (file_changed || poller.due(now))
}

type FetchResult = (usize, CrlSource, Result<Vec<u8>, CrlError>);

/// The CRL fetch thread: one fetch at a time, each bounded by [`CRL_FETCH_TIMEOUT`], so a
/// slow or unreachable CRL server never holds up the control loop.
struct CrlFetcher {
    requests: mpsc::Sender<(usize, CrlSource)>,
    /// The index and source of each request with what the fetch returned.
    results: mpsc::Receiver<FetchResult>,
}

impl CrlFetcher {
    /// Starts the thread. It ends after its current fetch once the fetcher is dropped.
    fn spawn() -> Result<Self, DaemonError> {
        let (requests, inbox) = mpsc::channel::<(usize, CrlSource)>();
        let (outbox, results) = mpsc::channel();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("svrd-crl".into())
            .spawn(move || {
                let _entered = span.enter();
                while let Ok((index, source)) = inbox.recv() {
                    let result = source.fetch(CRL_FETCH_TIMEOUT, DEFAULT_MAX_CRL_BYTES);
                    if outbox.send((index, source, result)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DaemonError::Pki(format!("failed to start the CRL fetch thread: {e}")))?;
        Ok(Self { requests, results })
    }
}

impl Daemon {
    /// Runs the certificate duties of one loop turn. Returns whether anything the workers
    /// use changed.
    pub(super) fn poll_certificates(&mut self) -> bool {
        let now = SystemTime::now();
        self.certs.poll_crls(&self.plan.router, now, &mut self.alarms);
        if !self.certs.recheck_due() {
            return false;
        }
        self.certs.rechecked();
        self.check_own_certificate(now);
        let mut changed = false;
        for index in 0..self.certs.peers.len() {
            changed |= self.recheck_peer(index, now);
        }
        changed
    }

    /// Raises or clears the alarms on the router's own certificate: expiry, revocation and
    /// the lack of a valid signed certificate under ESKM.
    pub(super) fn check_own_certificate(&mut self, now: SystemTime) {
        self.certs.pki.evaluate_own(
            &self.identity,
            &self.plan.router,
            self.plan.eskm,
            now,
            &mut self.alarms,
        );
    }

    /// Checks the accepted certificate of peer `index` again. Returns whether its access
    /// changed.
    fn recheck_peer(&mut self, index: usize, now: SystemTime) -> bool {
        let Some(certificate) = self.certs.peers[index].certificate.clone() else {
            return false;
        };
        let access = match self.certs.check(index, &certificate, now, &mut self.alarms) {
            Some(PeerCertificateOutcome::Valid(_)) | None => PeerAccess::Full,
            Some(PeerCertificateOutcome::Invalid { verdict, .. }) => access_after(&verdict),
        };
        self.set_access(index, access, &certificate, true)
    }

    /// Validates a certificate the key exchange received, and reports the result to it.
    pub(super) fn validate(&mut self, peer: PeerId, certificate: Vec<u8>) -> Vec<Action> {
        let index = peer.0 as usize;
        let now = SystemTime::now();
        let Some(outcome) = self.certs.check(index, &certificate, now, &mut self.alarms) else {
            return Vec::new();
        };
        let kex_now = self.now();
        match outcome {
            PeerCertificateOutcome::Valid(validated) => {
                info!(peer = %self.certs.peers[index].router, subject = validated.subject(),
                    "peer certificate valid");
                self.certs.peers[index].certificate = Some(certificate.clone());
                self.set_access(index, PeerAccess::Full, &certificate, false);
                let verifier = Box::new(CertificateVerifier(validated));
                self.kex.certificate_validated(peer, &certificate, verifier, kex_now).actions
            }
            PeerCertificateOutcome::Invalid { error, verdict } => {
                // The peer moved to a certificate that fails, so the one accepted before is
                // no longer checked again: only a valid new certificate restores access. The
                // exchange still keeps the keys made before, so a restriction already in
                // force stays unless the new verdict is stricter.
                self.certs.peers[index].certificate = None;
                let access = access_after(&verdict).max(self.certs.access(index));
                self.set_access(index, access, &certificate, false);
                self.kex.certificate_rejected(peer, &certificate, &error.to_string(), kex_now)
            }
        }
    }

    /// Checks the certificate a peer went back to after presenting one that failed, and
    /// restores its access when it still checks out. Returns whether the access changed.
    pub(super) fn certificate_returned(&mut self, peer: PeerId, certificate: Vec<u8>) -> bool {
        let index = peer.0 as usize;
        let now = SystemTime::now();
        let Some(outcome) = self.certs.check(index, &certificate, now, &mut self.alarms) else {
            return false;
        };
        let access = match outcome {
            PeerCertificateOutcome::Valid(validated) => {
                info!(peer = %self.certs.peers[index].router, subject = validated.subject(),
                    "peer went back to its earlier certificate, which is valid");
                self.certs.peers[index].certificate = Some(certificate.clone());
                PeerAccess::Full
            }
            PeerCertificateOutcome::Invalid { verdict, .. } => access_after(&verdict),
        };
        self.set_access(index, access, &certificate, false)
    }

    /// Records the access of peer `index`. Returns whether it changed. When the peer gets
    /// full access back and `redo_exchange` is set, a new key exchange starts, so that no
    /// key made before the certificate failed is used again.
    fn set_access(
        &mut self,
        index: usize,
        access: PeerAccess,
        certificate: &[u8],
        redo_exchange: bool,
    ) -> bool {
        let Some(state) = self.certs.peers.get_mut(index) else {
            return false;
        };
        let old = state.access;
        state.rejected = (access == PeerAccess::Removed).then(|| fingerprint(certificate));
        if old == access {
            return false;
        }
        state.access = access;
        let router = state.router.clone();
        if let Some(slot) = self.keyring.peer_access.get_mut(index) {
            *slot = access;
        }
        match access {
            PeerAccess::Full => info!(peer = %router, "peering restored: certificate valid"),
            PeerAccess::NoNewSessions => {
                warn!(peer = %router, "no new sessions with peer: certificate invalid (fail-soft)")
            }
            PeerAccess::Removed => {
                warn!(peer = %router, "peering removed: certificate invalid (fail-hard)")
            }
        }
        if access == PeerAccess::Full && redo_exchange {
            let actions = self.kex.rekey_peer(PeerId(index as u32), self.now());
            self.handle(actions);
        }
        true
    }

    /// Shows a removed peering as waiting for a certificate, whatever the exchange holds.
    pub(super) fn mask_removed(&self, peer: usize, row: &mut PeerPathSecurity) {
        if self.certs.access(peer) != PeerAccess::Removed {
            return;
        }
        row.security_status = "CERT_EXCH".into();
        row.cert_received = false;
        row.salt_received = false;
        row.key_received = false;
    }

    /// `reload local certificates`: reads the trusted CAs and the router's own certificate
    /// again and fetches every CRL now. A new own certificate restarts the key exchange with
    /// every peer, which then authenticates the router again.
    pub(super) fn reload_certificates(&mut self, changed: &mut bool) -> Reply {
        let trust = match load_trust(&self.plan) {
            Ok(trust) => trust,
            Err(error) => {
                error!(%error, "failed to reload the trusted CAs; keeping the previous set");
                return Reply::error(format!("trusted CAs not reloaded: {error}"));
            }
        };
        let now = SystemTime::now();
        let identity = match OwnIdentity::load(&self.certs.identity_config, now) {
            Ok(identity) => identity,
            Err(error) => {
                error!(%error, "failed to reload the router's certificate; keeping the previous one");
                return Reply::error(format!("certificate not reloaded: {error}"));
            }
        };

        let trust_changed = self.certs.pki.trust.replace_with(trust);
        let replaced = identity.fingerprint() != self.identity.fingerprint();
        if replaced {
            info!(
                subject = identity.common_name(),
                self_signed = identity.is_self_signed(),
                "router certificate replaced; restarting key exchange with every peer"
            );
            self.identity = Arc::new(identity);
            // Without ESKM no exchange uses the certificate, and the keys stay.
            if self.plan.eskm {
                match self.restart_exchange() {
                    Ok(()) => *changed = true,
                    Err(error) => error!(%error, "failed to restart the key exchange"),
                }
            }
        }
        self.certs.fetch_all_now();
        self.certs.recheck_soon();
        *changed |= self.poll_certificates();
        info!(trust_changed, certificate_replaced = replaced, "local certificates reloaded");
        Reply::ok(
            format!(
                "Local certificates reloaded: trusted CAs {}, router certificate {}\n",
                if trust_changed { "changed" } else { "unchanged" },
                if replaced { "replaced" } else { "unchanged" },
            ),
            serde_json::json!({
                "trusted_cas_changed": trust_changed,
                "certificate_replaced": replaced,
                "crls": self.plan.crls.len(),
            }),
        )
    }

    /// Rebuilds the key exchange around the current identity. The new engine has a new boot
    /// id, so every peer handles it as a restart and exchanges certificates and keys again.
    /// Until then no key is published.
    fn restart_exchange(&mut self) -> Result<(), DaemonError> {
        let (engine, actions) = engine::build(
            &self.plan,
            &self.identity,
            self.ml_kem.key_pairs(),
            self.key_grace,
            self.now(),
        )?;
        self.kex = engine;
        self.next_timer = None;
        self.keyring.own.clear();
        for slot in &mut self.keyring.peer_metadata {
            *slot = None;
        }
        for secrets in &mut self.keyring.pair_secrets {
            secrets.clear();
        }
        for in_service in &mut self.keyring.peer_in_service {
            *in_service = false;
        }
        for state in &mut self.certs.peers {
            state.certificate = None;
            self.alarms.clear(&AlarmCause::PeerUnauthenticated { peer: state.router.clone() });
        }
        self.handle(actions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kex::msg::{Header, MessageKind};
    use crate::pki::{InvalidCertificateBehavior, ValidationError, decide_invalid_certificate};
    use std::path::PathBuf;

    fn revoked() -> ValidationError {
        ValidationError::Revoked { subject: "CN=r2".into(), serial: "01".into(), crl: "c".into() }
    }

    fn untrusted() -> ValidationError {
        ValidationError::Untrusted { subject: "CN=r2".into(), issuer: "CN=other".into() }
    }

    #[test]
    fn access_fail_soft_revoked_no_new_sessions() {
        let verdict =
            decide_invalid_certificate(InvalidCertificateBehavior::FailSoft, "r2", &revoked());
        assert_eq!(access_after(&verdict), PeerAccess::NoNewSessions);
    }

    #[test]
    fn access_fail_soft_untrusted_keeps_full() {
        let verdict =
            decide_invalid_certificate(InvalidCertificateBehavior::FailSoft, "r2", &untrusted());
        assert_eq!(access_after(&verdict), PeerAccess::Full);
    }

    #[test]
    fn access_fail_hard_removes() {
        for error in [revoked(), untrusted()] {
            let verdict =
                decide_invalid_certificate(InvalidCertificateBehavior::FailHard, "r2", &error);
            assert_eq!(access_after(&verdict), PeerAccess::Removed, "{error}");
        }
    }

    #[test]
    fn access_order_least_to_most_restrictive() {
        assert!(PeerAccess::Full < PeerAccess::NoNewSessions);
        assert!(PeerAccess::NoNewSessions < PeerAccess::Removed);
        let verdict =
            decide_invalid_certificate(InvalidCertificateBehavior::FailSoft, "r2", &untrusted());
        assert_eq!(
            access_after(&verdict).max(PeerAccess::NoNewSessions),
            PeerAccess::NoNewSessions
        );
    }

    fn message(body: Body) -> Vec<u8> {
        let header = Header {
            kind: match body {
                Body::Certificate { .. } => MessageKind::Certificate,
                _ => MessageKind::RekeyRequest,
            },
            sender_boot: 7,
            receiver_boot: 0,
            sequence: 1,
            exchange: 0,
        };
        msg::append_signature(msg::encode_unsigned(&header, &body), &[0u8; 64])
    }

    #[test]
    fn admits_everything_unless_removed() {
        let rekey = message(Body::RekeyRequest);
        assert!(admits_message(PeerAccess::Full, None, &rekey));
        assert!(admits_message(PeerAccess::NoNewSessions, None, &rekey));
        assert!(!admits_message(PeerAccess::Removed, None, &rekey));
    }

    #[test]
    fn admits_removed_only_new_certificate() {
        let old = b"old certificate".to_vec();
        let rejected = fingerprint(&old);
        let same = message(Body::Certificate { certificate: old });
        let new = message(Body::Certificate { certificate: b"new certificate".to_vec() });
        assert!(!admits_message(PeerAccess::Removed, Some(&rejected), &same));
        assert!(admits_message(PeerAccess::Removed, Some(&rejected), &new));
        assert!(!admits_message(PeerAccess::Removed, Some(&rejected), b"garbage"));
    }

    #[test]
    fn fetch_due_schedule() {
        let source = CrlSource::File("/nonexistent/ca.crl".into());
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut poller = CrlPoller::new(source, Duration::from_secs(3600), Duration::from_secs(60));
        assert!(fetch_due(&poller, false, false, start), "a new poller is due at once");
        assert!(!fetch_due(&poller, true, false, start), "never two fetches at once");

        poller.fetch_failed(start);
        let retry = start + Duration::from_secs(60);
        assert!(!fetch_due(&poller, false, false, retry - Duration::from_secs(1)));
        assert!(fetch_due(&poller, false, false, retry), "retried after backoff-interval");
        assert!(fetch_due(&poller, false, true, start), "a changed file is read at once");
    }

    fn with_file_crl(path: PathBuf, trust: TrustStore) -> Certificates {
        let plan = CrlPlan {
            location: path.display().to_string(),
            polling_interval: Duration::from_secs(3600),
            backoff_interval: Duration::from_secs(60),
        };
        Certificates {
            identity_config: IdentityConfig::generated("r1", std::path::Path::new("/nonexistent")),
            pki: PeerCertificates::new(trust, InvalidCertificateBehavior::FailSoft),
            peers: Vec::new(),
            crls: vec![CrlWatch::new(&plan, None).unwrap()],
            fetcher: Some(CrlFetcher::spawn().unwrap()),
            recheck: false,
            last_check: Instant::now(),
            last_file_watch: Instant::now(),
        }
    }

    /// Polls until the fetch thread has returned its result and no fetch is running, for at most 5 s.
    /// Returns whether any poll changed the revoked set.
    fn poll_until_idle(certs: &mut Certificates, now: SystemTime, alarms: &mut AlarmTable) -> bool {
        let mut changed = certs.poll_crls("r1", now, alarms);
        let start = Instant::now();
        while certs.crls[0].in_flight && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
            changed |= certs.poll_crls("r1", now, alarms);
        }
        assert!(!certs.crls[0].in_flight, "the fetch thread did not answer");
        changed
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("svrd-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A CA and a function making its CRLs listing the given serials.
    fn ca() -> (Vec<u8>, impl Fn(&[u64]) -> Vec<u8>) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
            KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "crl test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let crl = move |serials: &[u64]| {
            let now = time::OffsetDateTime::now_utc();
            let list = CertificateRevocationListParams {
                this_update: now,
                next_update: now + time::Duration::days(7),
                crl_number: SerialNumber::from(serials.len() as u64 + 1),
                issuing_distribution_point: None,
                revoked_certs: serials
                    .iter()
                    .map(|serial| RevokedCertParams {
                        serial_number: SerialNumber::from(*serial),
                        revocation_time: now,
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            list.signed_by(&Issuer::from_params(&params, &key)).unwrap().der().to_vec()
        };
        (der, crl)
    }

    #[test]
    fn poll_missing_file_raises_alarm_and_retries() {
        let dir = scratch("missing");
        let mut certs = with_file_crl(dir.join("ca.crl"), TrustStore::new());
        let mut alarms = AlarmTable::new("n1");
        let now = SystemTime::now();

        assert!(!poll_until_idle(&mut certs, now, &mut alarms));
        let cause = AlarmCause::CrlUnavailable { source: dir.join("ca.crl").display().to_string() };
        assert!(alarms.get_by_cause(&cause).is_some(), "{}", alarms.render_table());
        assert_eq!(certs.crls[0].poller.failures(), 1);
        assert!(!fetch_due(&certs.crls[0].poller, false, false, now), "retried at once");
        assert!(fetch_due(&certs.crls[0].poller, false, false, now + Duration::from_secs(60)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn poll_file_applies_then_rereads_on_change() {
        let dir = scratch("change");
        let path = dir.join("ca.crl");
        let (ca_der, crl) = ca();
        let mut trust = TrustStore::new();
        trust.add_der(ca_der).unwrap();
        std::fs::write(&path, crl(&[5])).unwrap();
        let mut certs = with_file_crl(path.clone(), trust);
        let mut alarms = AlarmTable::new("n1");
        let now = SystemTime::now();

        assert!(poll_until_idle(&mut certs, now, &mut alarms), "the first list changed nothing");
        assert!(certs.recheck_due(), "a new list must trigger a recheck");
        assert_eq!(certs.pki.revocations.lists().map(|l| l.len()).sum::<usize>(), 1);
        assert!(alarms.is_empty(), "{}", alarms.render_table());
        certs.rechecked();

        // Within the polling interval nothing is fetched, unless the file changes.
        assert!(!poll_until_idle(&mut certs, now, &mut alarms));
        std::fs::write(&path, crl(&[5, 6, 7])).unwrap();
        certs.last_file_watch = Instant::now() - CRL_FILE_WATCH;
        assert!(poll_until_idle(&mut certs, now, &mut alarms), "the edited file was not read");
        assert_eq!(certs.pki.revocations.lists().map(|l| l.len()).sum::<usize>(), 3);
        assert!(certs.recheck_due());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn poll_bad_signature_keeps_old_list() {
        let dir = scratch("forged");
        let path = dir.join("ca.crl");
        let (ca_der, crl) = ca();
        let (_, forged) = ca();
        let mut trust = TrustStore::new();
        trust.add_der(ca_der).unwrap();
        std::fs::write(&path, crl(&[5])).unwrap();
        let mut certs = with_file_crl(path.clone(), trust);
        let mut alarms = AlarmTable::new("n1");
        let now = SystemTime::now();
        assert!(poll_until_idle(&mut certs, now, &mut alarms));

        // Another key with the same CA name signs a list: it is rejected and alarmed.
        std::fs::write(&path, forged(&[5, 6])).unwrap();
        certs.last_file_watch = Instant::now() - CRL_FILE_WATCH;
        assert!(!poll_until_idle(&mut certs, now, &mut alarms));
        assert_eq!(certs.pki.revocations.lists().map(|l| l.len()).sum::<usize>(), 1);
        assert_eq!(alarms.len(), 1, "{}", alarms.render_table());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
