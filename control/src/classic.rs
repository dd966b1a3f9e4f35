//! Classic-mode keys: with `enhanced-security-key-management false`, SVR runs with keys
//! taken from the configured `security` policies instead of keys from the key exchange
//! (`docs/protocol.md` section 9).
//!
//! The policy a router's WAN network-interface names in `inter-router-security` gives the
//! metadata key peers encrypt towards it with. The policy its adjacency towards a peer
//! names gives the metadata key it encrypts towards that peer, and the pair secret that
//! keys the tags of metadata packets both ways. Both routers derive the same keys from the
//! same policy, so a policy used on the two ends of a path must be the same.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use svr_dataplane::crypto::{MetadataKeys, MetadataSecret, Suite};
use zeroize::Zeroizing;

use crate::config::{Config, HmacCipher, Ref, Router, SecurityPolicy, Span};

/// HKDF salt of every classic-mode key, so that no other use of a policy's keys derives the
/// same bytes.
const SALT: &[u8] = b"svrd classic keys v1";
/// Security IDs of classic-mode metadata keys have the top bit set, apart from the small
/// counters ESKM uses.
const CLASSIC_SECURITY_ID: u32 = 0x8000_0000;

/// The keys of one router in classic mode, in the places its keyring keeps them.
pub struct ClassicKeys {
    /// Metadata keys peers seal towards this router with, one per distinct policy of its
    /// WAN network interfaces.
    pub own: Vec<MetadataKeys>,
    /// Per network interface with a policy: its name and the Security ID of the key in
    /// [`ClassicKeys::own`] that decrypts what arrives on it.
    pub own_by_interface: Vec<(String, u32)>,
    /// Per peer, in the order of the router's `peer` list: the metadata key to encrypt
    /// towards it, or `None` when no adjacency leads to it.
    pub peer_metadata: Vec<Option<MetadataKeys>>,
    /// Per peer: the pair secrets (one, or none without an adjacency).
    pub pair_secrets: Vec<Vec<Zeroizing<[u8; 32]>>>,
}

impl ClassicKeys {
    /// Returns, per peer, whether it has keys and so may carry traffic once BFD is up;
    /// classic mode has no key exchange to wait for.
    pub fn peer_in_service(&self) -> Vec<bool> {
        self.peer_metadata.iter().map(Option::is_some).collect()
    }
}

impl fmt::Debug for ClassicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indexes: Vec<u32> = self.own.iter().map(MetadataKeys::index).collect();
        f.debug_struct("ClassicKeys")
            .field("own_security_ids", &indexes)
            .field("peers_with_keys", &self.peer_in_service())
            .finish_non_exhaustive()
    }
}

/// Derives the classic-mode keys of `router` from the security policies of `config`.
pub fn classic_keys(config: &Config, router: &Router) -> Result<ClassicKeys, ClassicError> {
    let policies = &config.authority.security_policies;
    let find = |reference: &Ref| {
        policies.iter().find(|policy| policy.name == reference.name).ok_or_else(|| {
            ClassicError::at(
                reference.span,
                ClassicErrorKind::UnknownPolicy { policy: reference.name.clone() },
            )
        })
    };

    // Own keys: every network interface with an adjacency names the policy that decrypts
    // what arrives on it.
    let mut own_policies: Vec<&Ref> = Vec::new();
    let mut interface_policies: Vec<(&str, &str)> = Vec::new();
    for node in &router.nodes {
        for device in &node.device_interfaces {
            for network in &device.network_interfaces {
                match &network.inter_router_security {
                    Some(policy) => {
                        if !own_policies.iter().any(|own| own.name == policy.name) {
                            own_policies.push(policy);
                        }
                        interface_policies.push((&network.name, &policy.name));
                    }
                    None if !network.adjacencies.is_empty() => {
                        return Err(ClassicError::at(
                            network.span,
                            ClassicErrorKind::MissingPolicy {
                                place: format!("network-interface {}", network.name),
                            },
                        ));
                    }
                    None => {}
                }
            }
        }
    }
    let own = own_policies
        .iter()
        .map(|reference| find(reference).and_then(derive).map(|keys| keys.metadata))
        .collect::<Result<Vec<_>, _>>()?;
    let own_by_interface = interface_policies
        .iter()
        .filter_map(|(network, policy)| {
            let position = own_policies.iter().position(|own| own.name == *policy)?;
            Some(((*network).to_owned(), own[position].index()))
        })
        .collect();

    // Peer keys: the adjacencies towards a peer must agree on one policy, because the
    // dataplane keeps one metadata key per peer. An adjacency without a policy takes its
    // network interface's.
    let mut peer_metadata = Vec::with_capacity(router.peers.len());
    let mut pair_secrets = Vec::with_capacity(router.peers.len());
    for peer in &router.peers {
        let mut chosen: Option<&Ref> = None;
        for path in router.peer_paths().filter(|path| path.adjacency.peer.name == peer.name) {
            let policy = path
                .adjacency
                .inter_router_security
                .as_ref()
                .or(path.network_interface.inter_router_security.as_ref())
                .ok_or_else(|| {
                    let place = format!(
                        "adjacency {} {} on network-interface {}",
                        path.adjacency.ip_address, peer.name, path.network_interface.name
                    );
                    ClassicError::at(path.adjacency.span, ClassicErrorKind::MissingPolicy { place })
                })?;
            match chosen {
                None => chosen = Some(policy),
                Some(first) if first.name == policy.name => {}
                Some(first) => {
                    return Err(ClassicError::at(
                        policy.span,
                        ClassicErrorKind::ConflictingPolicies {
                            peer: peer.name.clone(),
                            first: first.name.clone(),
                            second: policy.name.clone(),
                        },
                    ));
                }
            }
        }
        match chosen {
            Some(reference) => {
                let keys = derive(find(reference)?)?;
                peer_metadata.push(Some(keys.metadata));
                pair_secrets.push(vec![keys.pair_secret]);
            }
            None => {
                peer_metadata.push(None);
                pair_secrets.push(Vec::new());
            }
        }
    }

    check_far_ends(config, router)?;
    Ok(ClassicKeys { own, own_by_interface, peer_metadata, pair_secrets })
}

impl ClassicKeys {
    /// Returns whether `other` contains the same keys in the same places, so a reload that
    /// gives the same keys changes nothing.
    pub fn same_keys(&self, other: &ClassicKeys) -> bool {
        let indexes =
            |keys: &[MetadataKeys]| keys.iter().map(MetadataKeys::index).collect::<Vec<_>>();
        let peer_indexes = |keys: &ClassicKeys| {
            keys.peer_metadata
                .iter()
                .map(|k| k.as_ref().map(MetadataKeys::index))
                .collect::<Vec<_>>()
        };
        let secrets_equal = self.pair_secrets.len() == other.pair_secrets.len()
            && self
                .pair_secrets
                .iter()
                .zip(&other.pair_secrets)
                .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| **x == **y));
        indexes(&self.own) == indexes(&other.own)
            && peer_indexes(self) == peer_indexes(other)
            && secrets_equal
    }
}

/// Checks, for every adjacency whose far end the configuration also defines, that the
/// network interface holding the adjacency's address decrypts with the policy this router
/// encrypts with. A mismatch would drop every packet on that path.
fn check_far_ends(config: &Config, router: &Router) -> Result<(), ClassicError> {
    for path in router.peer_paths() {
        let Some(sent) = path
            .adjacency
            .inter_router_security
            .as_ref()
            .or(path.network_interface.inter_router_security.as_ref())
        else {
            continue;
        };
        let peer = router.peers.iter().find(|p| p.name == path.adjacency.peer.name);
        let remote_name = peer.map_or(path.adjacency.peer.name.as_str(), |p| p.remote_router());
        let Some(remote) = config.router(remote_name) else {
            continue;
        };
        let far_end = remote
            .nodes
            .iter()
            .flat_map(|node| &node.device_interfaces)
            .flat_map(|device| &device.network_interfaces)
            .find(|network| {
                network.addresses.iter().any(|a| a.ip_address == path.adjacency.ip_address)
            });
        let Some(far_end) = far_end else {
            continue;
        };
        let received = far_end.inter_router_security.as_ref().map(|p| p.name.clone());
        if received.as_deref() != Some(sent.name.as_str()) {
            return Err(ClassicError::at(
                path.adjacency.span,
                ClassicErrorKind::FarEndMismatch {
                    peer: path.adjacency.peer.name.clone(),
                    address: path.adjacency.ip_address.to_string(),
                    sent: sent.name.clone(),
                    network_interface: far_end.name.clone(),
                    received,
                },
            ));
        }
    }
    Ok(())
}

/// The keys one policy gives.
struct PolicyKeys {
    metadata: MetadataKeys,
    pair_secret: Zeroizing<[u8; 32]>,
}

/// Derives a policy's keys with HKDF-SHA-256 over its encryption key and HMAC key, each
/// preceded by its length. The Security ID comes from the same keys, so two routers with
/// the same policy agree on it without exchanging anything.
///
/// NOTE: svrd seals with AES-256-CBC and HMAC-SHA-384 or -512 whatever the policy's
/// `encryption-cipher` and `hmac-cipher`, so only the key bytes of a policy matter on the
/// wire, and two routers interoperate only with each other, not with other makes.
fn derive(policy: &SecurityPolicy) -> Result<PolicyKeys, ClassicError> {
    let fault = |kind| ClassicError::at(policy.span, kind);
    let name = || policy.name.clone();
    if !policy.encrypt {
        return Err(fault(ClassicErrorKind::Unsupported { policy: name(), setting: "encrypt" }));
    }
    if !policy.hmac {
        return Err(fault(ClassicErrorKind::Unsupported { policy: name(), setting: "hmac" }));
    }
    let missing = |field| fault(ClassicErrorKind::MissingKey { policy: name(), field });
    let encryption_key = policy.encryption_key.as_ref().ok_or_else(|| missing("encryption-key"))?;
    let hmac_key = policy.hmac_key.as_ref().ok_or_else(|| missing("hmac-key"))?;
    let expected = policy.encryption_cipher.key_len();
    let len = encryption_key.expose().len();
    if len != expected {
        return Err(fault(ClassicErrorKind::KeyLength { policy: name(), len, expected }));
    }
    let hmac_len = hmac_key.expose().len();
    if !(MIN_HMAC_KEY_LEN..=usize::from(u16::MAX)).contains(&hmac_len) {
        return Err(fault(ClassicErrorKind::HmacKeyLength { policy: name(), len: hmac_len }));
    }

    let mut input = Zeroizing::new(Vec::with_capacity(4 + len + hmac_len));
    input.extend_from_slice(&(len as u16).to_be_bytes());
    input.extend_from_slice(encryption_key.expose());
    input.extend_from_slice(&(hmac_len as u16).to_be_bytes());
    input.extend_from_slice(hmac_key.expose());
    let hkdf = Hkdf::<Sha256>::new(Some(SALT), &input);

    let mut secret = Zeroizing::new([0u8; 32]);
    let mut pair_secret = Zeroizing::new([0u8; 32]);
    let mut security_id = [0u8; 4];
    // Each output is at most 32 bytes, far below the HKDF-SHA-256 limit of 8160 bytes (RFC
    // 5869 section 2.3), so expand fails only on a broken build.
    let expanded = hkdf
        .expand(b"metadata key", secret.as_mut())
        .and_then(|()| hkdf.expand(b"pair secret", pair_secret.as_mut()))
        .and_then(|()| hkdf.expand(b"security id", &mut security_id));
    if expanded.is_err() {
        return Err(fault(ClassicErrorKind::Derivation { policy: name() }));
    }
    let index = CLASSIC_SECURITY_ID | (u32::from_be_bytes(security_id) & !CLASSIC_SECURITY_ID);
    let suite = match policy.hmac_cipher {
        HmacCipher::Sha512 => Suite::AesCbc256HmacSha512,
        _ => Suite::AesCbc256HmacSha384,
    };
    let metadata = MetadataKeys::derive(index, suite, &MetadataSecret::from_bytes(*secret));
    Ok(PolicyKeys { metadata, pair_secret })
}

/// Shortest HMAC key a classic-mode policy may have: 128 bits.
pub const MIN_HMAC_KEY_LEN: usize = 16;

/// A reason the security policies cannot give a router its classic-mode keys, with the
/// position of the configuration line at fault. Each stops the daemon before it opens ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicError {
    /// Position of the keyword that opens the policy, network interface or adjacency at
    /// fault.
    pub span: Span,
    /// Boxed, so that results carrying the error stay small.
    pub kind: Box<ClassicErrorKind>,
}

impl ClassicError {
    fn at(span: Span, kind: ClassicErrorKind) -> Self {
        ClassicError { span, kind: Box::new(kind) }
    }
}

/// The kind of fault in the security policies of a router in classic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClassicErrorKind {
    /// A reference names a policy that is not defined.
    UnknownPolicy { policy: String },
    /// A WAN network interface or an adjacency has no `inter-router-security` policy.
    MissingPolicy { place: String },
    /// The adjacencies towards one peer name different policies.
    ConflictingPolicies { peer: String, first: String, second: String },
    /// A policy has no value for a key both routers must share.
    MissingKey { policy: String, field: &'static str },
    /// An encryption key whose length does not match the policy's cipher.
    KeyLength { policy: String, len: usize, expected: usize },
    /// An HMAC key shorter than [`MIN_HMAC_KEY_LEN`] or longer than 65535 bytes.
    HmacKeyLength { policy: String, len: usize },
    /// The policy turns off a protection svrd always applies to metadata.
    Unsupported { policy: String, setting: &'static str },
    /// An adjacency encrypts with a policy other than the one the far end's network
    /// interface decrypts with (`None`: it names none).
    FarEndMismatch {
        peer: String,
        address: String,
        sent: String,
        network_interface: String,
        received: Option<String>,
    },
    /// Key derivation failed, which a correct build never does.
    Derivation { policy: String },
}

impl fmt::Display for ClassicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span, self.kind)
    }
}

impl fmt::Display for ClassicErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassicErrorKind::UnknownPolicy { policy } => {
                write!(f, "inter-router-security names unknown security policy {policy}")
            }
            ClassicErrorKind::MissingPolicy { place } => write!(
                f,
                "{place} has no inter-router-security policy; classic mode \
                 (enhanced-security-key-management false) needs one on every peer path"
            ),
            ClassicErrorKind::ConflictingPolicies { peer, first, second } => write!(
                f,
                "adjacencies towards peer {peer} name security policies {first} and {second}; \
                 svrd keeps one metadata key per peer, so use one policy for all of them"
            ),
            ClassicErrorKind::MissingKey { policy, field } => write!(
                f,
                "security policy {policy} has no {field}; in classic mode every router must \
                 be configured with the same key, so set it in hex"
            ),
            ClassicErrorKind::KeyLength { policy, len, expected } => write!(
                f,
                "security policy {policy} has an encryption-key of {len} bytes, expected \
                 {expected} for its encryption-cipher"
            ),
            ClassicErrorKind::HmacKeyLength { policy, len } => write!(
                f,
                "security policy {policy} has an hmac-key of {len} bytes, expected \
                 {MIN_HMAC_KEY_LEN} to 65535"
            ),
            ClassicErrorKind::Unsupported { policy, setting } => write!(
                f,
                "security policy {policy} sets {setting} false, but svrd always encrypts and \
                 authenticates metadata; set {setting} true"
            ),
            ClassicErrorKind::FarEndMismatch {
                peer,
                address,
                sent,
                network_interface,
                received,
            } => {
                write!(
                    f,
                    "the adjacency towards peer {peer} at {address} encrypts with security \
                     policy {sent}, but {peer}'s network-interface {network_interface} at that \
                     address decrypts with {}; name the same inter-router-security policy on \
                     both ends",
                    received.as_deref().map_or("no policy".to_string(), |p| format!("policy {p}"))
                )
            }
            ClassicErrorKind::Derivation { policy } => {
                write!(f, "key derivation failed for security policy {policy}")
            }
        }
    }
}

impl std::error::Error for ClassicError {}
