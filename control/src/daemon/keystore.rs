//! The ML-KEM decapsulation keys the daemon makes, one per parameter set its peerings use,
//! kept in the state directory across restarts: sealed by the TPM when one is configured,
//! otherwise as the 64-byte seed in a file of mode 0600.
//!
//! With a TPM the seed never reaches the disk in clear, and a plain seed file left from a
//! run without a TPM is replaced by a sealed one and deleted.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rand_core::CryptoRng;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::kex::{MlKemKeyPair, MlKemLevel};
use crate::pki::identity::{load_secret, store_secret};
use crate::pki::{IdentityError, KeyProtection};

/// Returns the file that stores the key of `level` under `protection`.
pub fn key_path(state_dir: &Path, level: MlKemLevel, protection: &KeyProtection) -> PathBuf {
    let plain = state_dir.join(format!("ml-kem-{}.seed", level.size()));
    match protection {
        KeyProtection::File => plain,
        #[cfg(feature = "tpm")]
        KeyProtection::Tpm { .. } => plain.with_extension("seed.sealed"),
    }
}

/// Reads the stored key of `level`.
pub fn load(
    state_dir: &Path,
    level: MlKemLevel,
    protection: &KeyProtection,
) -> Result<MlKemKeyPair, IdentityError> {
    let path = key_path(state_dir, level, protection);
    let seed = load_secret(&path, protection)?;
    MlKemKeyPair::from_seed(level, &seed)
        .map_err(|e| IdentityError::PrivateKey { path, detail: e.to_string() })
}

/// Stores the seed of `key` under `protection`.
pub fn store(
    state_dir: &Path,
    key: &MlKemKeyPair,
    protection: &KeyProtection,
) -> Result<(), IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|source| IdentityError::Io { path: state_dir.to_owned(), source })?;
    let path = key_path(state_dir, key.level(), protection);
    store_secret(&path, key.seed(), protection)
}

/// Returns the stored key of `level`, or makes and stores a new one when there is none or
/// the stored one cannot be read (a blob sealed by another TPM, a damaged file). Errors only
/// when the new key cannot be stored.
pub fn load_or_generate<R: CryptoRng + ?Sized>(
    state_dir: &Path,
    level: MlKemLevel,
    protection: &KeyProtection,
    rng: &mut R,
) -> Result<MlKemKeyPair, IdentityError> {
    let path = key_path(state_dir, level, protection);
    if path.exists() {
        match load(state_dir, level, protection) {
            Ok(key) => {
                debug!(path = %path.display(), %level, "ML-KEM key loaded");
                remove_plain_copy(state_dir, level, protection);
                return Ok(key);
            }
            Err(error) => {
                warn!(path = %path.display(), %level, %error,
                    "cannot read the stored ML-KEM key; replacing it with a new one");
            }
        }
    }
    let key = MlKemKeyPair::generate(level, rng);
    store(state_dir, &key, protection)?;
    remove_plain_copy(state_dir, level, protection);
    debug!(path = %path.display(), %level, "ML-KEM key generated and stored");
    Ok(key)
}

/// The seeds of the daemon's ML-KEM keys, from which the key exchange can be rebuilt when
/// the router's certificate is replaced.
pub struct MlKemKeys {
    seeds: Vec<(MlKemLevel, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for MlKemKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let levels: Vec<_> = self.seeds.iter().map(|(level, _)| level.size()).collect();
        f.debug_struct("MlKemKeys").field("levels", &levels).finish_non_exhaustive()
    }
}

impl MlKemKeys {
    /// Keeps the seeds of `keys`.
    pub fn new(keys: &[MlKemKeyPair]) -> Self {
        let seeds =
            keys.iter().map(|key| (key.level(), Zeroizing::new(key.seed().to_vec()))).collect();
        Self { seeds }
    }

    /// Rebuilds the key pairs.
    pub fn key_pairs(&self) -> Vec<MlKemKeyPair> {
        self.seeds
            .iter()
            .filter_map(|(level, seed)| MlKemKeyPair::from_seed(*level, seed).ok())
            .collect()
    }
}

/// Deletes the plain seed file once a sealed one exists, so no clear copy stays behind.
fn remove_plain_copy(state_dir: &Path, level: MlKemLevel, protection: &KeyProtection) {
    let plain = key_path(state_dir, level, &KeyProtection::File);
    if key_path(state_dir, level, protection) == plain || !plain.exists() {
        return;
    }
    match std::fs::remove_file(&plain) {
        Ok(()) => debug!(path = %plain.display(), "plain ML-KEM seed file removed"),
        Err(error) => warn!(path = %plain.display(), %error, "cannot remove plain ML-KEM seed"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("svrd-keystore-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn file_key_mode_0600_and_reloaded() -> Result<(), IdentityError> {
        let dir = scratch("file");
        let level = MlKemLevel::MlKem768;
        let key = load_or_generate(&dir, level, &KeyProtection::File, &mut rand::rng())?;
        let path = key_path(&dir, level, &KeyProtection::File);
        let meta = std::fs::metadata(&path)
            .map_err(|source| IdentityError::Io { path: path.clone(), source })?;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 64, "the file holds the 64-byte seed");

        let again = load_or_generate(&dir, level, &KeyProtection::File, &mut rand::rng())?;
        assert_eq!(again.encapsulation_key(), key.encapsulation_key());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn file_key_damaged_replaced() -> Result<(), IdentityError> {
        let dir = scratch("damaged");
        let level = MlKemLevel::MlKem512;
        let key = load_or_generate(&dir, level, &KeyProtection::File, &mut rand::rng())?;
        let path = key_path(&dir, level, &KeyProtection::File);
        std::fs::write(&path, b"short")
            .map_err(|source| IdentityError::Io { path: path.clone(), source })?;
        assert!(load(&dir, level, &KeyProtection::File).is_err());

        let replaced = load_or_generate(&dir, level, &KeyProtection::File, &mut rand::rng())?;
        assert_ne!(replaced.encapsulation_key(), key.encapsulation_key());
        assert!(load(&dir, level, &KeyProtection::File).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
