//! `svrd --check FILE`: parse a configuration file and report every error and warning.
//!
//! After parsing, each router to check is resolved as the daemon resolves it at start
//! (ports, peer paths, BFD settings, the router's certificate). The router's certificate
//! and key are loaded and compared, and the CA files of the plan are read, so a file that
//! passes the check does not fail the daemon's start for those reasons. What needs the
//! host (interfaces, XDP, the TPM) is not checked.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::pki::error::format_unix;
use crate::pki::{IdentityConfig, IdentityError, OwnIdentity};

use super::parse_authority;

/// The outcome of checking one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub file: String,
    /// Messages, errors and warnings in line order, each already formatted.
    pub messages: Vec<String>,
    pub errors: usize,
    pub warnings: usize,
    /// Routers in a valid configuration.
    pub routers: usize,
}

/// Messages a report prints before it stops listing them, so that a file with thousands
/// of faults does not flood the terminal.
pub const MAX_SHOWN: usize = 200;

impl CheckReport {
    /// 0 when the configuration is valid (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.errors > 0)
    }

    /// Formats the one-line summary printed last.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        if self.errors > 0 {
            format!(
                "{}: invalid: {}, {}",
                self.file,
                plural(self.errors, "error"),
                plural(self.warnings, "warning")
            )
        } else {
            format!(
                "{}: valid: {}, {}",
                self.file,
                plural(self.routers, "router"),
                plural(self.warnings, "warning")
            )
        }
    }

    /// Formats the first [`MAX_SHOWN`] messages, one per line, then the summary, which
    /// counts them all.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in self.messages.iter().take(MAX_SHOWN) {
            let _ = writeln!(out, "{}: {m}", self.file);
        }
        if let Some(hidden) = self.messages.len().checked_sub(MAX_SHOWN).filter(|n| *n > 0) {
            let _ = writeln!(out, "{}: {hidden} more messages not shown", self.file);
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

/// Checks configuration text; `file` names it in messages. With `router`, the authority
/// must also define a router of that name.
pub fn check_text(file: &str, text: &str, router: Option<&str>) -> CheckReport {
    match parse_authority(text) {
        Ok(config) => {
            let mut report = CheckReport {
                file: file.to_owned(),
                messages: config.warnings().iter().map(|w| w.to_string()).collect(),
                errors: 0,
                warnings: config.warnings().len(),
                routers: config.authority.routers.len(),
            };
            let routers: Vec<&super::Router> = match router {
                Some(name) => match config.select_router(Some(name), "") {
                    Ok(one) => vec![one],
                    Err(e) => {
                        report.messages.push(e.to_string());
                        report.errors += 1;
                        return report;
                    }
                },
                // Without --router the daemon only runs a router with a node, so routers
                // without one are left out here too.
                None => config.authority.routers.iter().filter(|r| !r.nodes.is_empty()).collect(),
            };
            if config.authority.routers.is_empty() {
                report.messages.push(
                    "the authority defines no router; svrd runs one router of the authority, \
                     so add a router block with a node"
                        .to_owned(),
                );
                report.errors += 1;
                return report;
            }
            if routers.is_empty() {
                report.messages.push(
                    "warning: no router has a node, so svrd cannot run any router of this \
                     authority; add a node block to the router to run"
                        .to_owned(),
                );
                report.warnings += 1;
            }
            for router in routers {
                let problems = plan_problems(&config, router);
                report.errors += problems.errors.len();
                report.warnings += problems.warnings.len();
                report.messages.extend(problems.errors);
                report.messages.extend(problems.warnings);
            }
            report
        }
        Err(report) => {
            let mut spanned: Vec<(super::Span, String)> = report
                .errors
                .iter()
                .map(|e| (e.span, e.to_string()))
                .chain(report.warnings.iter().map(|w| (w.span, w.to_string())))
                .collect();
            spanned.sort_by_key(|(span, _)| *span);
            CheckReport {
                file: file.to_owned(),
                messages: spanned.into_iter().map(|(_, m)| m).collect(),
                errors: report.errors.len(),
                warnings: report.warnings.len(),
                routers: 0,
            }
        }
    }
}

/// Errors and warnings found in one router's plan, each already formatted.
#[derive(Default)]
struct PlanProblems {
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Resolves `router` as the daemon does at start, then reads the certificate and CA files
/// of its plan. Returns every problem found, each naming the router.
fn plan_problems(config: &super::Config, router: &super::Router) -> PlanProblems {
    let plan = match crate::daemon::Plan::resolve(config, router) {
        Ok(plan) => plan,
        // This message names the router already.
        Err(error @ crate::daemon::PlanError::NoNode { .. }) => {
            return PlanProblems { errors: vec![error.to_string()], warnings: Vec::new() };
        }
        Err(error) => {
            let errors = vec![format!("router {}: {error}", router.name)];
            return PlanProblems { errors, warnings: Vec::new() };
        }
    };
    let mut problems = PlanProblems::default();
    // svrd does not start with a DPDK port it cannot open, unless it may fall back to AF_XDP.
    for (port, device, fallback) in crate::daemon::ports_needing_dpdk(&plan) {
        let message = crate::daemon::without_dpdk_message(port, device);
        if fallback {
            problems.warnings.push(format!(
                "{message}; until then svrd opens it with AF_XDP on {}",
                port.linux_name
            ));
        } else {
            problems.errors.push(message);
        }
    }
    // svrd does not start with a CRL location it cannot fetch from.
    for crl in &plan.crls {
        if let Err(error) = crate::pki::CrlSource::parse(&crl.location) {
            problems.errors.push(format!("certificate-revocation-list {}: {error}", crl.location));
        }
    }
    let now = SystemTime::now();
    let identity = plan.certificate.as_ref().and_then(|(certificate, key)| {
        own_certificate_problems(certificate, key, now, &mut problems)
            .map(|identity| (identity, certificate))
    });
    // The plan's trusted CAs are the authority's, which also have names for the messages.
    let trust = trusted_cas(&config.authority.trusted_ca_certificates, &mut problems);
    if let Some((identity, certificate)) = identity {
        own_certificate_use(&identity, certificate, &plan.peering_common_name, &trust, now)
            .apply(&mut problems);
    }
    let name = |problem: String| format!("router {}: {problem}", router.name);
    PlanProblems {
        errors: problems.errors.into_iter().map(name).collect(),
        warnings: problems
            .warnings
            .into_iter()
            .map(|warning| name(format!("warning: {warning}")))
            .collect(),
    }
}

/// Reads the trusted CA certificates as the daemon does at start, PEM or DER, and returns
/// them as a trust store. Each one that cannot be read, or is not a CA certificate, is an
/// error.
fn trusted_cas(cas: &[super::Certificate], problems: &mut PlanProblems) -> crate::pki::TrustStore {
    let mut trust = crate::pki::TrustStore::new();
    for ca in cas {
        let name = &ca.name;
        let (origin, bytes) = match &ca.source {
            super::CertificateSource::File(path) => match std::fs::read(path) {
                Ok(bytes) => (format!("file {path}"), bytes),
                Err(error) => {
                    problems.errors.push(format!(
                        "trusted-ca-certificate {name} (file {path}): cannot be read: {error}"
                    ));
                    continue;
                }
            },
            super::CertificateSource::Content(text) => {
                ("content".to_owned(), text.as_bytes().to_vec())
            }
        };
        if let Err(error) = trust.add_certificates(&bytes) {
            problems.errors.push(format!("trusted-ca-certificate {name} ({origin}): {error}"));
        }
    }
    trust
}

/// Loads the router's installed certificate and private key as the daemon does at start,
/// so that a missing or unparsable file or a key of another certificate is an error.
/// A certificate expired at `now`, or close enough to expiry that svrd raises its expiry
/// alarm, is a warning, because svrd starts with it. One not valid yet is left to [`own_certificate_use`], which reports it as
/// an error because svrd does not start with it. Returns the loaded identity when there is
/// one.
fn own_certificate_problems(
    certificate: &Path,
    key: &Path,
    now: SystemTime,
    problems: &mut PlanProblems,
) -> Option<OwnIdentity> {
    let path = certificate.display();
    if certificate.as_os_str().is_empty() {
        problems.errors.push("client-certificate file is empty: expected a path".to_owned());
        return None;
    }
    let errors_before = problems.errors.len();
    let key_bytes = match std::fs::read(key) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            problems.errors.push(format!(
                "client-certificate file {path}: its private key {} is missing",
                key.display()
            ));
            None
        }
        Err(error) => {
            problems.errors.push(format!(
                "client-certificate file {path}: its private key {} cannot be read: {error}",
                key.display()
            ));
            None
        }
    };
    // Without a key the loader below does not run, so the certificate is read on its own.
    if let Some(problem) = certificate_file_problem(certificate, key_bytes.is_none()) {
        problems.errors.insert(errors_before, format!("client-certificate file {path}: {problem}"));
    }
    if problems.errors.len() > errors_before {
        return None;
    }
    if key_bytes.as_deref().is_some_and(is_sealed_key) {
        problems.warnings.push(format!(
            "client-certificate file {path}: its private key {} is sealed by a TPM, so it is \
             not compared with the certificate here; svrd --tpm TCTI compares them at start",
            key.display()
        ));
        return None;
    }
    let config = IdentityConfig {
        certificate: Some(certificate.to_owned()),
        private_key: Some(key.to_owned()),
        ..IdentityConfig::generated("", Path::new(""))
    };
    let identity = match OwnIdentity::load(&config, now) {
        Ok(identity) => identity,
        Err(error @ IdentityError::KeyMismatch { .. }) => {
            problems.errors.push(format!(
                "client-certificate file {path}: {error}; install the key the certificate was \
                 issued for"
            ));
            return None;
        }
        Err(error) => {
            problems.errors.push(format!("client-certificate file {path}: {error}"));
            return None;
        }
    };
    let (_, not_after) = identity.validity();
    if crate::pki::validate::unix_seconds(now) > not_after {
        problems.warnings.push(format!(
            "client-certificate file {path}: expired at {}, so peers reject it; install a \
             renewed certificate",
            format_unix(not_after)
        ));
    } else if let Some(alarm) = crate::alarm::own_certificate_expiry("", not_after, now) {
        let days = (not_after - crate::pki::validate::unix_seconds(now)) / 86_400;
        problems.warnings.push(format!(
            "client-certificate file {path}: expires in {days} days, at {}, so svrd raises a \
             {} alarm until a renewed certificate is installed",
            format_unix(not_after),
            alarm.severity
        ));
    }
    Some(identity)
}

/// Returns what is wrong with the certificate file, if anything: unreadable, empty or, with
/// `parse`, not a certificate. The loader reports a parse failure itself when it runs.
fn certificate_file_problem(path: &Path, parse: bool) -> Option<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => return Some(format!("cannot be read: {error}")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some("the file is empty: expected a PEM or DER certificate".to_owned());
    }
    if !parse {
        return None;
    }
    let parsed = match crate::pki::validate::pem_certificates(&bytes) {
        Ok(ders) => crate::pki::validate::parse_certificate(&ders[0]).is_ok(),
        Err(_) => crate::pki::validate::parse_certificate(&bytes).is_ok(),
    };
    (!parsed).then(|| "invalid certificate: expected a PEM or DER X.509 certificate".to_owned())
}

/// Outcome of the daemon's start-up check of the router's own certificate.
enum OwnUse {
    /// svrd starts with it, and it chains to the trusted CAs (or none are configured).
    Usable,
    /// svrd rejects it at start: the wrong name, a CA certificate, or a missing usage.
    Unusable(String),
    /// svrd starts, but peers that check the chain reject it.
    Unchained(String),
}

impl OwnUse {
    fn apply(self, problems: &mut PlanProblems) {
        match self {
            OwnUse::Usable => {}
            OwnUse::Unusable(message) => problems.errors.push(message),
            OwnUse::Unchained(message) => problems.warnings.push(message),
        }
    }
}

/// Runs the check svrd runs on its installed certificate at start: the peering name, the
/// end-entity role and usages, and the chain to the trusted CAs.
fn own_certificate_use(
    identity: &OwnIdentity,
    certificate: &Path,
    peering_common_name: &str,
    trust: &crate::pki::TrustStore,
    now: SystemTime,
) -> OwnUse {
    let path = certificate.display();
    match crate::pki::own_check::check_installed(identity, peering_common_name, trust, now) {
        Ok(None) => OwnUse::Usable,
        Ok(Some(error)) => OwnUse::Unchained(format!(
            "client-certificate file {path}: does not chain to a configured trusted CA \
             ({error}), so peers that check it reject it"
        )),
        Err(error) => OwnUse::Unusable(format!(
            "client-certificate file {path}: svrd does not start with it: {error}"
        )),
    }
}

/// Returns whether `key` is a private key sealed by a TPM rather than a plain key.
fn is_sealed_key(key: &[u8]) -> bool {
    #[cfg(feature = "tpm")]
    {
        key.starts_with(crate::pki::tpm::SealedBlob::MAGIC)
    }
    #[cfg(not(feature = "tpm"))]
    {
        let _ = key;
        false
    }
}

/// Reads and checks `path`; a file that cannot be read is reported as one error.
pub fn check_file(path: &Path, router: Option<&str>) -> CheckReport {
    let file = path.display().to_string();
    match super::read_file(path) {
        Ok(text) => check_text(&file, &text, router),
        Err(e) => CheckReport {
            messages: vec![format!("cannot read the file: {e}")],
            file,
            errors: 1,
            warnings: 0,
            routers: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test fixtures fail the test")]

    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// 2027-01-15 08:00:00 UTC, the moment the checks run at.
    const NOW: u64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    /// A temporary directory with a certificate for r1 valid from `not_before` to
    /// `not_after` (seconds relative to [`NOW`]) and a private key, removed on drop.
    struct Installed {
        dir: PathBuf,
    }

    impl Installed {
        fn new(tag: &str, not_before: i64, not_after: i64) -> Installed {
            Installed::with_params(tag, not_before, not_after, |_| {})
        }

        /// As [`Installed::new`], with `adjust` applied to the certificate's parameters.
        fn with_params(
            tag: &str,
            not_before: i64,
            not_after: i64,
            adjust: impl FnOnce(&mut CertificateParams),
        ) -> Installed {
            let dir = std::env::temp_dir().join(format!("svrd-check-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["r1".to_owned()]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, "r1");
            adjust(&mut params);
            let at = |offset: i64| {
                time::OffsetDateTime::from_unix_timestamp(NOW as i64 + offset).unwrap()
            };
            params.not_before = at(not_before);
            params.not_after = at(not_after);
            let certificate = params.self_signed(&key).unwrap();
            std::fs::write(dir.join("r1.pem"), certificate.pem()).unwrap();
            std::fs::write(dir.join("r1.key"), key.serialize_pem()).unwrap();
            Installed { dir }
        }

        fn certificate(&self) -> PathBuf {
            self.dir.join("r1.pem")
        }

        fn key(&self) -> PathBuf {
            self.dir.join("r1.key")
        }

        /// Returns the only problem found, which must be an error.
        fn one_error(&self) -> String {
            let problems = self.problems();
            assert_eq!(problems.warnings, Vec::<String>::new());
            assert_eq!(problems.errors.len(), 1, "{:?}", problems.errors);
            problems.errors.into_iter().next().unwrap_or_default()
        }

        fn problems(&self) -> PlanProblems {
            let mut problems = PlanProblems::default();
            let now = UNIX_EPOCH + Duration::from_secs(NOW);
            own_certificate_problems(&self.certificate(), &self.key(), now, &mut problems);
            problems
        }

        /// Returns the problems of the start-up check for a router named `name`, with no
        /// trusted CAs.
        fn use_problems(&self, name: &str) -> PlanProblems {
            let mut problems = PlanProblems::default();
            let now = UNIX_EPOCH + Duration::from_secs(NOW);
            let identity =
                own_certificate_problems(&self.certificate(), &self.key(), now, &mut problems)
                    .unwrap();
            let trust = crate::pki::TrustStore::new();
            own_certificate_use(&identity, &self.certificate(), name, &trust, now)
                .apply(&mut problems);
            problems
        }
    }

    impl Drop for Installed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Writes a CA certificate named `cn`, made by `adjust` from CA parameters, into a
    /// new directory named after `tag` (removed on drop) as `ca.der` and `ca.pem`.
    fn ca_files(tag: &str, cn: &str, adjust: impl FnOnce(&mut CertificateParams)) -> Installed {
        let dir = std::env::temp_dir().join(format!("svrd-check-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        adjust(&mut params);
        let certificate = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.der"), certificate.der()).unwrap();
        std::fs::write(dir.join("ca.pem"), certificate.pem()).unwrap();
        Installed { dir }
    }

    /// Returns the file `name` of `files` as the trusted CA `lab`.
    fn trusted_ca(files: &Installed, name: &str) -> crate::config::Certificate {
        let path = files.dir.join(name).to_str().unwrap().to_owned();
        crate::config::Certificate {
            name: "lab".to_owned(),
            source: crate::config::CertificateSource::File(path),
            validation_mode: crate::config::ValidationMode::Strict,
            span: crate::config::Span::default(),
        }
    }

    #[test]
    fn render_lists_first_messages() {
        let report = CheckReport {
            file: "big.cfg".to_owned(),
            messages: (0..MAX_SHOWN + 50).map(|n| format!("line {n}: fault")).collect(),
            errors: MAX_SHOWN + 50,
            warnings: 0,
            routers: 0,
        };
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), MAX_SHOWN + 2);
        assert_eq!(lines[MAX_SHOWN - 1], format!("big.cfg: line {}: fault", MAX_SHOWN - 1));
        assert_eq!(lines[MAX_SHOWN], "big.cfg: 50 more messages not shown");
        let summary = format!("big.cfg: invalid: {} errors, 0 warnings", MAX_SHOWN + 50);
        assert_eq!(lines[MAX_SHOWN + 1], summary);
    }

    #[test]
    fn trusted_ca_der_file_accepted() {
        let files = ca_files("ca-der", "lab CA", |_| {});
        let mut problems = PlanProblems::default();
        let trust = trusted_cas(&[trusted_ca(&files, "ca.der")], &mut problems);
        assert_eq!(problems.errors, Vec::<String>::new());
        assert_eq!(trust.len(), 1);
    }

    #[test]
    fn trusted_ca_end_entity_rejected() {
        let cases = [
            (rcgen::IsCa::ExplicitNoCa, "basicConstraints CA:FALSE"),
            (rcgen::IsCa::NoCa, "no basicConstraints"),
        ];
        for (is_ca, found) in cases {
            let files = ca_files("ca-not-ca", "r1", |params| params.is_ca = is_ca);
            for file in ["ca.pem", "ca.der"] {
                let mut problems = PlanProblems::default();
                let trust = trusted_cas(&[trusted_ca(&files, file)], &mut problems);
                assert!(trust.is_empty(), "{file}, {found}");
                let path = files.dir.join(file);
                assert_eq!(
                    problems.errors,
                    [format!(
                        "trusted-ca-certificate lab (file {}): certificate CN=r1 is not a CA \
                         certificate ({found}); expected a CA certificate with basicConstraints \
                         CA:TRUE",
                        path.display()
                    )]
                );
            }
        }
    }

    #[test]
    fn own_certificate_use_name_matches() {
        let installed = Installed::new("name-ok", -DAY, 60 * DAY);
        let problems = installed.use_problems("r1");
        assert_eq!(problems.errors, Vec::<String>::new());
        assert_eq!(problems.warnings, Vec::<String>::new());
    }

    #[test]
    fn own_certificate_use_other_name_rejected() {
        let installed = Installed::new("name-other", -DAY, DAY);
        let problems = installed.use_problems("r2");
        assert_eq!(problems.errors.len(), 1, "{:?}", problems.errors);
        assert!(problems.errors[0].contains("svrd does not start"), "{}", problems.errors[0]);
        assert!(problems.errors[0].contains("name mismatch"), "{}", problems.errors[0]);
    }

    #[test]
    fn own_certificate_use_ca_rejected() {
        let installed = Installed::with_params("ca", -DAY, DAY, |params| {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        });
        let problems = installed.use_problems("r1");
        assert_eq!(problems.errors.len(), 1, "{:?}", problems.errors);
        assert!(problems.errors[0].contains("CA certificate"), "{}", problems.errors[0]);
    }

    #[test]
    fn own_certificate_valid_passes() {
        let installed = Installed::new("valid", -DAY, 60 * DAY);
        let problems = installed.problems();
        assert_eq!(problems.errors, Vec::<String>::new());
        assert_eq!(problems.warnings, Vec::<String>::new());
    }

    #[test]
    fn own_certificate_other_key_rejected() {
        let installed = Installed::new("mismatch", -DAY, DAY);
        std::fs::write(installed.key(), KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let error = installed.one_error();
        assert!(error.contains("does not match"), "{error}");
        assert!(error.contains("install the key"), "{error}");
    }

    #[test]
    fn own_certificate_unparsable_rejected() {
        let installed = Installed::new("garbage", -DAY, DAY);
        std::fs::write(installed.certificate(), "not a certificate\n").unwrap();
        let error = installed.one_error();
        assert!(error.contains("invalid certificate"), "{error}");
    }

    #[test]
    fn own_certificate_bad_key_rejected() {
        let installed = Installed::new("badkey", -DAY, DAY);
        std::fs::write(installed.key(), "not a key\n").unwrap();
        let error = installed.one_error();
        assert!(error.contains("invalid private key"), "{error}");
    }

    #[test]
    fn own_certificate_problem_shown_without_key() {
        let installed = Installed::new("nokey-garbage", -DAY, 60 * DAY);
        std::fs::remove_file(installed.key()).unwrap();
        std::fs::write(installed.certificate(), "not a certificate\n").unwrap();
        let errors = installed.problems().errors;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("invalid certificate"), "{}", errors[0]);
        assert!(errors[1].ends_with("r1.key is missing"), "{}", errors[1]);
    }

    #[test]
    fn own_certificate_missing_key_rejected() {
        let installed = Installed::new("nokey", -DAY, DAY);
        std::fs::remove_file(installed.key()).unwrap();
        let error = installed.one_error();
        assert!(error.ends_with("r1.key is missing"), "{error}");
    }

    #[test]
    fn own_certificate_expiring_warns() {
        for (days, severity) in [(5, "MAJOR"), (20, "MINOR")] {
            let installed = Installed::new("expiring", -DAY, days * DAY + 60);
            let problems = installed.problems();
            assert_eq!(problems.errors, Vec::<String>::new());
            assert_eq!(problems.warnings.len(), 1, "{:?}", problems.warnings);
            let warning = &problems.warnings[0];
            assert!(warning.contains(&format!("expires in {days} days")), "{warning}");
            assert!(warning.contains(&format!("{severity} alarm")), "{warning}");
        }
    }

    #[test]
    fn own_certificate_expired_warns() {
        let installed = Installed::new("expired", -2 * DAY, -DAY);
        let problems = installed.problems();
        assert_eq!(problems.errors, Vec::<String>::new());
        assert_eq!(problems.warnings.len(), 1);
        assert!(
            problems.warnings[0].contains("expired at 2027-01-14 08:00:00 UTC"),
            "{}",
            problems.warnings[0]
        );
    }

    #[test]
    fn own_certificate_not_yet_valid_rejected() {
        let installed = Installed::new("future", DAY, 60 * DAY);
        let problems = installed.use_problems("r1");
        assert_eq!(problems.warnings, Vec::<String>::new());
        assert_eq!(problems.errors.len(), 1, "{:?}", problems.errors);
        let error = &problems.errors[0];
        assert!(error.contains("svrd does not start with it"), "{error}");
        assert!(error.contains("not yet valid until 2027-01-16 08:00:00 UTC"), "{error}");
    }

    /// Returns a configuration of a router with one port bound by a DPDK virtual device
    /// under `driver`, with `binding` lines on the port, and no certificate of its own.
    #[cfg(not(feature = "dpdk"))]
    fn dpdk_router(driver: &str, binding: &str) -> String {
        format!(
            "config\nauthority\nrouter r1\nnode n1\ndataplane\ndriver {driver}\nexit\n\
             device-interface wan\nvdev net_null0\n{binding}\nnetwork-interface wan-net\n\
             address 10.9.0.1\nprefix-length 24\n"
        )
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn dpdk_port_without_dpdk_build_rejected() {
        let report = check_text("dpdk.cfg", &dpdk_router("dpdk", ""), None);
        assert_eq!(report.errors, 1, "{:?}", report.messages);
        assert_eq!(report.warnings, 0, "{:?}", report.messages);
        assert_eq!(
            report.messages,
            ["router r1: device-interface wan (net_null0): this svrd was built without DPDK; \
                 rebuild with `--features dpdk`, or bind the port with interface-name and driver \
                 af-xdp"]
        );
    }

    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn dpdk_port_with_fallback_warns() {
        let report = check_text("dpdk.cfg", &dpdk_router("auto", "interface-name wan0"), None);
        assert_eq!(report.errors, 0, "{:?}", report.messages);
        assert_eq!(report.warnings, 1, "{:?}", report.messages);
        let warning = &report.messages[0];
        assert!(warning.ends_with("until then svrd opens it with AF_XDP on wan0"), "{warning}");
    }
}
