//! The demo's PKI, made with rcgen as `scripts/lib/pki.sh` makes it with openssl: a P-256
//! CA (critical `CA:TRUE`, keyCertSign and cRLSign) and one P-256 certificate per router,
//! signed by the CA. A router certificate has the router's peering-common-name as CN and
//! as SAN URI `urn:ssr:peering:<name>`, critical `CA:FALSE`, digitalSignature, and the
//! clientAuth and serverAuth extended key usages. Each private key is written beside its
//! certificate (`r1.pem`, `r1.key`), where svrd looks for it, with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use svr_control::alarm::EXPIRY_MINOR_WINDOW;

use crate::topology::common_name;

/// How long the certificates are valid, as `scripts/lib/pki.sh` makes them: a year. The
/// demo needs minutes, but svrd raises an expiry alarm for a certificate that expires
/// within [`EXPIRY_MINOR_WINDOW`], and a demo should run without alarms.
const VALIDITY: Duration = Duration::from_secs(365 * 86_400);

const _: () = assert!(VALIDITY.as_secs() > EXPIRY_MINOR_WINDOW.as_secs());

/// Writes `ca.pem` and, for each router of `routers`, `ROUTER.pem` and `ROUTER.key` into
/// `dir`. The CA's key is not written: nothing signs with it later.
pub fn write(dir: &Path, routers: &[&str]) -> Result<(), String> {
    let now = SystemTime::now();
    let ca_key = generate_key("the CA")?;
    let ca_params = ca_params(now)?;
    let ca = ca_params.self_signed(&ca_key).map_err(|e| format!("signing the CA: {e}"))?;
    write_file(&dir.join("ca.pem"), ca.pem().as_bytes(), 0o644)?;
    let issuer = Issuer::new(ca_params, ca_key);

    for router in routers {
        let name = common_name(router);
        let key = generate_key(router)?;
        let params = router_params(&name, now)?;
        let certificate = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("signing the certificate of {router}: {e}"))?;
        write_file(&dir.join(format!("{router}.pem")), certificate.pem().as_bytes(), 0o644)?;
        write_file(&dir.join(format!("{router}.key")), key.serialize_pem().as_bytes(), 0o600)?;
    }
    Ok(())
}

fn generate_key(owner: &str) -> Result<KeyPair, String> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("generating the P-256 key of {owner}: {e}"))
}

fn ca_params(now: SystemTime) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject("svrdemo CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, now)?;
    Ok(params)
}

fn router_params(name: &str, now: SystemTime) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(name);
    let uri = rcgen::string::Ia5String::try_from(format!("urn:ssr:peering:{name}"))
        .map_err(|e| format!("SAN URI of {name}: {e}"))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now)?;
    Ok(params)
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Sets a random positive serial number and a validity from a minute before `now` for
/// [`VALIDITY`].
fn set_validity(params: &mut CertificateParams, now: SystemTime) -> Result<(), String> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| format!("random serial number: {e}"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));

    let seconds = now.duration_since(UNIX_EPOCH).map_err(|e| format!("system clock: {e}"))?;
    let start = i64::try_from(seconds.as_secs()).unwrap_or(i64::MAX / 2) - 60;
    let end = start + VALIDITY.as_secs() as i64;
    let time = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .map_err(|e| format!("certificate validity: {e}"))
    };
    params.not_before = time(start)?;
    params.not_after = time(end)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use svr_control::alarm::own_certificate_expiry;
    use svr_control::pki::{IdentityOrigin, OwnIdentity, RevocationSet, TrustStore, validate_peer};

    /// Writes the PKI of r1 and r2 into a new temporary directory named for `tag`.
    fn write_demo_pki(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("svrd-demo-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        write(&dir, &["r1", "r2"]).unwrap();
        dir
    }

    /// Loads the certificate and key of `router` from `dir`.
    fn load_identity(dir: &Path, router: &str) -> OwnIdentity {
        let certificate = fs::read(dir.join(format!("{router}.pem"))).unwrap();
        let key = fs::read(dir.join(format!("{router}.key"))).unwrap();
        OwnIdentity::from_bytes(&certificate, &key, IdentityOrigin::Installed).unwrap()
    }

    #[test]
    fn router_certificate_validates_as_peer() {
        let dir = write_demo_pki("pki");
        let identity = load_identity(&dir, "r1");
        assert_eq!(identity.common_name(), "svrdemo-r1");
        assert!(!identity.is_self_signed());

        let mut trust = TrustStore::new();
        assert_eq!(trust.add_pem_bundle(&fs::read(dir.join("ca.pem")).unwrap()).unwrap(), 1);
        let now = SystemTime::now();
        let revocations = RevocationSet::new();
        let peer = validate_peer(identity.chain(), "svrdemo-r1", now, &trust, &revocations);
        let peer = peer.unwrap();
        let signature = identity.sign(b"key exchange message").unwrap();
        assert!(peer.verify(b"key exchange message", &signature).is_ok());
        let wrong = validate_peer(identity.chain(), "svrdemo-r2", now, &trust, &revocations);
        assert!(wrong.is_err(), "r1's certificate accepted under r2's name");

        let mode = fs::metadata(dir.join("r2.key")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificates_raise_no_expiry_alarm() {
        let dir = write_demo_pki("expiry");
        for router in ["r1", "r2"] {
            let not_after = load_identity(&dir, router).validity().1;
            let alarm = own_certificate_expiry(router, not_after, SystemTime::now());
            assert_eq!(alarm, None, "{router}'s certificate raises an expiry alarm");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
