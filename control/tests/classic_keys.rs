//! Classic-mode keys from security policies: the keys two routers derive from one policy
//! open each other's metadata packets, and every fault of the policies is reported.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use svr_control::classic::{ClassicError, ClassicErrorKind, ClassicKeys, classic_keys};
use svr_control::config::{Config, Ref, SecretBytes, parse_authority};
use svr_dataplane::crypto::{Direction, PairKeys, PairSecret, PayloadSecret, SessionKeys, Suite};
use svr_dataplane::packet::PayloadTlv;
use svr_dataplane::sealed::{Outgoing, OutgoingMetadata, open_with_metadata, seal};

fn config() -> Config {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/classic-two-router.cfg");
    parse_authority(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(config: &Config, router: &str) -> Result<ClassicKeys, ClassicError> {
    classic_keys(config, config.router(router).unwrap())
}

/// Derives the pair keys, as the keyring does, from the first pair secret towards peer 0.
fn pair(keys: &ClassicKeys, local: &str, peer: &str) -> PairKeys {
    let secret = PairSecret::from_bytes(*keys.pair_secrets[0][0]);
    PairKeys::derive(Suite::AesCbc256HmacSha384, &secret, local, peer)
}

/// Seals a packet with metadata from r1 towards r2 and opens it with r2's keys.
fn r1_to_r2(r1: &ClassicKeys, r2: &ClassicKeys) -> bool {
    let session =
        SessionKeys::derive(Suite::AesCbc256HmacSha384, 1, &PayloadSecret::from_bytes([5; 32]));
    let tlvs = [PayloadTlv::Tenant("corp".into())];
    let sending = pair(r1, "r1", "r2");
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: Some(OutgoingMetadata {
            keys: r1.peer_metadata[0].as_ref().unwrap(),
            tag_key: sending.send(),
            header_tlvs: &[],
            payload_tlvs: (&tlvs[..]).into(),
        }),
    };
    let mut buffer = vec![0u8; 512];
    let len = seal(&mut buffer, &packet, b"carried payload").unwrap();
    buffer.truncate(len);

    let receiving = pair(r2, "r2", "r1");
    let Some(own) =
        r2.own.iter().find(|k| Some(k.index()) == r1.peer_metadata[0].as_ref().map(|k| k.index()))
    else {
        return false;
    };
    match open_with_metadata(&mut buffer, own, receiving.receive()) {
        Ok(opened) => opened.metadata.unwrap().payload_tlvs == tlvs,
        Err(_) => false,
    }
}

fn policy_mut<'a>(
    config: &'a mut Config,
    name: &str,
) -> &'a mut svr_control::config::SecurityPolicy {
    config.authority.security_policies.iter_mut().find(|p| p.name == name).unwrap()
}

fn r1_wan(config: &mut Config) -> &mut svr_control::config::NetworkInterface {
    let router = config.authority.routers.iter_mut().find(|r| r.name == "r1").unwrap();
    let device = router.nodes[0].device_interfaces.iter_mut().find(|d| d.name == "wan").unwrap();
    &mut device.network_interfaces[0]
}

#[test]
fn keys_from_one_policy_interoperate() {
    let config = config();
    let r1 = keys(&config, "r1").unwrap();
    let r2 = keys(&config, "r2").unwrap();
    assert_eq!(r1.own.len(), 1);
    assert_eq!(r1.peer_metadata.len(), 1);
    assert_eq!(r1.peer_in_service(), [true]);
    let index = r1.peer_metadata[0].as_ref().unwrap().index();
    assert_eq!(index, r2.own[0].index(), "security id agreed without an exchange");
    assert_ne!(index & 0x8000_0000, 0, "classic security ids have the top bit set");
    assert_eq!(*r1.pair_secrets[0][0], *r2.pair_secrets[0][0]);
    assert!(r1_to_r2(&r1, &r2));
}

#[test]
fn other_keys_do_not_open() {
    let config = config();
    let r1 = keys(&config, "r1").unwrap();
    let mut other = config.clone();
    policy_mut(&mut other, "wan-keys").hmac_key = Some(SecretBytes::new(vec![0x33; 32]));
    let r2 = keys(&other, "r2").unwrap();
    assert_ne!(r1.peer_metadata[0].as_ref().unwrap().index(), r2.own[0].index());
    assert!(!r1_to_r2(&r1, &r2));
}

#[test]
fn debug_shows_no_key_bytes() {
    let text = format!("{:?}", keys(&config(), "r1").unwrap());
    assert!(text.contains("own_security_ids"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn error_unknown_policy() {
    let mut config = config();
    policy_mut(&mut config, "wan-keys").name = "renamed".into();
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(*error.kind, ClassicErrorKind::UnknownPolicy { policy: "wan-keys".into() });
    assert!(error.to_string().contains("wan-keys"), "{error}");
}

#[test]
fn error_missing_policy() {
    let mut config = config();
    let wan = r1_wan(&mut config);
    wan.inter_router_security = None;
    wan.adjacencies[0].inter_router_security = None;
    let error = keys(&config, "r1").unwrap_err();
    assert!(
        matches!(&*error.kind, ClassicErrorKind::MissingPolicy { place } if place.contains("wan-net"))
    );
}

#[test]
fn adjacency_takes_interface_policy() {
    let mut config = config();
    r1_wan(&mut config).adjacencies[0].inter_router_security = None;
    let r1 = keys(&config, "r1").unwrap();
    assert!(r1_to_r2(&r1, &keys(&config, "r2").unwrap()));
}

#[test]
fn error_conflicting_policies() {
    let mut config = config();
    let mut second = policy_mut(&mut config, "wan-keys").clone();
    second.name = "other-keys".into();
    config.authority.security_policies.push(second);
    let wan = r1_wan(&mut config);
    let mut adjacency = wan.adjacencies[0].clone();
    adjacency.ip_address = "10.202.0.6".parse().unwrap();
    let mut reference: Ref = adjacency.inter_router_security.clone().unwrap();
    reference.name = "other-keys".into();
    adjacency.inter_router_security = Some(reference);
    wan.adjacencies.push(adjacency);
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::ConflictingPolicies {
            peer: "r2".into(),
            first: "wan-keys".into(),
            second: "other-keys".into()
        }
    );
}

#[test]
fn error_missing_key() {
    let mut config = config();
    policy_mut(&mut config, "wan-keys").encryption_key = None;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::MissingKey { policy: "wan-keys".into(), field: "encryption-key" }
    );
    let mut config = self::config();
    policy_mut(&mut config, "wan-keys").hmac_key = None;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::MissingKey { policy: "wan-keys".into(), field: "hmac-key" }
    );
}

#[test]
fn error_key_length() {
    let mut config = config();
    policy_mut(&mut config, "wan-keys").encryption_key = Some(SecretBytes::new(vec![1; 16]));
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::KeyLength { policy: "wan-keys".into(), len: 16, expected: 32 }
    );
}

#[test]
fn error_hmac_key_length() {
    let mut config = config();
    policy_mut(&mut config, "wan-keys").hmac_key = Some(SecretBytes::new(vec![1; 8]));
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(*error.kind, ClassicErrorKind::HmacKeyLength { policy: "wan-keys".into(), len: 8 });
}

#[test]
fn error_unsupported_setting() {
    let mut config = config();
    policy_mut(&mut config, "wan-keys").encrypt = false;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::Unsupported { policy: "wan-keys".into(), setting: "encrypt" }
    );
    let mut config = self::config();
    policy_mut(&mut config, "wan-keys").hmac = false;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::Unsupported { policy: "wan-keys".into(), setting: "hmac" }
    );
}

#[test]
fn error_far_end_mismatch() {
    let mut config = config();
    let mut second = policy_mut(&mut config, "wan-keys").clone();
    second.name = "other-keys".into();
    config.authority.security_policies.push(second);
    let adjacency = &mut r1_wan(&mut config).adjacencies[0];
    let reference = adjacency.inter_router_security.as_mut().unwrap();
    reference.name = "other-keys".into();
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(
        *error.kind,
        ClassicErrorKind::FarEndMismatch {
            peer: "r2".into(),
            address: "10.202.0.2".into(),
            sent: "other-keys".into(),
            network_interface: "wan-net".into(),
            received: Some("wan-keys".into()),
        }
    );
    let text = error.to_string();
    assert!(text.contains("other-keys") && text.contains("wan-keys"), "{text}");
}

#[test]
fn errors_name_their_line() {
    // The policy wan-keys opens on line 5 of the file, at column 18.
    let mut config = config();
    policy_mut(&mut config, "wan-keys").hmac = false;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!((error.span.line, error.span.column), (5, 18));
    let text = error.to_string();
    assert!(text.starts_with("line 5, column 18: security policy wan-keys sets hmac"), "{text}");

    // r1's WAN network-interface opens on line 20, at column 57.
    let mut config = self::config();
    let wan = r1_wan(&mut config);
    wan.inter_router_security = None;
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!((error.span.line, error.span.column), (20, 57));

    // Its adjacency opens on line 22, and the far end decrypts with another policy.
    let mut config = self::config();
    let mut second = policy_mut(&mut config, "wan-keys").clone();
    second.name = "other-keys".into();
    config.authority.security_policies.push(second);
    let adjacency = &mut r1_wan(&mut config).adjacencies[0];
    adjacency.inter_router_security.as_mut().unwrap().name = "other-keys".into();
    let error = keys(&config, "r1").unwrap_err();
    assert_eq!(error.span.line, 22);
    assert!(error.to_string().starts_with("line 22, column "), "{error}");
}
