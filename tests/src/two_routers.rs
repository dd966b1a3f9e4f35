//! The two-router topology of the daemon tests, host1 - r1 = wan = r2 - host5, with one
//! svrd per router under ESKM and one WAN link between the routers.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::authority::{Authority, Port, Route, Router, Service};
use crate::harness::{HarnessError, Namespaces, Result, Svrd, TempDir, svrd_binary};

/// Time allowed for the key exchange of every peer path.
pub const KEYS: Duration = Duration::from_secs(30);

/// The waypoint family of the two-router topology.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wan {
    V4,
    V6,
}

/// host1 - r1 = wan = r2 - host5, with one svrd per router.
///
/// Addresses: LAN 1 is 10.244.1.0/24 and fd44:1::/64, LAN 5 is 10.244.5.0/24 and
/// fd44:5::/64 (host5 also has 10.244.5.20), and the WAN is 10.244.10.0/24 or fd44:10::/64.
#[derive(Debug)]
pub struct TwoRouters {
    // Fields drop in order: the routers stop before their namespaces go.
    pub r1: Svrd,
    pub r2: Svrd,
    /// The authority file both routers run.
    pub config: PathBuf,
    pub dir: TempDir,
    pub ns: Namespaces,
    pub wan: Wan,
}

impl TwoRouters {
    /// Returns the authority. With `extra_service` it has the service to-host6 for
    /// 10.244.5.20.
    pub fn authority(wan: Wan, extra_service: bool) -> Authority {
        let (r1_wan, r2_wan) = match wan {
            Wan::V4 => ("10.244.10.1/24", "10.244.10.2/24"),
            Wan::V6 => ("fd44:10::1/64", "fd44:10::2/64"),
        };
        let address = |cidr: &'static str| cidr.split('/').next().unwrap_or(cidr);
        let mut services = vec![
            Service::new("to-host5", &["corp"], &["10.244.5.10/32", "fd44:5::/64"]),
            Service::new("to-host1", &["corp"], &["10.244.1.0/24", "fd44:1::/64"]),
        ];
        let mut r1_routes =
            vec![Route::peer("to-host5", "r2"), Route::local("to-host1", "lan", None)];
        let mut r2_routes =
            vec![Route::peer("to-host1", "r1"), Route::local("to-host5", "lan", None)];
        if extra_service {
            services.push(Service::new("to-host6", &["corp"], &["10.244.5.20/32"]));
            r1_routes.push(Route::peer("to-host6", "r2"));
            r2_routes.push(Route::local("to-host6", "lan", None));
        }
        Authority {
            classic: None,
            tenants: vec!["corp".into()],
            services,
            routers: vec![
                Router {
                    name: "r1".into(),
                    ports: vec![
                        Port::lan("lan", "corp", &["10.244.1.1/24", "fd44:1::1/64"]),
                        Port::wan("wan", r1_wan, &[(address(r2_wan), "r2")]),
                    ],
                    routes: r1_routes,
                },
                Router {
                    name: "r2".into(),
                    ports: vec![
                        Port::lan("lan", "corp", &["10.244.5.1/24", "fd44:5::1/64"]),
                        Port::wan("wan", r2_wan, &[(address(r1_wan), "r1")]),
                    ],
                    routes: r2_routes,
                },
            ],
        }
    }

    /// Builds the topology under the namespace tag `tag`, writes the authority and starts
    /// both routers, then waits for the keys on the peer path.
    pub fn start(tag: &str, wan: Wan, extra_service: bool) -> Result<TwoRouters> {
        let mut ns = Namespaces::new(tag);
        let dir = TempDir::new(&format!("daemon-{tag}"))?;
        for (name, router) in [("host1", false), ("r1", true), ("r2", true), ("host5", false)] {
            ns.add(name, router)?;
        }
        ns.link("host1", "lan", "r1", "lan")?;
        ns.link("r1", "wan", "r2", "wan")?;
        ns.link("r2", "lan", "host5", "lan")?;
        for (host, cidr) in [
            ("host1", "10.244.1.10/24"),
            ("host1", "fd44:1::10/64"),
            ("r1", "10.244.1.1/24"),
            ("r1", "fd44:1::1/64"),
            ("r2", "10.244.5.1/24"),
            ("r2", "fd44:5::1/64"),
            ("host5", "10.244.5.10/24"),
            ("host5", "10.244.5.20/24"),
            ("host5", "fd44:5::10/64"),
        ] {
            ns.addr(host, "lan", cidr)?;
        }
        let (r1_wan, r2_wan) = match wan {
            Wan::V4 => ("10.244.10.1/24", "10.244.10.2/24"),
            Wan::V6 => ("fd44:10::1/64", "fd44:10::2/64"),
        };
        ns.addr("r1", "wan", r1_wan)?;
        ns.addr("r2", "wan", r2_wan)?;
        for (host, gateway) in [
            ("host1", "10.244.1.1"),
            ("host1", "fd44:1::1"),
            ("host5", "10.244.5.1"),
            ("host5", "fd44:5::1"),
        ] {
            ns.default_route(host, gateway)?;
        }

        // svrd reads next hops from the kernels' neighbour tables, so fill them first.
        let r2_wan_ip = r2_wan.split('/').next().unwrap_or_default();
        for (from, to) in [
            ("host1", "10.244.1.1"),
            ("host1", "fd44:1::1"),
            ("host5", "10.244.5.1"),
            ("host5", "fd44:5::1"),
            ("r2", "10.244.5.20"),
            ("r1", r2_wan_ip),
        ] {
            ns.warm(from, to)?;
        }

        svrd_binary()?;
        let begun = Instant::now();
        let config = dir.join("authority.cfg");
        fs::write(&config, Self::authority(wan, extra_service).render())
            .map_err(|e| HarnessError(format!("cannot write {}: {e}", config.display())))?;
        let mut r1 = Svrd::start(&ns, "r1", "r1", &config, &dir.0)?;
        let mut r2 = Svrd::start(&ns, "r2", "r2", &config, &dir.0)?;
        r1.wait_complete(1, KEYS)?;
        r2.wait_complete(1, KEYS)?;
        eprintln!("keys exchanged {:?} after the start", begun.elapsed());
        Ok(TwoRouters { r1, r2, config, dir, ns, wan })
    }

    /// Returns the last lines of both routers' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.r1.log_tail(25),
            self.r2.log_tail(25)
        )
    }
}
