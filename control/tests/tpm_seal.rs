//! Sealing with a real TPM 2.0: each test starts its own swtpm on loopback ports and a fresh
//! state directory, and stops it when done.
#![cfg(feature = "tpm")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod pki_support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki_support::*;
use svr_control::pki::identity::GENERATED_SEALED_KEY;
use svr_control::pki::tpm::{SealedBlob, Tpm};
use svr_control::pki::{
    IdentityConfig, IdentityError, KeyProtection, OwnIdentity, RevocationSet, TrustStore,
    validate_peer,
};

/// A running swtpm, killed by PID on drop; its state directory goes with it.
struct Swtpm {
    child: Child,
    port: u16,
    _state: TempDir,
}

impl Swtpm {
    fn start() -> Self {
        let found = Command::new("swtpm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "swtpm is not installed: the TPM tests need it (Debian packages swtpm and libtss2-dev, see scripts/install-deps)"
        );
        let state = TempDir::new("swtpm");
        let port = free_port_pair();
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.path().display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start swtpm");
        let tpm = Swtpm { child, port, _state: state };

        // Ready once a TPM context opens and a primary key can be made.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Tpm::open(&tpm.tcti()) {
                Ok(_) => return tpm,
                Err(e) if Instant::now() > deadline => {
                    panic!("swtpm on port {port} did not answer: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free loopback ports, P for commands and P + 1 for control.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports");
}

#[test]
fn tpm_seal_unseal_round_trip_small() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let secret: Vec<u8> = (0..32u8).collect();
    let blob = tpm.seal(&secret).unwrap();
    let stored = blob.to_bytes();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    let back = tpm.unseal(&SealedBlob::from_bytes(&stored).unwrap()).unwrap();
    assert_eq!(back.as_slice(), secret.as_slice());
}

#[test]
fn tpm_seal_unseal_round_trip_large() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    // The size of an ML-KEM-1024 decapsulation key.
    let secret: Vec<u8> = (0..3168u32).map(|i| (i * 7 % 251) as u8).collect();
    let blob = tpm.seal(&secret).unwrap();
    let stored = blob.to_bytes();
    assert!(!stored.windows(64).any(|w| secret.windows(64).any(|s| s == w)));
    let back = tpm.unseal(&SealedBlob::from_bytes(&stored).unwrap()).unwrap();
    assert_eq!(back.as_slice(), secret.as_slice());

    // A second context on the same TPM derives the same primary and unseals too.
    drop(tpm);
    let mut again = Tpm::open(&swtpm.tcti()).unwrap();
    assert_eq!(again.unseal(&blob).unwrap().as_slice(), secret.as_slice());
}

#[test]
fn tpm_blob_from_other_tpm_rejected() {
    let secret = b"private key bytes of router r1".to_vec();
    let blob = {
        let first = Swtpm::start();
        let mut tpm = Tpm::open(&first.tcti()).unwrap();
        tpm.seal(&secret).unwrap()
    };
    let second = Swtpm::start();
    let mut other = Tpm::open(&second.tcti()).unwrap();
    assert!(other.unseal(&blob).is_err());
}

#[test]
fn tpm_tampered_blob_rejected() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let blob = tpm.seal(&[7u8; 500]).unwrap();
    let mut bytes = blob.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(tpm.unseal(&SealedBlob::from_bytes(&bytes).unwrap()).is_err());
    assert!(SealedBlob::from_bytes(b"SVRTPM01").is_err());
    assert!(SealedBlob::from_bytes(b"not a blob").is_err());
}

#[test]
fn tpm_identity_key_sealed_on_disk() {
    let swtpm = Swtpm::start();
    let dir = TempDir::new("tpm-ident");
    let mut config = IdentityConfig::generated("r1", dir.path());
    config.protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
    let first = OwnIdentity::load(&config, system_time(NOW)).unwrap();
    let second = OwnIdentity::load(&config, system_time(NOW)).unwrap();
    assert_eq!(first.certificate_der(), second.certificate_der());

    // The key file is a sealed blob, and the clear PKCS#8 key appears nowhere in it.
    let on_disk = std::fs::read(dir.path().join(GENERATED_SEALED_KEY)).unwrap();
    assert!(on_disk.starts_with(SealedBlob::MAGIC));
    let clear = Tpm::open(&swtpm.tcti())
        .unwrap()
        .unseal(&SealedBlob::from_bytes(&on_disk).unwrap())
        .unwrap();
    assert!(clear.len() > 32);
    assert!(!on_disk.windows(16).any(|w| clear.windows(16).any(|c| c == w)));
    assert!(!dir.path().join(svr_control::pki::identity::GENERATED_KEY).exists());

    // The unsealed key is the certificate's key.
    let peer = validate_peer(
        first.chain(),
        "r1",
        system_time(NOW),
        &TrustStore::new(),
        &RevocationSet::new(),
    )
    .unwrap();
    assert!(peer.verify(b"m", &second.sign(b"m").unwrap()).is_ok());
}

#[test]
fn tpm_sealed_key_needs_tpm_config() {
    let swtpm = Swtpm::start();
    let dir = TempDir::new("tpm-ident");
    let mut config = IdentityConfig::generated("r1", dir.path());
    config.protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
    OwnIdentity::load(&config, system_time(NOW)).unwrap();

    let mut installed = IdentityConfig::generated("r1", dir.path());
    installed.certificate =
        Some(dir.path().join(svr_control::pki::identity::GENERATED_CERTIFICATE));
    installed.private_key = Some(dir.path().join(GENERATED_SEALED_KEY));
    let err = OwnIdentity::load(&installed, system_time(NOW)).unwrap_err();
    assert!(matches!(err, IdentityError::PrivateKey { .. }), "{err}");
    assert!(err.to_string().contains("no TPM is configured"), "{err}");

    installed.protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
    assert!(OwnIdentity::load(&installed, system_time(NOW)).is_ok());
}

#[test]
fn tpm_secret_store_round_trip() {
    let swtpm = Swtpm::start();
    let dir = TempDir::new("tpm-secret");
    let path = dir.path().join("mlkem768.dk");
    let protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
    // The size of an ML-KEM-768 decapsulation key.
    let secret: Vec<u8> = (0..2400u32).map(|i| (i % 253) as u8).collect();
    svr_control::pki::identity::store_secret(&path, &secret, &protection).unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk.starts_with(SealedBlob::MAGIC));
    assert!(!on_disk.windows(32).any(|w| secret.windows(32).any(|s| s == w)));
    let back = svr_control::pki::identity::load_secret(&path, &protection).unwrap();
    assert_eq!(back.as_slice(), secret.as_slice());
}

/// A recording TCP relay in front of a swtpm (command port P and control port P + 1).
struct Recorder {
    port: u16,
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start(target: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};

        let port = free_port_pair();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for offset in 0..2u16 {
            let listener = TcpListener::bind(("127.0.0.1", port + offset)).unwrap();
            listener.set_nonblocking(true).unwrap();
            let (bytes, stop) = (bytes.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    client.set_nonblocking(false).unwrap();
                    let server =
                        std::net::TcpStream::connect(("127.0.0.1", target + offset)).unwrap();
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        let bytes = bytes.clone();
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                            let _ = to.shutdown(std::net::Shutdown::Write);
                        });
                    }
                }
            }));
        }
        Recorder { port, bytes, stop, threads }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn recorded(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn tpm_secret_never_crosses_in_clear() {
    let swtpm = Swtpm::start();
    let recorder = Recorder::start(swtpm.port);
    let secret: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
    {
        let mut tpm = Tpm::open(&recorder.tcti()).unwrap();
        let blob = tpm.seal(&secret).unwrap();
        assert_eq!(tpm.unseal(&blob).unwrap().as_slice(), secret.as_slice());
    }
    std::thread::sleep(Duration::from_millis(50));
    let wire = recorder.recorded();
    assert!(wire.len() > 200, "relay recorded only {} bytes", wire.len());
    assert!(
        !wire.windows(16).any(|w| secret.windows(16).any(|s| s == w)),
        "secret seen on the TPM link"
    );
}

#[test]
fn tpm_enabled_later_keeps_identity() {
    let swtpm = Swtpm::start();
    let dir = TempDir::new("tpm-migrate");
    let plain = IdentityConfig::generated("r1", dir.path());
    let before = OwnIdentity::load(&plain, system_time(NOW)).unwrap();
    let plain_key = dir.path().join(svr_control::pki::identity::GENERATED_KEY);
    assert!(plain_key.exists());

    let mut sealed = plain.clone();
    sealed.protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
    let after = OwnIdentity::load(&sealed, system_time(NOW)).unwrap();
    assert_eq!(before.certificate_der(), after.certificate_der());
    assert!(!plain_key.exists());
    let on_disk = std::fs::read(dir.path().join(GENERATED_SEALED_KEY)).unwrap();
    assert!(on_disk.starts_with(SealedBlob::MAGIC));

    let peer = validate_peer(
        before.chain(),
        "r1",
        system_time(NOW),
        &TrustStore::new(),
        &RevocationSet::new(),
    )
    .unwrap();
    assert!(peer.verify(b"m", &after.sign(b"m").unwrap()).is_ok());
}

mod mlkem_store {
    use super::*;
    use svr_control::daemon::keystore;
    use svr_control::kex::MlKemLevel;

    #[test]
    fn tpm_mlkem_key_sealed_and_reloaded() {
        let swtpm = Swtpm::start();
        let dir = TempDir::new("mlkem-tpm");
        let protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
        let level = MlKemLevel::MlKem768;
        let key =
            keystore::load_or_generate(dir.path(), level, &protection, &mut rand::rng()).unwrap();

        // Only the sealed blob is on disk, and it does not contain the seed.
        let path = keystore::key_path(dir.path(), level, &protection);
        let stored = std::fs::read(&path).unwrap();
        assert!(stored.starts_with(SealedBlob::MAGIC), "not a sealed blob");
        assert!(!stored.windows(32).any(|w| key.seed().windows(32).any(|s| s == w)));
        assert!(!keystore::key_path(dir.path(), level, &KeyProtection::File).exists());

        // The same TPM unseals the same key pair at the next start.
        let again = keystore::load(dir.path(), level, &protection).unwrap();
        assert_eq!(again.encapsulation_key(), key.encapsulation_key());
        let reused =
            keystore::load_or_generate(dir.path(), level, &protection, &mut rand::rng()).unwrap();
        assert_eq!(reused.encapsulation_key(), key.encapsulation_key());
    }

    #[test]
    fn tpm_mlkem_key_of_other_tpm_replaced() {
        let dir = TempDir::new("mlkem-other");
        let level = MlKemLevel::MlKem512;
        let (first_key, first_blob) = {
            let first = Swtpm::start();
            let protection = KeyProtection::Tpm { tcti: first.tcti() };
            let key = keystore::load_or_generate(dir.path(), level, &protection, &mut rand::rng())
                .unwrap();
            let blob = std::fs::read(keystore::key_path(dir.path(), level, &protection)).unwrap();
            (key, blob)
        };

        // Another TPM state cannot unseal the blob...
        let second = Swtpm::start();
        let protection = KeyProtection::Tpm { tcti: second.tcti() };
        let error = keystore::load(dir.path(), level, &protection).err();
        assert!(
            matches!(error, Some(IdentityError::Tpm(_))),
            "a key sealed by another TPM was unsealed: {error:?}"
        );

        // ...so the daemon makes a new key sealed by this TPM in its place.
        let key =
            keystore::load_or_generate(dir.path(), level, &protection, &mut rand::rng()).unwrap();
        assert_ne!(key.encapsulation_key(), first_key.encapsulation_key());
        let blob = std::fs::read(keystore::key_path(dir.path(), level, &protection)).unwrap();
        assert_ne!(blob, first_blob);
        assert!(keystore::load(dir.path(), level, &protection).is_ok());
    }

    #[test]
    fn tpm_mlkem_plain_seed_sealed_then_removed() {
        let swtpm = Swtpm::start();
        let dir = TempDir::new("mlkem-plain");
        let level = MlKemLevel::MlKem1024;
        let plain =
            keystore::load_or_generate(dir.path(), level, &KeyProtection::File, &mut rand::rng())
                .unwrap();
        let plain_path = keystore::key_path(dir.path(), level, &KeyProtection::File);
        assert!(plain_path.exists());

        // With a TPM configured later, no clear copy stays on disk.
        let protection = KeyProtection::Tpm { tcti: swtpm.tcti() };
        let sealed =
            keystore::load_or_generate(dir.path(), level, &protection, &mut rand::rng()).unwrap();
        assert!(!plain_path.exists(), "the plain seed file is still there");
        assert!(keystore::key_path(dir.path(), level, &protection).exists());
        assert_ne!(sealed.encapsulation_key(), plain.encapsulation_key());
    }
}
