//! DPDK's Environment Abstraction Layer: [`EalConfig`], the arguments svrd passes to
//! `rte_eal_init`, and [`Eal`], the proof that EAL is running in this process.
//!
//! DPDK can initialise EAL only once per process, even after `rte_eal_cleanup`, so the
//! outcome of the first [`Eal::init`] is kept for the life of the process.

use std::{
    ffi::{CString, c_char, c_int},
    sync::OnceLock,
};

use super::{dpdk_error, rte_errno};
use crate::io::IoError;

/// Highest lcore id plus one in the DPDK build svrd links against (`RTE_MAX_LCORE` of
/// Debian's DPDK 22.11).
const MAX_LCORE: u16 = 128;

/// Arguments of `rte_eal_init`, as configuration fills them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// Cores EAL runs on (`-l`). The first is the main lcore, and EAL pins the thread
    /// that calls [`Eal::init`] to it. Empty leaves EAL's default, every core.
    pub cores: Vec<u16>,
    /// Back DPDK memory with hugepages; `false` passes `--no-huge`.
    pub hugepages: bool,
    /// Memory to reserve at start-up in MiB (`-m`); `None` leaves EAL's default.
    pub memory_mb: Option<u32>,
    /// Scan the PCI bus for NICs; `false` passes `--no-pci`.
    pub pci: bool,
    /// Virtual devices (`--vdev`), each `driverN,key=value,...`, for example
    /// `net_af_xdp0,iface=wan0`.
    pub vdevs: Vec<String>,
    /// Prefix of EAL's runtime files under `/var/run/dpdk` (`--file-prefix`).
    pub file_prefix: Option<String>,
    /// Share configuration with secondary processes; `false` passes `--no-shconf`.
    pub shared_config: bool,
    /// Open DPDK's telemetry socket; `false` passes `--no-telemetry`.
    pub telemetry: bool,
    /// Further arguments, passed after the others unchanged.
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    /// EAL's own defaults: every core, hugepages, PCI, shared configuration, telemetry.
    fn default() -> EalConfig {
        EalConfig {
            cores: Vec::new(),
            hugepages: true,
            memory_mb: None,
            pci: true,
            vdevs: Vec::new(),
            file_prefix: None,
            shared_config: true,
            telemetry: true,
            extra_args: Vec::new(),
        }
    }
}

impl EalConfig {
    /// A configuration for virtual devices only: main lcore 0, no hugepages, no PCI scan,
    /// 256 MiB of ordinary memory, no shared configuration and no telemetry socket, so
    /// several such processes can run side by side.
    pub fn virtual_devices(vdevs: Vec<String>) -> EalConfig {
        EalConfig {
            cores: vec![0],
            hugepages: false,
            memory_mb: Some(256),
            pci: false,
            vdevs,
            file_prefix: None,
            shared_config: false,
            telemetry: false,
            extra_args: Vec::new(),
        }
    }

    /// Builds the argument vector for `rte_eal_init`, program name first.
    pub fn args(&self) -> Result<Vec<String>, IoError> {
        let mut args = vec!["svrd".to_owned()];

        if !self.cores.is_empty() {
            if let Some(core) = self.cores.iter().find(|&&core| core >= MAX_LCORE) {
                return Err(IoError::EalArgument {
                    argument: format!("core {core}"),
                    expected: "a core id below 128 (RTE_MAX_LCORE)",
                });
            }
            let list: Vec<String> = self.cores.iter().map(u16::to_string).collect();
            args.push("-l".to_owned());
            args.push(list.join(","));
        }
        if !self.hugepages {
            args.push("--no-huge".to_owned());
        }
        if let Some(memory) = self.memory_mb {
            if memory == 0 {
                return Err(IoError::EalArgument {
                    argument: "-m 0".to_owned(),
                    expected: "at least 1 MiB of memory",
                });
            }
            args.push("-m".to_owned());
            args.push(memory.to_string());
        }
        if !self.pci {
            args.push("--no-pci".to_owned());
        }
        for vdev in &self.vdevs {
            if vdev.is_empty() || vdev.contains(char::is_whitespace) {
                return Err(IoError::EalArgument {
                    argument: format!("--vdev={vdev}"),
                    expected: "a device name with optional ,key=value pairs and no spaces",
                });
            }
            args.push(format!("--vdev={vdev}"));
        }
        if let Some(prefix) = &self.file_prefix {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if prefix.is_empty() || prefix.starts_with('.') || !prefix.chars().all(allowed) {
                return Err(IoError::EalArgument {
                    argument: format!("--file-prefix={prefix}"),
                    expected: "a file name of letters, digits, '-', '_' and '.'",
                });
            }
            args.push(format!("--file-prefix={prefix}"));
        }
        if !self.shared_config {
            args.push("--no-shconf".to_owned());
        }
        if !self.telemetry {
            args.push("--no-telemetry".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());

        if let Some(bad) = args.iter().find(|arg| arg.contains('\0')) {
            return Err(IoError::EalArgument {
                argument: bad.replace('\0', "\\0"),
                expected: "no NUL bytes",
            });
        }
        Ok(args)
    }
}

/// Proof that EAL runs in this process, required to open a [`DpdkPort`](super::DpdkPort).
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    config: &'static EalConfig,
}

/// Outcome of the one `rte_eal_init` call of the process.
static EAL: OnceLock<Result<EalConfig, EalFailure>> = OnceLock::new();

#[derive(Debug)]
struct EalFailure {
    config: EalConfig,
    errno: i32,
}

impl Eal {
    /// Initialises EAL with `config`, or returns the running EAL if an earlier call used
    /// the same configuration.
    ///
    /// The calling thread becomes EAL's main lcore and is pinned to the first core of
    /// `config.cores`. Errors:
    /// - [`IoError::EalArgument`] for a value that cannot be passed, before EAL is touched;
    /// - [`IoError::EalConflict`] if EAL already runs, or failed, with another
    ///   configuration;
    /// - [`IoError::EalInit`], or [`IoError::PermissionDenied`] for EACCES, if
    ///   `rte_eal_init` failed. A later call with the same configuration returns the same
    ///   error, because DPDK cannot always retry.
    pub fn init(config: &EalConfig) -> Result<Eal, IoError> {
        let args = config.args()?;
        let outcome = EAL.get_or_init(|| run_eal_init(config, args));

        match outcome {
            Ok(running) if running == config => Ok(Eal { config: running }),
            Ok(running) => Err(conflict(running, config)),
            Err(failure) if failure.config == *config => {
                Err(dpdk_error("rte_eal_init", "", failure.errno))
            }
            Err(failure) => Err(conflict(&failure.config, config)),
        }
    }

    /// Returns the running EAL, if an [`Eal::init`] succeeded.
    pub fn get() -> Option<Eal> {
        match EAL.get() {
            Some(Ok(config)) => Some(Eal { config }),
            _ => None,
        }
    }

    /// Returns the configuration EAL runs with.
    pub fn config(&self) -> &'static EalConfig {
        self.config
    }
}

fn conflict(running: &EalConfig, requested: &EalConfig) -> IoError {
    let join = |config: &EalConfig| config.args().map(|args| args.join(" ")).unwrap_or_default();
    IoError::EalConflict { running: join(running), requested: join(requested) }
}

fn run_eal_init(config: &EalConfig, args: Vec<String>) -> Result<EalConfig, EalFailure> {
    tracing::debug!(args = %args.join(" "), "initialising DPDK EAL");

    // EAL may keep pointers into argv (getopt permutes it, some options are stored as
    // given), so the strings and the array live for the rest of the process. This runs
    // once per process.
    let strings: Vec<CString> = args.into_iter().filter_map(|arg| CString::new(arg).ok()).collect();
    let strings: &'static [CString] = Vec::leak(strings);
    let mut argv: Vec<*mut c_char> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let argv: &'static mut [*mut c_char] = Vec::leak(argv);
    let argc = c_int::try_from(strings.len()).unwrap_or(c_int::MAX);

    // SAFETY: `argv` contains `argc` pointers to NUL-terminated strings followed by a null
    // pointer, all valid for the life of the process. The OnceLock makes this the only
    // call in the process.
    let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        let errno = rte_errno();
        tracing::error!(errno, "DPDK EAL initialisation failed");
        return Err(EalFailure { config: config.clone(), errno });
    }
    tracing::debug!("DPDK EAL initialised");
    Ok(config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_args_virtual_devices() {
        let config = EalConfig::virtual_devices(vec!["net_ring0".into()]);
        assert_eq!(
            config.args().unwrap(),
            [
                "svrd",
                "-l",
                "0",
                "--no-huge",
                "-m",
                "256",
                "--no-pci",
                "--vdev=net_ring0",
                "--no-shconf",
                "--no-telemetry"
            ]
        );
    }

    #[test]
    fn eal_args_default_is_bare() {
        assert_eq!(EalConfig::default().args().unwrap(), ["svrd"]);
    }

    #[test]
    fn eal_args_prefix_and_cores() {
        let config = EalConfig {
            cores: vec![1, 3],
            file_prefix: Some("svrd-wan".into()),
            extra_args: vec!["--log-level=lib.eal:debug".into()],
            ..EalConfig::default()
        };
        assert_eq!(
            config.args().unwrap(),
            ["svrd", "-l", "1,3", "--file-prefix=svrd-wan", "--log-level=lib.eal:debug"]
        );
    }

    #[test]
    fn eal_args_reject_core() {
        let config = EalConfig { cores: vec![0, 128], ..EalConfig::default() };
        let err = config.args().unwrap_err();
        assert!(matches!(err, IoError::EalArgument { ref argument, .. } if argument == "core 128"));
    }

    #[test]
    fn eal_args_reject_prefix() {
        for prefix in ["", "../etc", "a/b", ".hidden"] {
            let config = EalConfig { file_prefix: Some(prefix.into()), ..EalConfig::default() };
            let err = config.args().unwrap_err();
            assert!(matches!(err, IoError::EalArgument { .. }), "prefix {prefix:?}: {err}");
        }
    }

    #[test]
    fn eal_args_reject_vdev_and_nul() {
        let spaced = EalConfig::virtual_devices(vec!["net_ring0 --no-pci".into()]);
        assert!(matches!(spaced.args(), Err(IoError::EalArgument { .. })));

        let nul = EalConfig { extra_args: vec!["--a\0b".into()], ..EalConfig::default() };
        let err = nul.args().unwrap_err();
        assert_eq!(err.to_string(), "invalid EAL argument \"--a\\\\0b\": expected no NUL bytes");

        let memory = EalConfig { memory_mb: Some(0), ..EalConfig::default() };
        assert!(matches!(memory.args(), Err(IoError::EalArgument { .. })));
    }
}
