//! SSR configuration text: lexer, schema-driven parser, typed model, generation of peers
//! from neighborhoods, and validation. See `docs/configuration.md` for the accepted syntax.
//!
//! [`parse_authority`] either returns a complete [`Config`] or every error it found; a bad
//! text never yields a partly built configuration.

pub mod check;
mod dataplane;
pub mod error;
mod generate;
mod lexer;
mod lower;
pub mod model;
mod parser;
mod schema;
mod suggest;
mod tree;
mod validate;
mod value;

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

pub use dataplane::vdev_interface;
pub use error::{
    ConfigError, ConfigErrorKind, ConfigErrors, ConfigWarning, ConfigWarningKind, Span,
};
pub use model::*;
pub use value::Prefix;

/// A validated configuration: the authority with generated peers and adjacencies added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub authority: Authority,
    warnings: Vec<ConfigWarning>,
}

/// Parses and validates a whole configuration text.
pub fn parse_authority(text: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let Some(tree) = parser::parse(lexer::Statements::new(text), &mut errors) else {
        return Err(ConfigErrors { errors, warnings });
    };
    let authority = lower::lower(&tree, &mut errors, &mut warnings);
    if let Some(mut authority) = authority {
        generate::generate(&mut authority, &mut warnings);
        let unlowered = validate::Unlowered::from_tree(&tree);
        validate::validate(&authority, &unlowered, &mut errors, &mut warnings);
        if errors.is_empty() {
            let mut report = ConfigErrors { errors, warnings };
            report.sort();
            return Ok(Config { authority, warnings: report.warnings });
        }
    }
    let mut report = ConfigErrors { errors, warnings };
    report.sort();
    Err(report)
}

/// Returns every error message for `text`, in line order.
#[cfg(test)]
fn error_messages(text: &str) -> Vec<String> {
    match parse_authority(text) {
        Ok(_) => Vec::new(),
        Err(report) => report.errors.iter().map(ToString::to_string).collect(),
    }
}

/// Largest configuration file read, in bytes. The cap stops a wrong path such as
/// `/dev/zero` from filling memory.
pub const MAX_FILE_LEN: u64 = 64 << 20;

/// Reads a configuration file as UTF-8 text of at most [`MAX_FILE_LEN`] bytes, without a
/// leading byte-order mark. Text that is not UTF-8 is an error naming its line and column.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;

    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let size = if size > MAX_FILE_LEN { format!("{size} bytes") } else { "larger".into() };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is {size}, over the limit of {MAX_FILE_LEN} bytes (64 MiB)"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        // A line ends in LF, CRLF or a lone CR, as the lexer counts them.
        let line_ends = valid
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && valid.get(i + 1) != Some(&b'\n')))
            .count();
        let line = line_ends + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n' || b == b'\r').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("invalid UTF-8 at line {line}, column {column}"),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text =
        read_file(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    parse_authority(&text).map_err(|errors| LoadError::Invalid { path: path.to_path_buf(), errors })
}

/// The reason a configuration file could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    Read { path: PathBuf, source: std::io::Error },
    Invalid { path: PathBuf, errors: ConfigErrors },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            LoadError::Invalid { path, errors } => {
                let n = errors.len();
                let noun = if n == 1 { "error" } else { "errors" };
                write!(f, "{} has {n} configuration {noun}: run svrd --check on it", path.display())
            }
        }
    }
}

impl Error for LoadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LoadError::Read { source, .. } => Some(source),
            LoadError::Invalid { errors, .. } => Some(errors),
        }
    }
}

impl Config {
    /// Warnings found while parsing, in line order.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    pub fn router(&self, name: &str) -> Option<&Router> {
        self.authority.routers.iter().find(|r| r.name == name)
    }

    /// Picks the router this svrd runs: the one named by `--router`, else the router with a
    /// node named `local_hostname`, else the only router, else the only router with a node.
    pub fn select_router(
        &self,
        name: Option<&str>,
        local_hostname: &str,
    ) -> Result<&Router, SelectRouterError> {
        let routers = &self.authority.routers;
        let names = || routers.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        if let Some(name) = name {
            return self.router(name).ok_or_else(|| SelectRouterError::NotFound {
                name: name.to_owned(),
                routers: names(),
            });
        }
        let on_host: Vec<&Router> =
            routers.iter().filter(|r| r.nodes.iter().any(|n| n.name == local_hostname)).collect();
        if let [one] = on_host.as_slice() {
            return Ok(one);
        }
        if let [one] = routers.as_slice() {
            return Ok(one);
        }
        let with_nodes: Vec<&Router> = routers.iter().filter(|r| !r.nodes.is_empty()).collect();
        match with_nodes.as_slice() {
            [one] => Ok(one),
            [] => Err(SelectRouterError::NoRouter),
            many => Err(SelectRouterError::Ambiguous {
                hostname: local_hostname.to_owned(),
                routers: many.iter().map(|r| r.name.clone()).collect(),
            }),
        }
    }

    /// Returns the key exchange algorithm for `router`'s peering with `peer`: the peer's override,
    /// else the router's override, else the authority's algorithm.
    pub fn key_exchange_algorithm(&self, router: &Router, peer: &Peer) -> KeyExchangeAlgorithm {
        peer.key_exchange_algorithm_override
            .or(router.key_exchange_algorithm_override)
            .unwrap_or(self.authority.security_key_management.key_exchange_algorithm)
    }

    /// Merges the BFD settings in force on one peer path of `router`: defaults, then the router's
    /// `bfd`, the peer's, the neighborhood's and the adjacency's, the most specific winning
    /// field by field.
    pub fn bfd_settings(
        &self,
        router: &Router,
        interface: &NetworkInterface,
        adjacency: &Adjacency,
    ) -> BfdSettings {
        let peer = router.peers.iter().find(|p| p.name == adjacency.peer.name);
        let neighborhood = adjacency
            .neighborhood
            .as_ref()
            .and_then(|name| interface.neighborhoods.iter().find(|n| &n.name == name));
        let empty = BfdOverrides::default();
        BfdSettings::merged(&[
            &router.bfd,
            peer.map_or(&empty, |p| &p.bfd),
            neighborhood.map_or(&empty, |n| &n.bfd),
            &adjacency.bfd,
        ])
    }
}

impl Authority {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    pub fn security_policy(&self, name: &str) -> Option<&SecurityPolicy> {
        self.security_policies.iter().find(|s| s.name == name)
    }
}

/// One peer path of a router: where it leaves and which adjacency it follows.
#[derive(Clone, Copy, Debug)]
pub struct PeerPath<'a> {
    pub node: &'a Node,
    pub device_interface: &'a DeviceInterface,
    pub network_interface: &'a NetworkInterface,
    pub adjacency: &'a Adjacency,
}

impl Router {
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Iterates over every adjacency of every node, with the interfaces it belongs to.
    pub fn peer_paths(&self) -> impl Iterator<Item = PeerPath<'_>> {
        self.nodes.iter().flat_map(|node| {
            node.device_interfaces.iter().flat_map(move |device_interface| {
                device_interface.network_interfaces.iter().flat_map(move |network_interface| {
                    network_interface.adjacencies.iter().map(move |adjacency| PeerPath {
                        node,
                        device_interface,
                        network_interface,
                        adjacency,
                    })
                })
            })
        })
    }
}

/// The reason no router could be chosen to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectRouterError {
    /// `--router` names a router the authority does not have.
    NotFound { name: String, routers: Vec<String> },
    /// The authority defines no router with a node.
    NoRouter,
    /// Several routers could be this one.
    Ambiguous { hostname: String, routers: Vec<String> },
}

impl fmt::Display for SelectRouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectRouterError::NotFound { name, routers } if routers.is_empty() => {
                write!(f, "router {name} not found: the authority defines no router")
            }
            SelectRouterError::NotFound { name, routers } => {
                write!(
                    f,
                    "router {name} not found in the authority (routers: {})",
                    routers.join(", ")
                )
            }
            SelectRouterError::NoRouter => write!(f, "the authority defines no router with a node"),
            SelectRouterError::Ambiguous { hostname, routers } => write!(
                f,
                "no router has a node named {hostname} and several routers could run here ({}): \
                 choose one with --router",
                routers.join(", ")
            ),
        }
    }
}

impl Error for SelectRouterError {}
