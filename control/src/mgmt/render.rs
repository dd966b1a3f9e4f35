//! Text renderings of the `show` commands in the product's layout: a banner line, one
//! block per item between rules of `=`, `Label: value` lines, and a closing line with the
//! time the command took.

use std::fmt::Write;
use std::time::Duration;

use super::{KeyStatus, PeerPathCertificate, PeerPathSecurity};

/// The counters of `show stats`, each group as (name, count) pairs in the order shown.
/// Names may be in kebab-case or snake_case.
#[derive(Debug, Clone, Copy)]
pub struct StatsCounters<'a> {
    /// Dataplane drops, by reason.
    pub drops: &'a [(&'a str, u64)],
    /// Dataplane packets forwarded, sessions created and key events.
    pub forwarding: &'a [(&'a str, u64)],
    /// BFD packets dropped, by reason.
    pub bfd_drops: &'a [(&'a str, u64)],
    /// svrd's own ARP and neighbour discovery on ports without a kernel stack.
    pub neighbours: &'a [(&'a str, u64)],
    /// Whether any port of the router lacks a kernel stack, so that svrd resolves its
    /// neighbours. The neighbour counters are shown either way, and stay 0 when it is false.
    pub resolves_neighbours: bool,
}

/// Renders `show stats` as text and as JSON from the same counters, so that both list every
/// counter. The JSON has one object per group (`drops`, `forwarding`, `bfd_drops`,
/// `neighbours`) with snake_case names. The text has a heading per part and one
/// `  LABEL COUNT` line per counter: a drop is labelled `drop` and its name in kebab-case,
/// any other counter its name in words.
pub fn render_stats(stats: &StatsCounters<'_>) -> (String, serde_json::Value) {
    let neighbour_heading = if stats.resolves_neighbours {
        "Neighbour resolution (ports without a kernel stack)"
    } else {
        "Neighbour resolution (no port without a kernel stack on this router)"
    };
    let groups = [
        CounterGroup { key: "drops", heading: Some("Dataplane"), counters: stats.drops },
        CounterGroup { key: "forwarding", heading: None, counters: stats.forwarding },
        CounterGroup { key: "bfd_drops", heading: Some("BFD"), counters: stats.bfd_drops },
        CounterGroup {
            key: "neighbours",
            heading: Some(neighbour_heading),
            counters: stats.neighbours,
        },
    ];
    let width = groups
        .iter()
        .flat_map(|group| group.counters.iter().map(|&(name, _)| group.label(name).len()))
        .max()
        .unwrap_or(0);

    let mut text = String::new();
    let mut json = serde_json::Map::new();
    for group in &groups {
        if let Some(heading) = group.heading {
            let _ = writeln!(text, "{heading}");
        }
        let mut counters = serde_json::Map::new();
        for &(name, count) in group.counters {
            let _ = writeln!(text, "  {:<width$} {count}", group.label(name));
            counters.insert(name.replace('-', "_"), count.into());
        }
        json.insert(group.key.to_owned(), serde_json::Value::Object(counters));
    }
    (text, serde_json::Value::Object(json))
}

/// One group of `show stats` counters.
struct CounterGroup<'a> {
    /// The group's key in the JSON.
    key: &'static str,
    /// The line printed above the group's lines in the text.
    heading: Option<&'a str>,
    counters: &'a [(&'a str, u64)],
}

impl CounterGroup<'_> {
    /// Returns the text label of counter `name`: `drop` and the name in kebab-case in a group
    /// of drops, the name in words otherwise.
    fn label(&self, name: &str) -> String {
        if self.key.ends_with("drops") {
            format!("drop {}", name.replace('_', "-"))
        } else {
            name.replace(['_', '-'], " ")
        }
    }
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

    /// Counters with distinct counts, so that a line shows which one it is.
    const DROPS: [(&str, u64); 2] = [("no-key", 2), ("unknown-key-id", 3)];
    const FORWARDING: [(&str, u64); 3] =
        [("ingress_forwarded", 11), ("rotations_started", 12), ("punted", 13)];
    const BFD_DROPS: [(&str, u64); 2] = [("malformed", 21), ("ttl_not_255", 22)];
    const NEIGHBOURS: [(&str, u64); 2] = [("replies_sent", 31), ("not_learned", 32)];

    fn stats(resolves_neighbours: bool) -> StatsCounters<'static> {
        StatsCounters {
            drops: &DROPS,
            forwarding: &FORWARDING,
            bfd_drops: &BFD_DROPS,
            neighbours: &NEIGHBOURS,
            resolves_neighbours,
        }
    }

    /// Splits a counter line of the text into its label and count.
    fn label_and_count(line: &str) -> Option<(String, u64)> {
        let (label, count) = line.strip_prefix("  ")?.trim_end().rsplit_once(' ')?;
        Some((label.trim_end().to_owned(), count.parse().ok()?))
    }

    #[test]
    fn stats_text_has_every_json_counter() {
        let (text, json) = render_stats(&stats(true));
        let shown: Vec<(String, u64)> = text.lines().filter_map(label_and_count).collect();
        let groups = json.as_object().unwrap();
        assert_eq!(groups.len(), 4, "{json}");
        let mut counters = 0;
        for (group, values) in groups {
            for (name, count) in values.as_object().unwrap() {
                let label = if group.ends_with("drops") {
                    format!("drop {}", name.replace('_', "-"))
                } else {
                    name.replace('_', " ")
                };
                let count = count.as_u64().unwrap();
                assert!(
                    shown.contains(&(label.clone(), count)),
                    "{group}.{name} = {count} not shown as '{label}' in\n{text}"
                );
                counters += 1;
            }
        }
        assert_eq!(shown.len(), counters, "the text has counters the JSON lacks\n{text}");
    }

    #[test]
    fn stats_json_names_in_snake_case() {
        let (_, json) = render_stats(&stats(true));
        assert_eq!(json["drops"], serde_json::json!({ "no_key": 2, "unknown_key_id": 3 }));
        assert_eq!(
            json["forwarding"],
            serde_json::json!({ "ingress_forwarded": 11, "rotations_started": 12, "punted": 13 })
        );
        assert_eq!(json["bfd_drops"], serde_json::json!({ "malformed": 21, "ttl_not_255": 22 }));
        assert_eq!(
            json["neighbours"],
            serde_json::json!({ "replies_sent": 31, "not_learned": 32 })
        );
    }

    #[test]
    fn stats_text_layout() {
        let (text, _) = render_stats(&stats(true));
        let expected = "Dataplane\n\
            \x20 drop no-key         2\n\
            \x20 drop unknown-key-id 3\n\
            \x20 ingress forwarded   11\n\
            \x20 rotations started   12\n\
            \x20 punted              13\n\
            BFD\n\
            \x20 drop malformed      21\n\
            \x20 drop ttl-not-255    22\n\
            Neighbour resolution (ports without a kernel stack)\n\
            \x20 replies sent        31\n\
            \x20 not learned         32\n";
        assert_eq!(text, expected);
        assert!(!text.contains(['{', '}']), "{text}");
    }

    #[test]
    fn stats_neighbours_shown_without_resolution() {
        let (text, json) = render_stats(&stats(false));
        assert!(
            text.contains("Neighbour resolution (no port without a kernel stack on this router)\n"),
            "{text}"
        );
        assert!(text.contains("\n  not learned         32\n"), "{text}");
        assert_eq!(json["neighbours"]["not_learned"], 32);
    }
}
