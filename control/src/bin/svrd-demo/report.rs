//! The demo's output: step headings, `PASS name: detail` and `FAIL name: detail` lines as
//! `scripts/demo` prints them, and the figures of a traffic phase.

use std::time::Duration;

use crate::traffic::{FAMILIES, FamilyReport, PAYLOAD_LEN, PhaseReport};

/// The checks run so far.
#[derive(Debug, Default)]
pub struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    /// Prints the outcome of check `name` and records it.
    pub fn check(&mut self, name: &str, ok: bool, detail: &str) {
        if ok {
            println!("PASS {name}: {detail}");
            self.passed += 1;
        } else {
            println!("FAIL {name}: {detail}");
            self.failed.push(name.to_owned());
        }
    }

    pub fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// The last line: every check passed, or which failed.
    pub fn summary(&self) -> String {
        if self.failed.is_empty() {
            format!("demo: all {} checks passed", self.passed)
        } else {
            format!(
                "demo: FAILED {} of {} checks: {}",
                self.failed.len(),
                self.passed + self.failed.len(),
                self.failed.join(", ")
            )
        }
    }
}

/// Prints a step heading.
pub fn step(name: &str) {
    println!("== {name}");
}

/// Formats one family's figures: what came back, the round-trip percentiles and the
/// throughput of the payload that reached host5.
pub fn family_line(family: &FamilyReport, sending: Duration) -> String {
    let milliseconds = |p: f64| {
        family.percentile_us(p).map_or("-".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0))
    };
    let unsent = if family.unsent > 0 {
        format!(" ({} of them not sent: gateway unresolved or port full)", family.unsent)
    } else {
        String::new()
    };
    format!(
        "{}/{} back ({} reached host5), {} lost{unsent}, {} altered, {} duplicated; rtt \
         p50/p90/p99/max {}/{}/{}/{} ms; {:.1} Mbit/s each way",
        family.returned,
        family.sent,
        family.delivered,
        family.lost(),
        family.altered,
        family.duplicates,
        milliseconds(50.0),
        milliseconds(90.0),
        milliseconds(99.0),
        milliseconds(100.0),
        megabits_per_second(family.delivered, sending),
    )
}

/// Prints the figures of both families of `report`.
pub fn print_phase(report: &PhaseReport) {
    for (name, family) in FAMILIES.iter().zip(&report.families) {
        println!("  {name}: {}", family_line(family, report.sending));
    }
}

/// Formats the summary of a phase: the payload rate of both families together and their
/// round-trip time percentiles.
pub fn throughput_line(report: &PhaseReport) -> String {
    let delivered: u64 = report.families.iter().map(|family| family.delivered).sum();
    let mut both = report.families[0].clone();
    both.round_trips_us.extend(&report.families[1].round_trips_us);
    let milliseconds =
        |p| both.percentile_us(p).map_or("-".to_owned(), |us| format!("{:.2}", us as f64 / 1e3));
    format!(
        "throughput {:.1} Mbit/s each way (UDP payload of both families), round trip p50/p99 \
         {}/{} ms, without rotation",
        megabits_per_second(delivered, report.sending),
        milliseconds(50.0),
        milliseconds(99.0)
    )
}

/// Whether every datagram of the phase came back once and unchanged.
pub fn intact(family: &FamilyReport) -> bool {
    family.sent > 0 && family.lost() == 0 && family.altered == 0 && family.duplicates == 0
}

/// The UDP payload rate of `datagrams` over `time`, in Mbit/s.
pub fn megabits_per_second(datagrams: u64, time: Duration) -> f64 {
    let seconds = time.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    (datagrams * PAYLOAD_LEN as u64 * 8) as f64 / seconds / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_failed_checks() {
        let mut checks = Checks::default();
        checks.check("one", true, "fine");
        checks.check("two", false, "broken");
        checks.check("three", false, "broken");
        assert!(!checks.all_passed());
        assert_eq!(checks.summary(), "demo: FAILED 2 of 3 checks: two, three");
    }

    #[test]
    fn intact_needs_every_datagram() {
        let mut family = FamilyReport { sent: 10, returned: 10, ..Default::default() };
        assert!(intact(&family));
        family.returned = 9;
        assert!(!intact(&family));
        family.returned = 10;
        family.altered = 1;
        assert!(!intact(&family));
        assert!(!intact(&FamilyReport::default()), "a phase that sent nothing is not intact");
    }
}
