//! `svrd --check FILE`: parse a configuration file and report every error and warning.
//!
//! After parsing, each router to check is resolved as the daemon resolves it at start
//! (ports, peer paths, BFD settings, the router's certificate). The certificate and CA
//! files of the plan are read too, so a file that passes the check does not fail the
//! daemon's start for those reasons. What needs the host (interfaces, XDP, the TPM) is
//! not checked.

use std::fmt::Write as _;
use std::path::Path;

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

    /// Formats every message, one per line, then the summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            let _ = writeln!(out, "{}: {m}", self.file);
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
                for problem in plan_problems(&config, router) {
                    report.messages.push(problem);
                    report.errors += 1;
                }
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

/// Resolves `router` as the daemon does at start, then reads the certificate and CA files
/// of its plan. Returns every problem found, each naming the router.
fn plan_problems(config: &super::Config, router: &super::Router) -> Vec<String> {
    let plan = match crate::daemon::Plan::resolve(config, router) {
        Ok(plan) => plan,
        // This message names the router already.
        Err(error @ crate::daemon::PlanError::NoNode { .. }) => return vec![error.to_string()],
        Err(error) => return vec![format!("router {}: {error}", router.name)],
    };
    let mut problems = Vec::new();
    if let Some((certificate, key)) = &plan.certificate {
        match std::fs::read(certificate) {
            Ok(pem) => {
                let parsed = crate::pki::validate::pem_certificates(&pem).and_then(|chain| {
                    let first = chain.first().ok_or(crate::pki::ValidationError::Malformed {
                        what: "certificate file",
                        detail: "no CERTIFICATE block".into(),
                    })?;
                    crate::pki::validate::parse_certificate(first).map(|_| ())
                });
                if let Err(error) = parsed {
                    problems.push(format!(
                        "client-certificate file {}: not a certificate: {error}",
                        certificate.display()
                    ));
                }
            }
            Err(error) => problems.push(format!(
                "client-certificate file {}: cannot be read: {error}",
                certificate.display()
            )),
        }
        if !key.exists() {
            problems.push(format!(
                "client-certificate file {}: its private key {} is missing",
                certificate.display(),
                key.display()
            ));
        }
    }
    for source in &plan.trusted_cas {
        let (origin, pem) = match source {
            super::CertificateSource::File(path) => match std::fs::read(path) {
                Ok(pem) => (format!("file {path}"), pem),
                Err(error) => {
                    problems.push(format!(
                        "trusted-ca-certificate file {path}: cannot be read: {error}"
                    ));
                    continue;
                }
            },
            super::CertificateSource::Content(text) => {
                ("content".to_owned(), text.as_bytes().to_vec())
            }
        };
        if let Err(error) = crate::pki::TrustStore::new().add_pem_bundle(&pem) {
            problems
                .push(format!("trusted-ca-certificate {origin}: not a CA certificate: {error}"));
        }
    }
    problems.into_iter().map(|problem| format!("router {}: {problem}", router.name)).collect()
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
