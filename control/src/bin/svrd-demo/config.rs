//! The authority both routers read: the configuration `scripts/lib/config.sh` writes for the
//! namespace demo, with the same ESKM settings, services and peer paths. Its
//! device-interfaces name the Linux interfaces of that demo. The in-process demo opens no
//! Linux interface: it supplies a memory port for each device-interface instead.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::topology::{R1, R2, Site, WAN_LINKS, WAN_PREFIX_LEN, common_name};

/// Returns the configuration text. `pki` is the directory with `ca.pem`, `r1.pem` and
/// `r2.pem`. With `encrypt` false the security policy leaves payloads unencrypted, which
/// the demo uses to show that its capture check catches plaintext.
pub fn authority(pki: &Path, encrypt: bool) -> String {
    let pki = pki.display();
    let mut text = String::new();
    let _ = write!(
        text,
        "\
# svrd in-process demo: host1 - r1 = wan-a / wan-b = r2 - host5. Both routers read this
# file; svrd-demo runs them over memory ports in place of the af-xdp interfaces.
config
    authority
        name                              svrdemo
        enhanced-security-key-management  true

        security-key-management
            key-exchange-algorithm
                diffie-hellman-ml-kem
                    dh-key-size      2048
                    ml-kem-key-size  768
                exit
            exit
        exit

        trusted-ca-certificate  demo-ca
            file  {pki}/ca.pem
        exit

        client-certificate  r1
            file  {pki}/r1.pem
        exit

        client-certificate  r2
            file  {pki}/r2.pem
        exit

        security  encrypt-aes256
            encrypt            {encrypt}
            encryption-cipher  aes-cbc-256
            hmac               true
            hmac-cipher        sha384
        exit

        tenant  corp
            description  \"hosts behind r1 and r2\"
        exit
"
    );
    text.push_str(&service("to-host5", "LAN behind r2", &R2));
    text.push_str(&service("to-host1", "LAN behind r1", &R1));
    text.push_str(&router(&R1, "to-host5", "to-host1"));
    text.push_str(&router(&R2, "to-host1", "to-host5"));
    text.push_str("    exit\nexit\n");
    text
}

fn service(name: &str, description: &str, site: &Site) -> String {
    format!(
        "
        service  {name}
            description  \"{description}\"
            address      {v4}
            address      {v6}
            security     encrypt-aes256
            access-policy  corp
                permission  allow
            exit
        exit
",
        v4 = site.lan_v4_net,
        v6 = site.lan_v6_net,
    )
}

/// One router block. `remote_service` is reached through the peer, `local_service` on
/// this router's LAN.
fn router(site: &Site, remote_service: &str, local_service: &str) -> String {
    let (name, peer) = (site.router, site.peer);
    let peer_site = if site.router == R1.router { &R2 } else { &R1 };
    let mut text = format!(
        "
        router  {name}
            peering-common-name  {common_name}

            peer  {peer}
                router-name          {peer}
                peering-common-name  {peer_common_name}
            exit

            service-route  {remote_service}-via-{peer}
                service-name  {remote_service}
                peer          {peer}
            exit

            service-route  {local_service}-local
                service-name  {local_service}
                next-hop  {name}-node  lan-net
                exit
            exit

            node  {name}-node
                role  combo

                dataplane
                    driver        af-xdp
                    polling-mode  adaptive
                exit

                device-interface  lan
                    interface-name  lan

                    network-interface  lan-net
                        tenant  corp
{lan_v4}{lan_v6}                    exit
                exit
",
        common_name = common_name(name),
        peer_common_name = common_name(peer),
        lan_v4 = address(&site.lan_v4.to_string(), 24),
        lan_v6 = address(&site.lan_v6.to_string(), 64),
    );
    for (index, link) in WAN_LINKS.iter().enumerate() {
        text.push_str(&wan(link, site.wan[index], peer_site.wan[index], peer));
    }
    text.push_str("            exit\n        exit\n");
    text
}

/// A WAN device-interface: its Linux interface and its neighborhood have its name.
fn wan(name: &str, local: Ipv4Addr, peer_address: Ipv4Addr, peer: &str) -> String {
    format!(
        "
                device-interface  {name}
                    interface-name  {name}

                    network-interface  {name}-net
{address}
                        neighborhood  {name}
                            topology  mesh
                        exit

                        adjacency  {peer_address}  {peer}
                        exit
                    exit
                exit
",
        address = address(&local.to_string(), WAN_PREFIX_LEN),
    )
}

fn address(address: &str, prefix_len: u8) -> String {
    format!(
        "                        address  {address}
                            prefix-length  {prefix_len}
                        exit
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use svr_control::config::parse_authority;
    use svr_control::daemon::{Plan, RoutePlan};

    #[test]
    fn authority_plans_both_routers() {
        let text = authority(Path::new("/demo/pki"), true);
        let config = match parse_authority(&text) {
            Ok(config) => config,
            Err(errors) => panic!("configuration does not parse: {errors}\n{text}"),
        };
        for site in [&R1, &R2] {
            let router = config.select_router(Some(site.router), "").unwrap();
            let plan = Plan::resolve(&config, router).unwrap();
            let names: Vec<&str> = plan.ports.iter().map(|port| port.name.as_str()).collect();
            assert_eq!(names, ["lan", "wan-a", "wan-b"], "{}", site.router);
            assert_eq!(plan.peers.len(), 1, "{}", site.router);
            assert_eq!(plan.peers[0].name, site.peer);
            let remotes: Vec<String> = plan.paths.iter().map(|p| p.remote.to_string()).collect();
            let peer_site = if site.router == "r1" { &R2 } else { &R1 };
            assert_eq!(remotes, [peer_site.wan[0].to_string(), peer_site.wan[1].to_string()]);
            assert!(plan.eskm);
            assert!(plan.services.iter().all(|service| service.encrypt));
            assert!(plan.routes.iter().any(|route| matches!(route, RoutePlan::Peer { .. })));
            assert!(plan.routes.iter().any(|route| matches!(route, RoutePlan::Local { .. })));
        }
    }

    #[test]
    fn authority_without_encryption() {
        let text = authority(Path::new("/demo/pki"), false);
        let config = parse_authority(&text).unwrap();
        let router = config.select_router(Some("r1"), "").unwrap();
        let plan = Plan::resolve(&config, router).unwrap();
        assert!(plan.services.iter().all(|service| !service.encrypt));
    }
}
