//! A session's payload keys across rotations.
//!
//! Rotation timing (`docs/protocol.md` section 6): a receiver accepts a new key as soon as
//! it has it; a sender keeps sealing with the old key for a grace time after the new one
//! exists, then switches; the old key is still accepted for a grace time after the
//! switch. The ingress makes the next key (key id + 1); the egress learns it from forward
//! metadata and switches its own sending one grace time after it received it.

use std::fmt;
use std::time::{Duration, Instant};

use crate::counters::DropReason;
use crate::crypto::{CryptoError, KeyId, PayloadKeyTlv, PayloadSecret, SessionKeys, Suite};

/// The keys of one session: the one sealing outgoing packets, and during a rotation the
/// next or previous generation.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct PayloadKeys {
    current: SessionKeys,
    /// Boxed because rotations are rare and each generation of keys is about 500 bytes;
    /// the box is allocated when a rotation starts and freed when it ends.
    rotation: Option<Box<Rotation>>,
}

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone))]
struct Rotation {
    /// The next keys and when sending switches to them.
    next: Option<(SessionKeys, Instant)>,
    /// The keys replaced by the last switch and until when they are accepted.
    previous: Option<(SessionKeys, Instant)>,
}

impl PayloadKeys {
    /// Keys with `current` as the only generation.
    pub fn new(current: SessionKeys) -> PayloadKeys {
        PayloadKeys { current, rotation: None }
    }

    /// The keys that seal outgoing packets.
    pub fn sending(&self) -> &SessionKeys {
        &self.current
    }

    /// The keys that open a received packet sealed under `key_id`, if still held.
    pub fn receiving(&self, key_id: KeyId) -> Option<&SessionKeys> {
        if self.current.key_id() == key_id {
            return Some(&self.current);
        }
        let rotation = self.rotation.as_deref()?;
        [&rotation.next, &rotation.previous]
            .into_iter()
            .flatten()
            .map(|(keys, _)| keys)
            .find(|keys| keys.key_id() == key_id)
    }

    /// Returns the drop reason for a packet under `key_id` when no held key has that id.
    /// The id after the current one and the two before it are ids that a rotation makes
    /// and retires, so they give `NoKey`. Any other id gives `UnknownKeyId`.
    ///
    /// NOTE: the window does not track how many rotations the session had, so on a session
    /// that never rotated the two ids before the current one also give `NoKey`.
    pub fn missing_key_reason(&self, key_id: KeyId) -> DropReason {
        let current = self.current.key_id();
        let recent = [current.wrapping_add(1), current.wrapping_sub(1), current.wrapping_sub(2)];
        if recent.contains(&key_id) { DropReason::NoKey } else { DropReason::UnknownKeyId }
    }

    /// Whether a next generation is waiting for its switch.
    pub fn switch_pending(&self) -> bool {
        self.rotation.as_deref().is_some_and(|rotation| rotation.next.is_some())
    }

    /// Whether any rotation state is held.
    pub fn rotating(&self) -> bool {
        self.rotation.is_some()
    }

    /// Starts a rotation on the ingress: makes a fresh secret with the next key id, accepts
    /// it at once and switches sending to it `grace` after `now`. Returns the payload-key
    /// TLV value to send in forward metadata.
    pub fn start_rotation(
        &mut self,
        now: Instant,
        grace: Duration,
    ) -> Result<PayloadKeyTlv, RotationError> {
        if self.switch_pending() {
            return Err(RotationError::InProgress { key_id: self.current.key_id() });
        }
        let tlv = PayloadKeyTlv {
            suite: self.current.suite(),
            key_id: self.current.key_id().wrapping_add(1),
            secret: PayloadSecret::generate().map_err(RotationError::Random)?,
        };
        self.set_next(tlv.session_keys(), now + grace);
        Ok(tlv)
    }

    /// Installs a key learned from the peer's metadata on the egress. A key with the next
    /// key id is accepted at once and used for sending `grace` after `now`; returns whether
    /// it was new. Keys already held, and key ids other than the next, are ignored.
    pub fn install_from_peer(
        &mut self,
        tlv: &PayloadKeyTlv,
        now: Instant,
        grace: Duration,
    ) -> bool {
        if self.receiving(tlv.key_id).is_some() {
            return false;
        }
        if tlv.key_id != self.current.key_id().wrapping_add(1) || self.switch_pending() {
            return false;
        }
        self.set_next(tlv.session_keys(), now + grace);
        true
    }

    /// Switches sending to the pending next keys at once when the peer sends a key with
    /// `key_id`, the id after theirs. The ingress starts a rotation only after its switch to
    /// the previous rotation's keys, so it already seals with the keys pending here, and
    /// [`PayloadKeys::install_from_peer`] can then take the new key as the next one.
    /// Returns whether sending switched.
    pub fn catch_up(&mut self, key_id: KeyId, now: Instant, grace: Duration) -> bool {
        let Some(rotation) = self.rotation.as_deref_mut() else {
            return false;
        };
        let Some((next, switch_at)) = rotation.next.as_mut() else {
            return false;
        };
        if next.key_id().wrapping_add(1) != key_id {
            return false;
        }
        *switch_at = now;
        self.advance(now, grace)
    }

    /// Applies the rotation timers at `now`: switches sending to the next keys when due, and
    /// drops previous keys whose grace time has passed. Returns whether sending switched.
    pub fn advance(&mut self, now: Instant, grace: Duration) -> bool {
        let Some(rotation) = self.rotation.as_deref_mut() else {
            return false;
        };
        let mut switched = false;
        if rotation.next.as_ref().is_some_and(|(_, at)| *at <= now)
            && let Some((next, _)) = rotation.next.take()
        {
            let old = std::mem::replace(&mut self.current, next);
            rotation.previous = Some((old, now + grace));
            switched = true;
        }
        if rotation.previous.as_ref().is_some_and(|(_, until)| *until <= now) {
            rotation.previous = None;
        }
        if rotation.next.is_none() && rotation.previous.is_none() {
            self.rotation = None;
        }
        switched
    }

    fn set_next(&mut self, keys: SessionKeys, switch_at: Instant) {
        let rotation = self.rotation.get_or_insert_with(Box::default);
        rotation.next = Some((keys, switch_at));
    }
}

/// The suite every session uses.
pub const SESSION_SUITE: Suite = Suite::AesCbc256HmacSha384;

/// Why a rotation could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum RotationError {
    /// A rotation to the next key id is still waiting for its switch.
    InProgress { key_id: KeyId },
    /// The operating system's random generator failed.
    Random(CryptoError),
}

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationError::InProgress { key_id } => {
                write!(f, "payload key rotation from key id {key_id} still in progress")
            }
            RotationError::Random(_) => f.write_str("failed to generate a payload secret"),
        }
    }
}

impl std::error::Error for RotationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RotationError::Random(error) => Some(error),
            RotationError::InProgress { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(50);

    fn keys(key_id: KeyId, byte: u8) -> SessionKeys {
        SessionKeys::derive(SESSION_SUITE, key_id, &PayloadSecret::from_bytes([byte; 32]))
    }

    #[test]
    fn rotation_timeline() {
        let start = Instant::now();
        let mut ingress = PayloadKeys::new(keys(0, 1));
        let tlv = ingress.start_rotation(start, GRACE).unwrap();
        assert_eq!(tlv.key_id, 1);

        // The new key is accepted at once, but sending stays on the old one.
        assert!(ingress.receiving(1).is_some());
        assert_eq!(ingress.sending().key_id(), 0);
        assert!(!ingress.advance(start + GRACE / 2, GRACE));
        assert_eq!(ingress.sending().key_id(), 0);

        // After the grace time sending switches, and the old key is still accepted.
        assert!(ingress.advance(start + GRACE, GRACE));
        assert_eq!(ingress.sending().key_id(), 1);
        assert!(ingress.receiving(0).is_some());

        // One grace time after the switch the old key is gone.
        ingress.advance(start + GRACE * 2, GRACE);
        assert!(ingress.receiving(0).is_none());
        assert!(!ingress.rotating());
    }

    #[test]
    fn rotation_refused_while_pending() {
        let start = Instant::now();
        let mut keys = PayloadKeys::new(keys(3, 1));
        keys.start_rotation(start, GRACE).unwrap();
        let error = keys.start_rotation(start, GRACE).unwrap_err();
        assert!(matches!(error, RotationError::InProgress { key_id: 3 }), "{error}");
    }

    #[test]
    fn peer_key_installed_once() {
        let start = Instant::now();
        let mut egress = PayloadKeys::new(keys(0, 1));
        let tlv = PayloadKeyTlv {
            suite: SESSION_SUITE,
            key_id: 1,
            secret: PayloadSecret::from_bytes([2; 32]),
        };
        assert!(egress.install_from_peer(&tlv, start, GRACE));
        assert!(!egress.install_from_peer(&tlv, start, GRACE));
        assert!(egress.receiving(1).is_some());
        assert_eq!(egress.sending().key_id(), 0);
        assert!(egress.advance(start + GRACE, GRACE));
        assert_eq!(egress.sending().key_id(), 1);
    }

    #[test]
    fn peer_key_after_pending_switches_first() {
        let start = Instant::now();
        let mut egress = PayloadKeys::new(keys(0, 1));
        let tlv = |key_id, byte| PayloadKeyTlv {
            suite: SESSION_SUITE,
            key_id,
            secret: PayloadSecret::from_bytes([byte; 32]),
        };
        assert!(egress.install_from_peer(&tlv(1, 2), start, GRACE));

        // Key 2 arrives before the switch to key 1 was due here: the switch happens now,
        // key 0 stays accepted for the grace time, and key 2 becomes the next.
        let early = start + GRACE / 2;
        assert!(!egress.catch_up(1, early, GRACE), "key 1 is the pending one itself");
        assert!(!egress.install_from_peer(&tlv(2, 3), early, GRACE), "refused while pending");
        assert!(egress.catch_up(2, early, GRACE));
        assert_eq!(egress.sending().key_id(), 1);
        assert!(egress.install_from_peer(&tlv(2, 3), early, GRACE));
        for key_id in [0, 1, 2] {
            assert!(egress.receiving(key_id).is_some(), "key {key_id} accepted");
        }
        assert!(!egress.catch_up(2, early, GRACE), "key 2 is the pending one now");

        assert!(egress.advance(early + GRACE, GRACE));
        assert_eq!(egress.sending().key_id(), 2);
        assert!(egress.receiving(0).is_none(), "key 0 retired one grace time after the switch");
    }

    #[test]
    fn catch_up_without_rotation_does_nothing() {
        let mut keys = PayloadKeys::new(keys(4, 1));
        assert!(!keys.catch_up(5, Instant::now(), GRACE));
        assert!(!keys.catch_up(6, Instant::now(), GRACE));
        assert_eq!(keys.sending().key_id(), 4);
    }

    #[test]
    fn peer_key_skipping_ids_ignored() {
        let mut egress = PayloadKeys::new(keys(0, 1));
        let tlv = PayloadKeyTlv {
            suite: SESSION_SUITE,
            key_id: 5,
            secret: PayloadSecret::from_bytes([2; 32]),
        };
        assert!(!egress.install_from_peer(&tlv, Instant::now(), GRACE));
        assert!(egress.receiving(5).is_none());
    }

    #[test]
    fn missing_key_reason_by_distance() {
        let held = PayloadKeys::new(keys(10, 1));
        assert_eq!(held.missing_key_reason(11), DropReason::NoKey);
        assert_eq!(held.missing_key_reason(9), DropReason::NoKey);
        assert_eq!(held.missing_key_reason(8), DropReason::NoKey);
        assert_eq!(held.missing_key_reason(7), DropReason::UnknownKeyId);
        assert_eq!(held.missing_key_reason(12), DropReason::UnknownKeyId);
        assert_eq!(held.missing_key_reason(200), DropReason::UnknownKeyId);
        let wrapped = PayloadKeys::new(keys(0, 1));
        assert_eq!(wrapped.missing_key_reason(255), DropReason::NoKey);
        assert_eq!(wrapped.missing_key_reason(254), DropReason::NoKey);
        assert_eq!(wrapped.missing_key_reason(253), DropReason::UnknownKeyId);
    }

    #[test]
    fn key_id_wraps() {
        let mut keys = PayloadKeys::new(keys(255, 1));
        let tlv = keys.start_rotation(Instant::now(), GRACE).unwrap();
        assert_eq!(tlv.key_id, 0);
    }
}
