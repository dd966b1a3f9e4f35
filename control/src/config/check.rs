//! `svrd --check FILE`: parse a configuration file and report every error and warning.

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
            if let Some(name) = router
                && let Err(e) = config.select_router(Some(name), "")
            {
                report.messages.push(e.to_string());
                report.errors += 1;
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
