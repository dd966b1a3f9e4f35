//! The management interface between `svrd` and `svrctl`: one JSON request and one JSON
//! reply per connection over a Unix socket, the commands, and the text renderings that
//! follow the product's `show` output labels and layout.
//!
//! A reply carries both the rendered text and the same data as JSON, so `svrctl` prints one
//! or the other (`--json`) without rendering anything itself.

mod render;
mod socket;

pub use render::{
    StatsCounters, render_key_status, render_peers_certificate, render_peers_security, render_stats,
};
pub use socket::{
    MAX_MESSAGE_LEN, MgmtError, Pending, REQUEST_TIMEOUT, Server, request, request_within,
};

use serde::{Deserialize, Serialize};

/// A management command, as `svrctl` spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    /// `show security key-status`
    ShowKeyStatus,
    /// `show peers security`
    ShowPeersSecurity,
    /// `show peers certificate`
    ShowPeersCertificate,
    /// `show alarms`
    ShowAlarms,
    /// `show alarms id <id>`
    ShowAlarm { id: String },
    /// `show stats`: dataplane and control counters.
    ShowStats,
    /// `rotate security metadata-key`
    RotateMetadataKey,
    /// `rotate security payload-keys`: starts a payload-key rotation on every session
    /// that this router is the ingress of, as `payload-key-rekey-interval` does.
    RotatePayloadKeys,
    /// `reload local certificates`
    ReloadCertificates,
}

impl Command {
    /// Parses the words of an `svrctl` command line.
    pub fn from_words(words: &[&str]) -> Result<Command, String> {
        let command = match words {
            ["show", "security", "key-status"] => Command::ShowKeyStatus,
            ["show", "peers", "security"] => Command::ShowPeersSecurity,
            ["show", "peers", "certificate"] => Command::ShowPeersCertificate,
            ["show", "alarms"] => Command::ShowAlarms,
            ["show", "alarms", "id", id] => Command::ShowAlarm { id: (*id).to_string() },
            ["show", "stats"] => Command::ShowStats,
            ["rotate", "security", "metadata-key"] => Command::RotateMetadataKey,
            ["rotate", "security", "payload-keys"] => Command::RotatePayloadKeys,
            ["reload", "local", "certificates"] => Command::ReloadCertificates,
            _ => {
                return Err(format!(
                    "unknown command '{}'; expected one of: {}",
                    words.join(" "),
                    COMMANDS.join(", ")
                ));
            }
        };
        Ok(command)
    }
}

/// Every command line `svrctl` accepts, for help and error messages.
pub const COMMANDS: &[&str] = &[
    "show security key-status",
    "show peers security",
    "show peers certificate",
    "show alarms",
    "show alarms id <id>",
    "show stats",
    "rotate security metadata-key",
    "rotate security payload-keys",
    "reload local certificates",
];

/// The reply to one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The rendered output, or the error message.
    pub text: String,
    /// The same content as structured data, for scripts.
    pub data: serde_json::Value,
}

impl Reply {
    /// A successful reply.
    pub fn ok(text: String, data: serde_json::Value) -> Reply {
        Reply { ok: true, text, data }
    }

    /// A failed command, with a message saying why.
    pub fn error(message: impl Into<String>) -> Reply {
        let text = message.into();
        Reply { ok: false, data: serde_json::json!({ "error": text }), text }
    }
}

/// One peer path's row of `show peers security`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPathSecurity {
    pub peer: String,
    pub node: String,
    pub network_interface: String,
    pub destination: String,
    pub status: String,
    pub hostname: Option<String>,
    pub path_mtu: Option<u32>,
    pub security_status: String,
    pub salt: u32,
    pub peer_salt: u32,
    pub key_index: u32,
    pub peer_key_index: u32,
    pub cert_received: bool,
    pub cert_acknowledged: bool,
    pub salt_received: bool,
    pub salt_acknowledged: bool,
    pub key_received: bool,
    pub key_acknowledged: bool,
}

/// One peer path's certificates for `show peers certificate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPathCertificate {
    pub local_router: String,
    pub peer: String,
    pub node: String,
    pub network_interface: String,
    pub destination: String,
    pub status: String,
    pub hostname: Option<String>,
    pub path_mtu: Option<u32>,
    /// PEM of this router's certificate.
    pub local_certificate: String,
    /// PEM of the peer's certificate, once received.
    pub peer_certificate: Option<String>,
}

/// One node's block of `show security key-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// Node-qualified name, `<node>.<router>`.
    pub node: String,
    /// State of the legacy conductor-driven rekey, which svrd does not run: `Inactive`.
    pub key_manager_state: String,
    pub rekey_index: u32,
    pub key_change_count: u64,
    pub config_key_change_count: u64,
    /// Current metadata key index.
    pub metadata_rekey_index: u32,
    /// Seconds since the metadata key last changed.
    pub metadata_last_rekey_secs: u64,
    /// Seconds until the next scheduled metadata rekey, or `None` when the interval is
    /// `never`.
    pub metadata_next_rekey_secs: Option<u64>,
    /// `Active Leader`, `Redundant Peer` or `Inactive`.
    pub metadata_key_manager_state: String,
}
