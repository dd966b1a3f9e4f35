//! Text renderings of the `show` commands in the product's layout: a banner line, one
//! block per item between rules of `=`, `Label: value` lines, and a closing line with the
//! time the command took.

use std::fmt::Write;
use std::time::Duration;

use super::{KeyStatus, PeerPathCertificate, PeerPathSecurity};

/// Renders named drop counters for `show stats`, as text lines `  drop NAME COUNT` with
/// kebab-case names and as a JSON object. The JSON keys are the same names in snake_case,
/// the case of every other JSON name of the reply.
pub fn render_drop_counters(counters: &[(&str, u64)]) -> (String, serde_json::Value) {
    let mut text = String::new();
    let mut json = serde_json::Map::new();
    for (name, count) in counters {
        let _ = writeln!(text, "  drop {:<21} {count}", name.replace('_', "-"));
        json.insert(name.replace('-', "_"), (*count).into());
    }
    (text, serde_json::Value::Object(json))
}

/// Renders `show peers security`.
pub fn render_peers_security(paths: &[PeerPathSecurity], took: Duration) -> String {
    let mut out = String::from("\u{2714} Retrieving peer paths...\n\n");
    for path in paths {
        let header = format!("Peer: {}", path.peer);
        block_header(&mut out, &header);
        line(&mut out, "Peer", &path.peer);
        path_lines(&mut out, path);
        line(&mut out, "Security Status", &path.security_status);
        line(&mut out, "Salt", &path.salt.to_string());
        line(&mut out, "Peer Salt", &path.peer_salt.to_string());
        line(&mut out, "Key Index", &path.key_index.to_string());
        line(&mut out, "Peer Ki", &path.peer_key_index.to_string());
        line(&mut out, "Cert Rec", title_bool(path.cert_received));
        line(&mut out, "Cert Ack", title_bool(path.cert_acknowledged));
        line(&mut out, "Salt Rec", title_bool(path.salt_received));
        line(&mut out, "Salt Ack", title_bool(path.salt_acknowledged));
        line(&mut out, "Key Rec", title_bool(path.key_received));
        line(&mut out, "Key Ack", title_bool(path.key_acknowledged));
        out.push_str("\n\n");
    }
    completed(&mut out, took);
    out
}

/// Renders `show peers certificate`.
pub fn render_peers_certificate(paths: &[PeerPathCertificate], took: Duration) -> String {
    let mut out = String::from("\u{2714} Retrieving peer paths...\n");
    for path in paths {
        let header = format!("Peer: {} -> {}", path.local_router, path.peer);
        block_header(&mut out, &header);
        line(&mut out, "Peer", &format!("{} -> {}", path.local_router, path.peer));
        line(&mut out, "Node", &path.node);
        line(&mut out, "Network Interface", &path.network_interface);
        line(&mut out, "Destination", &path.destination);
        line(&mut out, "Status", &path.status);
        line(&mut out, "Hostname", path.hostname.as_deref().unwrap_or("unavailable"));
        line(&mut out, "Path Mtu", &mtu(path.path_mtu));
        line(&mut out, "Local Cert", path.local_certificate.trim_end());
        out.push('\n');
        let peer = path.peer_certificate.as_deref().unwrap_or("unavailable");
        line(&mut out, "Peer Cert", peer.trim_end());
        out.push('\n');
    }
    completed(&mut out, took);
    out
}

/// Renders `show security key-status`.
pub fn render_key_status(nodes: &[KeyStatus], took: Duration) -> String {
    let mut out = String::from("\u{2714} Retrieving key state...\n");
    for node in nodes {
        let rule = "=".repeat(52.max(node.node.len() + 2));
        let _ = writeln!(out, "{rule}\n {}\n{rule}", node.node);
        line(&mut out, "Key Manager State", &node.key_manager_state);
        line(&mut out, "Rekey Index", &node.rekey_index.to_string());
        line(&mut out, "Last Rekey", "N/A");
        line(&mut out, "Next Rekey", "N/A");
        line(&mut out, "Key Change Count", &node.key_change_count.to_string());
        line(&mut out, "Config Key Change Count", &node.config_key_change_count.to_string());
        line(&mut out, "Key Change Error", "N/A");
        line(&mut out, "Config Key Change Error", "N/A");
        line(&mut out, "Metadata Rekey Index", &node.metadata_rekey_index.to_string());
        line(
            &mut out,
            "Metadata Last Rekey",
            &hours_minutes_seconds(node.metadata_last_rekey_secs),
        );
        let next = node.metadata_next_rekey_secs.map_or("N/A".to_string(), hours_minutes_seconds);
        line(&mut out, "Metadata Next Rekey", &next);
        line(&mut out, "Metadata Key Manager State", &node.metadata_key_manager_state);
    }
    completed(&mut out, took);
    out
}

fn path_lines(out: &mut String, path: &PeerPathSecurity) {
    line(out, "Node", &path.node);
    line(out, "Network Interface", &path.network_interface);
    line(out, "Destination", &path.destination);
    line(out, "Status", &path.status);
    line(out, "Hostname", path.hostname.as_deref().unwrap_or("unavailable"));
    line(out, "Path Mtu", &mtu(path.path_mtu));
}

fn block_header(out: &mut String, header: &str) {
    let rule = "=".repeat(header.len() + 2);
    let _ = writeln!(out, "{rule}\n{header}\n{rule}");
}

fn line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{label}: {value}");
}

fn completed(out: &mut String, took: Duration) {
    let _ = writeln!(out, "Completed in {:.2} seconds", took.as_secs_f64());
}

fn title_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

fn mtu(value: Option<u32>) -> String {
    value.map_or_else(|| "unavailable".to_string(), |mtu| mtu.to_string())
}

/// Formats a duration as the product does: `0 hrs 17 min 29 sec`.
fn hours_minutes_seconds(seconds: u64) -> String {
    format!("{} hrs {} min {} sec", seconds / 3600, seconds % 3600 / 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PeerPathSecurity {
        PeerPathSecurity {
            peer: "r2".into(),
            node: "r1-node".into(),
            network_interface: "wan-a".into(),
            destination: "10.100.1.2".into(),
            status: "up".into(),
            hostname: None,
            path_mtu: None,
            security_status: "MKEY_EXCH_COMP".into(),
            salt: 3565600980,
            peer_salt: 1668479739,
            key_index: 5,
            peer_key_index: 253,
            cert_received: true,
            cert_acknowledged: true,
            salt_received: true,
            salt_acknowledged: true,
            key_received: true,
            key_acknowledged: false,
        }
    }

    #[test]
    fn peers_security_layout() {
        let text = render_peers_security(&[path()], Duration::from_millis(100));
        let expected = "\u{2714} Retrieving peer paths...\n\n\
            ==========\nPeer: r2\n==========\n\
            Peer: r2\nNode: r1-node\nNetwork Interface: wan-a\nDestination: 10.100.1.2\n\
            Status: up\nHostname: unavailable\nPath Mtu: unavailable\n\
            Security Status: MKEY_EXCH_COMP\nSalt: 3565600980\nPeer Salt: 1668479739\n\
            Key Index: 5\nPeer Ki: 253\nCert Rec: True\nCert Ack: True\nSalt Rec: True\n\
            Salt Ack: True\nKey Rec: True\nKey Ack: False\n\n\n\
            Completed in 0.10 seconds\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn key_status_layout() {
        let status = KeyStatus {
            node: "node0.r1".into(),
            key_manager_state: "Inactive".into(),
            rekey_index: 1,
            key_change_count: 0,
            config_key_change_count: 0,
            metadata_rekey_index: 61,
            metadata_last_rekey_secs: 17 * 60 + 29,
            metadata_next_rekey_secs: Some(23 * 3600 + 42 * 60 + 31),
            metadata_key_manager_state: "Active Leader".into(),
        };
        let text = render_key_status(&[status], Duration::from_millis(20));
        assert!(text.contains("\nMetadata Rekey Index: 61\n"), "{text}");
        assert!(text.contains("\nMetadata Last Rekey: 0 hrs 17 min 29 sec\n"), "{text}");
        assert!(text.contains("\nMetadata Next Rekey: 23 hrs 42 min 31 sec\n"), "{text}");
        assert!(text.contains("\nMetadata Key Manager State: Active Leader\n"), "{text}");
        assert!(text.starts_with("\u{2714} Retrieving key state...\n====="), "{text}");
        assert!(text.ends_with("Completed in 0.02 seconds\n"));
    }

    #[test]
    fn never_rekey_shows_na() {
        let status = KeyStatus {
            node: "node0.r1".into(),
            key_manager_state: "Inactive".into(),
            rekey_index: 1,
            key_change_count: 0,
            config_key_change_count: 0,
            metadata_rekey_index: 1,
            metadata_last_rekey_secs: 5,
            metadata_next_rekey_secs: None,
            metadata_key_manager_state: "Active Leader".into(),
        };
        assert!(
            render_key_status(&[status], Duration::ZERO).contains("Metadata Next Rekey: N/A\n")
        );
    }

    #[test]
    fn drop_counters_in_one_case() {
        let (text, json) = render_drop_counters(&[("no-key", 2), ("ttl_not_255", 0)]);
        assert!(!text.contains(['{', '}']), "{text}");
        assert_eq!(text, "  drop no-key                2\n  drop ttl-not-255           0\n");
        assert_eq!(json, serde_json::json!({ "no_key": 2, "ttl_not_255": 0 }));
    }
}
