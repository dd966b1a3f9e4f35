//! Checks of svrd's own dataplane settings that need no host: the form of `pci-address`,
//! `vdev` and `interface-name`, the device each one binds, and `eal-argument` values that
//! DPDK's EAL rejects or ignores, or that end the process.
//!
//! The EAL rules are those of DPDK 22.11 (`rte_eal_init` and `eal_check_common_options`),
//! checked against `dpdk-testpmd` of that release.

/// `DDDD:BB:DD.F` or `BB:DD.F`, hexadecimal, with a device number of at most 0x1f and a
/// function of at most 7 (PCI gives them 5 and 3 bits).
pub(super) fn is_pci_address(text: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (rest, function) = match text.rsplit_once('.') {
        Some(p) => p,
        None => return false,
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let device = match parts.as_slice() {
        [domain, bus, device] if hex(domain, 4) && hex(bus, 2) && hex(device, 2) => device,
        [bus, device] if hex(bus, 2) && hex(device, 2) => device,
        _ => return false,
    };
    let device_in_range = u8::from_str_radix(device, 16).is_ok_and(|d| d <= 0x1f);
    device_in_range && function.len() == 1 && function.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

/// Returns the PCI address in DPDK's full form: lower-case, with the domain 0000 added when it is
/// left out, so that `03:00.0` and `0000:03:00.0` compare equal.
pub(super) fn full_pci_address(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if lower.matches(':').count() == 1 { format!("0000:{lower}") } else { lower }
}

/// `net_NAME` followed by any number of `,key=value`, where NAME, the keys and the values
/// are non-empty and have no blanks or commas. DPDK gives a port the name before the
/// first comma.
pub(super) fn is_vdev(text: &str) -> bool {
    let word = |s: &str| {
        !s.is_empty() && !s.bytes().any(|b| b == b',' || b == b'=' || b.is_ascii_whitespace())
    };
    let mut parts = text.split(',');
    let name_ok = parts.next().and_then(|name| name.strip_prefix("net_")).is_some_and(word);
    name_ok
        && parts
            .all(|pair| pair.split_once('=').is_some_and(|(key, value)| word(key) && word(value)))
}

/// Returns the device name of a virtual device: the part before the first comma.
pub(super) fn vdev_name(text: &str) -> &str {
    text.split(',').next().unwrap_or(text)
}

/// Returns the value of the `iface` key of a virtual device: the Linux interface that
/// `net_af_packet`, `net_af_xdp` and `net_pcap` open.
pub fn vdev_interface(text: &str) -> Option<&str> {
    text.split(',').skip(1).find_map(|pair| pair.strip_prefix("iface="))
}

/// Maximum length of a Linux interface name in bytes: IFNAMSIZ (16) less the NUL.
pub(super) const MAX_IFNAME_BYTES: usize = 15;

/// Linux limits interface names to [`MAX_IFNAME_BYTES`] and forbids `/`, `:` in names the
/// kernel accepts from user space, and blanks.
pub(super) fn is_linux_ifname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_IFNAME_BYTES
        && text != "."
        && text != ".."
        && !text
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// An EAL option that matters to the checks below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EalOption {
    /// `-h`, `--help`: EAL prints its usage and ends the process with status 0.
    Help,
    /// `--version`: not an EAL option, so EAL prints its usage and fails.
    Version,
    InMemory,
    /// `--no-huge`, which also turns on the legacy memory mode.
    NoHuge,
    LegacyMem,
    MatchAllocations,
    /// `--huge-unlink` or `--huge-unlink=always`.
    HugeUnlinkAlways,
    /// `--huge-unlink=never`.
    HugeUnlinkNever,
    SingleFileSegments,
    /// `-m`.
    Memory,
    SocketMem,
    /// `-a`, `--allow`.
    Allow,
    /// `-b`, `--block`.
    Block,
}

impl EalOption {
    fn spelling(self) -> &'static str {
        match self {
            EalOption::Help => "--help",
            EalOption::Version => "--version",
            EalOption::InMemory => "--in-memory",
            EalOption::NoHuge => "--no-huge",
            EalOption::LegacyMem => "--legacy-mem",
            EalOption::MatchAllocations => "--match-allocations",
            EalOption::HugeUnlinkAlways => "--huge-unlink",
            EalOption::HugeUnlinkNever => "--huge-unlink=never",
            EalOption::SingleFileSegments => "--single-file-segments",
            EalOption::Memory => "-m",
            EalOption::SocketMem => "--socket-mem",
            EalOption::Allow => "-a",
            EalOption::Block => "-b",
        }
    }
}

/// The long options of DPDK 22.11's EAL on Linux, as its usage lists them. getopt takes
/// any unambiguous abbreviation of one of them, such as `--in-mem` for `--in-memory`.
const EAL_LONG_OPTIONS: &[&str] = &[
    "allow",
    "base-virtaddr",
    "block",
    "create-uio-dev",
    "file-prefix",
    "force-max-simd-bitwidth",
    "help",
    "huge-dir",
    "huge-unlink",
    "huge-worker-stack",
    "in-memory",
    "iova-mode",
    "lcores",
    "legacy-mem",
    "log-level",
    "main-lcore",
    "match-allocations",
    "mbuf-pool-ops-name",
    "no-hpet",
    "no-huge",
    "no-pci",
    "no-shconf",
    "no-telemetry",
    "proc-type",
    "single-file-segments",
    "socket-limit",
    "socket-mem",
    "syslog",
    "telemetry",
    "trace",
    "trace-bufsz",
    "trace-dir",
    "trace-mode",
    "vdev",
    "vfio-intr",
    "vfio-vf-token",
    "vmware-tsc-map",
];

/// Reads one `eal-argument` as the EAL options it sets.
fn eal_options(argument: &str) -> Vec<EalOption> {
    if let Some(long) = argument.strip_prefix("--") {
        return long_option(long).into_iter().collect();
    }
    let Some(cluster) = argument.strip_prefix('-') else { return Vec::new() };
    let mut options = Vec::new();
    for letter in cluster.bytes() {
        match letter {
            b'h' => options.push(EalOption::Help),
            b'm' => options.push(EalOption::Memory),
            b'a' => options.push(EalOption::Allow),
            b'b' => options.push(EalOption::Block),
            _ => {}
        }
        // Of EAL's short options only -h and -v take no value, so after any other letter
        // the rest of the cluster is that option's value.
        if !matches!(letter, b'h' | b'v') {
            break;
        }
    }
    options
}

/// Reads a long option (without its `--`), resolving abbreviations as getopt does.
fn long_option(text: &str) -> Option<EalOption> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (text, None),
    };
    if name == "version" {
        return Some(EalOption::Version);
    }
    match (long_option_name(name)?, value) {
        ("help", _) => Some(EalOption::Help),
        ("in-memory", _) => Some(EalOption::InMemory),
        ("no-huge", _) => Some(EalOption::NoHuge),
        ("legacy-mem", _) => Some(EalOption::LegacyMem),
        ("match-allocations", _) => Some(EalOption::MatchAllocations),
        ("huge-unlink", None | Some("always")) => Some(EalOption::HugeUnlinkAlways),
        ("huge-unlink", Some("never")) => Some(EalOption::HugeUnlinkNever),
        ("single-file-segments", _) => Some(EalOption::SingleFileSegments),
        ("socket-mem", _) => Some(EalOption::SocketMem),
        ("allow", _) => Some(EalOption::Allow),
        ("block", _) => Some(EalOption::Block),
        _ => None,
    }
}

/// Returns the EAL long option that `name` spells out or abbreviates without ambiguity.
fn long_option_name(name: &str) -> Option<&'static str> {
    if let Some(exact) = EAL_LONG_OPTIONS.iter().find(|option| **option == name) {
        return Some(exact);
    }
    let mut matches = EAL_LONG_OPTIONS.iter().filter(|option| option.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !name.is_empty() => Some(only),
        _ => None,
    }
}

/// Values of `--huge-unlink`, which DPDK 22.11's EAL reads only after `=`.
const HUGE_UNLINK_VALUES: &[&str] = &["existing", "always", "never"];

/// Tells whether `argument` is `--huge-unlink`, or an abbreviation of it, with no `=value`.
fn is_bare_huge_unlink(argument: &str) -> bool {
    argument
        .strip_prefix("--")
        .filter(|name| !name.contains('='))
        .and_then(long_option_name)
        .is_some_and(|name| name == "huge-unlink")
}

/// Tells whether `argument` contains several EAL arguments separated by blanks, which EAL
/// would receive as one: an option with a blank before its `=value` (or anywhere, without
/// one), or any argument with a later word that starts with `-`. A blank inside an option's
/// value, as in a path, is allowed.
fn contains_several_arguments(argument: &str) -> bool {
    let option_name = argument.split('=').next().unwrap_or(argument);
    let blank_in_option =
        argument.trim_start().starts_with('-') && option_name.contains(char::is_whitespace);
    blank_in_option || argument.split_whitespace().skip(1).any(|word| word.starts_with('-'))
}

/// Checks the form of the arguments: one argument per line, no `--`, and each
/// `--huge-unlink` value given after `=`.
fn form_problems(arguments: &[&str]) -> Vec<EalProblem> {
    let mut problems = Vec::new();
    for (index, argument) in arguments.iter().enumerate() {
        if contains_several_arguments(argument) {
            let lines: Vec<String> =
                argument.split_whitespace().map(|word| format!("eal-argument {word}")).collect();
            problems.push(EalProblem {
                index,
                reason: format!(
                    "EAL receives it as one argument, blanks included; give one argument per \
                     eal-argument line ({})",
                    lines.join(", then ")
                ),
            });
        }
        if *argument == "--" {
            problems.push(EalProblem {
                index,
                reason: "ends EAL's options, so EAL ignores every eal-argument after it; remove \
                         it"
                .to_owned(),
            });
        }
        let next = arguments.get(index + 1).copied();
        if let Some(value) = next.filter(|next| HUGE_UNLINK_VALUES.contains(next))
            && is_bare_huge_unlink(argument)
        {
            // EAL's getopt moves the stray value behind the options and leaves it to the
            // program, and svrd ignores what EAL leaves.
            problems.push(EalProblem {
                index,
                reason: format!(
                    "EAL reads a value of --huge-unlink only after =, so it takes this one as \
                     --huge-unlink=always and ignores the next eal-argument {value}; write \
                     eal-argument --huge-unlink={value}"
                ),
            });
        }
    }
    problems
}

/// Two options that EAL rejects together, unless a third one is given.
struct EalConflict {
    first: EalOption,
    second: EalOption,
    unless: Option<EalOption>,
    reason: &'static str,
}

const fn conflict(first: EalOption, second: EalOption, reason: &'static str) -> EalConflict {
    EalConflict { first, second, unless: None, reason }
}

/// The option pairs DPDK 22.11's EAL rejects at start.
const EAL_CONFLICTS: &[EalConflict] = &[
    conflict(EalOption::InMemory, EalOption::NoHuge, "--no-huge turns on the legacy memory mode"),
    conflict(EalOption::InMemory, EalOption::LegacyMem, "legacy memory needs runtime files"),
    conflict(EalOption::InMemory, EalOption::HugeUnlinkNever, "in-memory unlinks every hugepage"),
    conflict(EalOption::NoHuge, EalOption::HugeUnlinkAlways, "there are no hugepage files"),
    conflict(
        EalOption::NoHuge,
        EalOption::SocketMem,
        "without hugepages there is no per-socket memory",
    ),
    conflict(
        EalOption::NoHuge,
        EalOption::MatchAllocations,
        "--no-huge turns on the legacy memory mode",
    ),
    conflict(EalOption::LegacyMem, EalOption::MatchAllocations, "legacy memory is never freed"),
    conflict(EalOption::Memory, EalOption::SocketMem, "both set the memory to reserve"),
    conflict(EalOption::Allow, EalOption::Block, "EAL takes an allow list or a block list"),
    EalConflict {
        first: EalOption::SingleFileSegments,
        second: EalOption::HugeUnlinkAlways,
        unless: Some(EalOption::InMemory),
        reason: "a single segment file cannot be unlinked before mapping",
    },
];

/// An `eal-argument` that EAL would reject or that would end svrd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EalProblem {
    /// Index of the argument in the list it was checked in.
    pub index: usize,
    pub reason: String,
}

/// Checks a node's `eal-argument` values. `pci_ports` is whether the node has a port
/// bound by `pci-address`, for which svrd passes `-a ADDRESS` itself.
pub(super) fn check_eal_arguments(arguments: &[&str], pci_ports: bool) -> Vec<EalProblem> {
    let parsed: Vec<Vec<EalOption>> = arguments.iter().map(|a| eal_options(a)).collect();
    let mut problems = form_problems(arguments);
    for (index, options) in parsed.iter().enumerate() {
        if options.contains(&EalOption::Help) {
            problems.push(EalProblem {
                index,
                reason: "DPDK's EAL prints its usage on it and ends svrd; remove it (run \
                         dpdk-testpmd --help to read the EAL options)"
                    .to_owned(),
            });
        }
        if options.contains(&EalOption::Version) {
            problems.push(EalProblem {
                index,
                reason: "not an EAL option, so EAL prints its usage and fails to start; use -v \
                         to log DPDK's version"
                    .to_owned(),
            });
        }
        if pci_ports && options.contains(&EalOption::Block) {
            problems.push(EalProblem {
                index,
                reason: "EAL rejects a block list together with -a, which svrd passes for each \
                         pci-address; remove it, since only the configured PCI ports are used"
                    .to_owned(),
            });
        }
        for rule in EAL_CONFLICTS {
            if rule.unless.is_some_and(|unless| parsed.iter().any(|o| o.contains(&unless))) {
                continue;
            }
            for (this, other) in [(rule.first, rule.second), (rule.second, rule.first)] {
                if !options.contains(&this) {
                    continue;
                }
                // Each pair is reported once, at the later of its two arguments.
                let earlier = parsed[..index].iter().position(|o| o.contains(&other));
                if let Some(earlier) = earlier {
                    problems.push(EalProblem {
                        index,
                        reason: format!(
                            "DPDK's EAL rejects it together with {} (eal-argument {}): {}; \
                             remove one of them",
                            other.spelling(),
                            arguments[earlier],
                            rule.reason
                        ),
                    });
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `is_valid` accepts each of `good` and rejects each of `bad`.
    fn assert_forms(is_valid: fn(&str) -> bool, good: &[&str], bad: &[&str]) {
        for text in good {
            assert!(is_valid(text), "{text} rejected");
        }
        for text in bad {
            assert!(!is_valid(text), "{text} accepted");
        }
    }

    #[test]
    fn pci_address_forms() {
        let good = ["0000:03:00.0", "03:00.0", "ABCD:ef:1f.7"];
        let bad = ["0000:3:00.0", "03:00", "03:00.8", "03:20.0", "0000:03:00.00", "x3:00.0"];
        assert_forms(is_pci_address, &good, &bad);
    }

    #[test]
    fn pci_address_full_form() {
        assert_eq!(full_pci_address("03:00.0"), "0000:03:00.0");
        assert_eq!(full_pci_address("0000:0A:00.1"), "0000:0a:00.1");
    }

    #[test]
    fn vdev_forms() {
        let good = ["net_tap0", "net_af_packet0,iface=wan0", "net_ring0,a=1,b=x.y"];
        let bad = ["tap0", "net_", "net_tap0,", "net_tap0,iface", "net_tap0,iface=", "net_a b"];
        assert_forms(is_vdev, &good, &bad);
    }

    #[test]
    fn vdev_iface_key() {
        assert_eq!(vdev_interface("net_af_packet0,qpairs=1,iface=wan0"), Some("wan0"));
        assert_eq!(vdev_interface("net_null0"), None);
    }

    fn reasons(arguments: &[&str], pci_ports: bool) -> Vec<(usize, String)> {
        check_eal_arguments(arguments, pci_ports)
            .into_iter()
            .map(|problem| (problem.index, problem.reason))
            .collect()
    }

    #[test]
    fn eal_help_rejected() {
        for help in ["-h", "--help", "--hel", "-vh"] {
            let found = reasons(&["--no-telemetry", help], false);
            assert_eq!(found.len(), 1, "{help}: {found:?}");
            assert_eq!(found[0].0, 1, "{help}");
            assert!(found[0].1.contains("ends svrd"), "{help}: {}", found[0].1);
        }
    }

    #[test]
    fn eal_version_rejected() {
        let found = reasons(&["--version"], false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("not an EAL option"), "{}", found[0].1);
    }

    #[test]
    fn eal_version_log_accepted() {
        assert!(reasons(&["-v"], false).is_empty());
        assert!(reasons(&["-l", "1-3,h"], false).is_empty());
    }

    #[test]
    fn eal_in_memory_no_huge_rejected() {
        let found = reasons(&["--no-huge", "--log-level=7", "--in-mem"], false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("together with --no-huge (eal-argument --no-huge)"));
    }

    #[test]
    fn eal_conflicting_pairs_rejected() {
        let pairs: &[(&str, &str)] = &[
            ("--in-memory", "--legacy-mem"),
            ("--in-memory", "--huge-unlink=never"),
            ("--no-huge", "--huge-unlink"),
            ("--no-huge", "--socket-mem=64"),
            ("--no-huge", "--match-allocations"),
            ("--legacy-mem", "--match-allocations"),
            ("-m64", "--socket-mem=64"),
            ("-a0000:01:00.0", "--block=0000:02:00.0"),
            ("--single-file-segments", "--huge-unlink=always"),
        ];
        for (first, second) in pairs {
            let found = reasons(&[first, second], false);
            assert_eq!(found.len(), 1, "{first} {second}: {found:?}");
            assert_eq!(found[0].0, 1, "{first} {second}");
        }
    }

    #[test]
    fn eal_compatible_pairs_accepted() {
        let pairs: &[(&str, &str)] = &[
            ("--no-huge", "--legacy-mem"),
            ("--no-huge", "--single-file-segments"),
            ("--in-memory", "--no-shconf"),
            ("--in-memory", "--huge-unlink"),
            ("--no-huge", "-m"),
        ];
        for (first, second) in pairs {
            assert_eq!(reasons(&[first, second], false), [], "{first} {second}");
        }
        let in_memory = ["--single-file-segments", "--huge-unlink", "--in-memory"];
        assert_eq!(reasons(&in_memory, false), []);
    }

    #[test]
    fn eal_several_arguments_in_one_rejected() {
        for argument in ["--in-memory --no-huge", "-l 1-3", "--log-level=7 --no-pci", " --no-huge"]
        {
            let found = reasons(&["--no-telemetry", argument], false);
            assert_eq!(found.len(), 1, "{argument}: {found:?}");
            assert_eq!(found[0].0, 1, "{argument}");
            assert!(found[0].1.contains("one argument per eal-argument line"), "{}", found[0].1);
        }
        let found = reasons(&["--in-memory --no-huge"], false);
        assert!(
            found[0].1.ends_with("(eal-argument --in-memory, then eal-argument --no-huge)"),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn eal_blank_inside_value_accepted() {
        assert_eq!(reasons(&["--huge-dir=/mnt/huge pages"], false), []);
        assert_eq!(reasons(&["-d", "/opt/dpdk drivers/librte_net_null.so"], false), []);
    }

    #[test]
    fn eal_huge_unlink_separate_value_rejected() {
        for value in ["never", "always", "existing"] {
            let found = reasons(&["--huge-unlink", value], false);
            assert_eq!(found.len(), 1, "{value}: {found:?}");
            assert_eq!(found[0].0, 0, "{value}");
            let hint = format!("write eal-argument --huge-unlink={value}");
            assert!(found[0].1.ends_with(&hint), "{}", found[0].1);
        }
        assert_eq!(reasons(&["--huge-unl", "never"], false).len(), 1);
        assert_eq!(reasons(&["--huge-unlink=never"], false), []);
        assert_eq!(reasons(&["--huge-unlink", "--no-shconf"], false), []);
    }

    #[test]
    fn eal_option_list_end_rejected() {
        let found = reasons(&["--no-shconf", "--", "--no-telemetry"], false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1);
        assert!(found[0].1.contains("EAL ignores every eal-argument after it"), "{}", found[0].1);
    }

    #[test]
    fn eal_block_with_pci_port_rejected() {
        assert!(reasons(&["-b", "0000:02:00.0"], false).is_empty());
        let found = reasons(&["-b", "0000:02:00.0"], true);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 0);
    }
}
