//! One test per error kind, each checking the exact message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test on bad fixtures"
)]

use svr_control::config::*;

/// Returns every error message for `text`, in line order.
fn errors(text: &str) -> Vec<String> {
    match parse_authority(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

/// Returns the messages for `body` placed inside `config` and `authority`, so that `body`
/// starts on line 3.
fn in_authority(body: &str) -> Vec<String> {
    errors(&format!("config\nauthority\n{body}"))
}

fn one(messages: Vec<String>) -> String {
    assert_eq!(messages.len(), 1, "{messages:#?}");
    messages.into_iter().next().unwrap()
}

/// A router with one node whose LAN interface is in tenant `t` and whose WAN interface
/// contains `wan` lines; `extra` goes at router level.
fn router_with(extra: &str, wan: &str) -> String {
    format!(
        "config\nauthority\ntenant t\nexit\nsecurity s\nexit\nservice svc\nexit\nrouter r1\n{extra}\n\
         node n1\ndevice-interface d1\ninterface-name eth1\nnetwork-interface wan\n{wan}\n"
    )
}

#[test]
fn error_unterminated_string() {
    assert_eq!(
        one(in_authority("name \"lab\n")),
        "line 3, column 6: quoted string opened at line 3, column 6 is not closed: add the \
         closing \""
    );
}

#[test]
fn unterminated_string_before_next_quote() {
    // The string opened on line 4 would end at the first quote of line 5, which more words
    // follow.
    let messages = in_authority("router r1\ndescription \"one\nlocation \"Newton, MA\"\nname r2\n");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        messages[0],
        "line 4, column 13: quoted string opened at line 4, column 13 is not closed: add the \
         closing \""
    );
    // Lexing resumes on the next line, so the later mismatch is still found.
    assert!(messages[1].starts_with("line 6, column 1: name r2: does not match"), "{messages:#?}");
}

#[test]
fn multiline_string_closed_alone_accepted() {
    let text =
        "config\nauthority\ntrusted-ca-certificate ca\ncontent \"line one\nline two\n\" # end\n";
    assert_eq!(errors(text), Vec::<String>::new());
}

#[test]
fn error_unknown_escape() {
    assert_eq!(
        one(in_authority("name \"a\\qb\"\n")),
        "line 3, column 8: unknown escape \\q in quoted string: use \\\", \\\\, \\n, \\t or \\r"
    );
}

#[test]
fn error_quote_inside_word() {
    assert_eq!(
        one(in_authority("name ab\"c\"\n")),
        "line 3, column 6: unexpected quote inside ab\"c\": quote the whole value"
    );
    assert_eq!(
        one(in_authority("name \"ab\"c\n")),
        "line 3, column 6: unexpected quote inside \"ab\"c: quote the whole value"
    );
}

#[test]
fn error_missing_root() {
    assert_eq!(
        one(errors("authority\nname x\n")),
        "line 1, column 1: authority: the configuration must start with config or configure"
    );
}

#[test]
fn error_empty() {
    assert_eq!(
        one(errors("# nothing but a comment\n\n")),
        "line 1, column 1: configuration is empty: expected config followed by an authority block"
    );
}

#[test]
fn error_unknown_keyword_suggests() {
    assert_eq!(
        one(in_authority("security-key-management\n    peer-key-timout 100\n")),
        "line 4, column 5: unknown keyword peer-key-timout in security-key-management: \
         did you mean peer-key-timeout?"
    );
}

#[test]
fn error_unknown_keyword_suggests_enclosing_block() {
    // tenant is not valid in router, but it is in the enclosing authority.
    assert_eq!(
        one(in_authority("router r1\ntennant t1\n")),
        "line 4, column 1: unknown keyword tennant in router r1: did you mean tenant?"
    );
}

#[test]
fn error_unknown_keyword_product_typo() {
    let text = router_with("", "adjacenency 10.0.0.2 r2\n");
    assert_eq!(
        one(errors(&text)),
        "line 15, column 1: unknown keyword adjacenency in network-interface wan: \
         did you mean adjacency?"
    );
}

#[test]
fn error_unknown_keyword_lists_allowed() {
    assert_eq!(
        one(in_authority("router r1\nfrobnicate 1\n")),
        "line 4, column 1: unknown keyword frobnicate in router r1: allowed here: name, \
         description, location, inter-node-security, peering-common-name, \
         ml-kem-keygen-priority, key-exchange-algorithm-override, bfd, service-route, peer, node"
    );
}

#[test]
fn error_unknown_keyword_inside_flat_line() {
    assert_eq!(
        one(errors("config authority router r1 nmae r1\n")),
        "line 1, column 28: unknown keyword nmae in router r1: did you mean name?"
    );
}

/// Returns a router whose WAN network-interface contains `block`, indented as `show config`
/// prints it and closed by exits, followed by a service whose `address` is invalid. The
/// block starts on line 8, and the address is on the fourth line from the end.
fn wan_block_then_bad_address(block: &str) -> String {
    format!(
        "config\n authority\n  router r1\n   node n1\n    device-interface d1\n     \
         interface-name eth1\n     network-interface wan\n{block}     exit\n    exit\n   exit\n  exit\n  \
         service s\n   address 10.0.0.0/33\n  exit\n exit\nexit\n"
    )
}

#[test]
fn misspelt_block_gives_one_error() {
    let block = "      nieghborhood wan-a\n       name wan-a\n       topology hub\n       \
                 bfd\n        multiplier 4\n       exit\n      exit\n";
    let text = wan_block_then_bad_address(block);
    let messages = errors(&text);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        messages[0],
        "line 8, column 7: unknown keyword nieghborhood in network-interface wan: did you mean \
         neighborhood?"
    );
    assert!(messages[1].starts_with("line 20, column 4: address 10.0.0.0/33:"), "{messages:#?}");
}

#[test]
fn misspelt_block_contents_still_checked() {
    let block = "      nieghborhood wan-a\n       topology hubb\n      exit\n";
    let messages = errors(&wan_block_then_bad_address(block));
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[1].starts_with("line 9, column 8: topology hubb: must be"), "{messages:#?}");
}

#[test]
fn unknown_block_skipped_by_indentation() {
    let block = "      frobnicate x\n       name y\n       bfd\n        multiplier 4\n       \
                 exit\n      exit\n";
    let messages = errors(&wan_block_then_bad_address(block));
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].starts_with("line 8, column 7: unknown keyword frobnicate"));
    assert!(messages[1].starts_with("line 19, column 4: address 10.0.0.0/33:"), "{messages:#?}");
}

#[test]
fn unknown_leaf_skips_nothing() {
    // Unindented text gives no hint, so the line after an unknown leaf is read as usual.
    let messages = in_authority(
        "router r1
frobnicate 1
location a
location b
",
    );
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].starts_with("line 4, column 1: unknown keyword frobnicate"));
    assert!(messages[1].starts_with("line 6, column 1: location b: set twice"), "{messages:#?}");
}

#[test]
fn misspelt_exit_closes_block() {
    // name is valid in both blocks, so it shows which block the misspelt exit left open.
    let block = "      neighborhood wan-a\n       name wan-a\n      exti\n      name wan\n";
    let messages = errors(&wan_block_then_bad_address(block));
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        messages[0],
        "line 10, column 7: unknown keyword exti in neighborhood wan-a: did you mean exit?"
    );
}

#[test]
fn error_missing_value() {
    assert_eq!(one(in_authority("name\n")), "line 3, column 1: name: missing value");
}

#[test]
fn error_unexpected_token() {
    assert_eq!(
        one(in_authority("name a b\n")),
        "line 3, column 8: name a: unexpected b at the end of the statement"
    );
    assert_eq!(
        one(in_authority("router r1\nexit now\n")),
        "line 4, column 6: exit: unexpected now at the end of the statement"
    );
}

#[test]
fn error_after_final_exit() {
    assert_eq!(
        one(in_authority("exit\nexit\nname x\n")),
        "line 5, column 1: name: statement after the exit that closes config"
    );
}

#[test]
fn error_missing_key() {
    assert_eq!(
        one(in_authority("router\ndescription x\n")),
        "line 3, column 1: router: missing name: give it after router or as a name line inside"
    );
    assert_eq!(
        one(errors(&router_with("", "adjacency 10.0.0.2\n"))),
        "line 15, column 1: adjacency 10.0.0.2: missing peer: give it after adjacency 10.0.0.2 \
         or as a peer line inside"
    );
}

#[test]
fn error_key_given_inside_only() {
    assert!(in_authority("router\nname r1\n").is_empty());
}

#[test]
fn error_key_mismatch() {
    assert_eq!(
        one(in_authority("router r1\nname r2\n")),
        "line 4, column 1: name r2: does not match the router key r1"
    );
}

#[test]
fn error_duplicate_entry() {
    assert_eq!(
        one(in_authority("tenant a\nexit\ntenant a\n")),
        "line 5, column 1: tenant a: duplicate entry, first defined at line 3"
    );
}

#[test]
fn error_duplicate_block() {
    assert_eq!(
        one(in_authority("security-key-management\nexit\nsecurity-key-management\n")),
        "line 5, column 1: security-key-management: duplicate block, first opened at line 3"
    );
}

#[test]
fn error_duplicate_leaf() {
    assert_eq!(
        one(in_authority("name a\nname b\n")),
        "line 4, column 1: name b: set twice in one block, first at line 3"
    );
}

#[test]
fn flat_duplicate_leaf_names_both_lines() {
    let text = "config authority router r1 node n1 role combo\n\
                config authority router r1 bfd multiplier 4\n\
                config authority router r1 node n1 role control\n\
                config authority router r1 bfd multiplier 5\n";
    assert_eq!(
        errors(text),
        vec![
            "line 3, column 36: role control: set twice in one block, first at line 1",
            "line 4, column 32: multiplier 5: set twice in one block, first at line 2",
        ]
    );
}

#[test]
fn error_choice_conflict() {
    assert_eq!(
        one(in_authority(
            "security-key-management\nkey-exchange-algorithm\nml-kem\nexit\ndiffie-hellman\n"
        )),
        "line 7, column 1: diffie-hellman: key-exchange-algorithm takes one case, ml-kem is \
         already set at line 5"
    );
}

#[test]
fn error_conflict() {
    assert_eq!(
        one(in_authority("trusted-ca-certificate ca\ncontent \"x\"\nfile ca\n")),
        "line 5, column 1: file: cannot be set together with content"
    );
    assert_eq!(
        one(errors(&router_with(
            "service-route sr\nservice-name svc\npeer r2\nnext-hop n1 wan\nexit\nexit\n\
             peer r2\nauthority-name far\nexit",
            ""
        ))),
        "line 12, column 1: peer: cannot be set together with next-hop"
    );
}

#[test]
fn error_missing_one_of() {
    assert_eq!(
        one(in_authority("trusted-ca-certificate ca\nvalidation-mode warn\n")),
        "line 3, column 1: trusted-ca-certificate ca: needs one of content, file"
    );
    assert_eq!(
        one(errors(&router_with("service-route sr\nservice-name svc\nexit", ""))),
        "line 10, column 1: service-route sr: needs one of peer, next-hop"
    );
}

#[test]
fn error_missing_leaf() {
    assert_eq!(
        one(errors(&router_with("service-route sr\nexit", ""))),
        "line 10, column 1: service-route sr: missing service-name"
    );
    assert_eq!(
        one(errors(&router_with("", "address 10.0.0.1\n"))),
        "line 15, column 1: address 10.0.0.1: missing prefix-length"
    );
}

#[test]
fn error_invalid_value_range() {
    assert_eq!(
        one(in_authority("security-key-management\n    peer-key-retransmit-interval 2\n")),
        "line 4, column 5: peer-key-retransmit-interval 2: must be 5-3600 seconds"
    );
    assert_eq!(
        one(in_authority("security-key-management\npayload-key-rekey-interval 0\n")),
        "line 4, column 1: payload-key-rekey-interval 0: must be 1-720 hours or never"
    );
    assert_eq!(
        one(errors(&router_with("", "enforced-mss 63\n"))),
        "line 15, column 1: enforced-mss 63: must be 64-8960, disabled or automatic"
    );
}

#[test]
fn error_invalid_value_words() {
    assert_eq!(
        one(in_authority("security-key-management\ninvalid-certificate-behavior soft\n")),
        "line 4, column 1: invalid-certificate-behavior soft: must be one of fail-soft or fail-hard"
    );
    assert_eq!(
        one(in_authority("enhanced-security-key-management yes\n")),
        "line 3, column 1: enhanced-security-key-management yes: must be true or false"
    );
    assert_eq!(
        one(in_authority(
            "security-key-management\nkey-exchange-algorithm\ndiffie-hellman\ndh-key-size 3072\n"
        )),
        "line 6, column 1: dh-key-size 3072: must be one of 1024, 2048 or 4096"
    );
}

#[test]
fn error_invalid_value_addresses() {
    assert_eq!(
        one(in_authority("service s\naddress 10.0.0.0/33\n")),
        "line 4, column 1: address 10.0.0.0/33: must be an IPv4 or IPv6 prefix such as \
         10.0.0.0/8 or 2001:db8::/32"
    );
    assert_eq!(
        one(in_authority("service s\naddress 10.1.1.1/24\n")),
        "line 4, column 1: address 10.1.1.1/24: must be a prefix with no host bits set, such \
         as 10.1.1.0/24"
    );
    assert_eq!(
        one(errors(&router_with("", "address 10.0.0.300\nprefix-length 24\n"))),
        "line 15, column 9: address ip-address 10.0.0.300: must be an IPv4 or IPv6 address"
    );
    assert_eq!(
        one(errors(&router_with("", "address 10.0.0.1\nprefix-length 33\n"))),
        "line 16, column 1: prefix-length 33: must be 0-32 for an IPv4 address"
    );
}

#[test]
fn error_invalid_value_bindings() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\n\
                pci-address 03:00.9\ninterface-name this-name-is-too-long\n";
    assert_eq!(
        errors(text),
        vec![
            "line 6, column 1: pci-address 03:00.9: must be a PCI address DDDD:BB:DD.F or \
             BB:DD.F in hexadecimal, such as 0000:03:00.0",
            "line 7, column 1: interface-name this-name-is-too-long: must be a Linux interface \
             name of 1-15 bytes without /, : or blanks (this one has 21 bytes)",
        ]
    );
}

#[test]
fn error_invalid_value_worker_cores() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndataplane\nworker-cores 3-1\n";
    assert_eq!(
        one(errors(text)),
        "line 6, column 1: worker-cores 3-1: must be a CPU list such as 1,3-5 with CPU numbers \
         0-1023, each named once"
    );
}

#[test]
fn error_worker_cores_above_worker_limit() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndataplane\nworker-cores 0-64\n";
    assert_eq!(
        one(errors(text)),
        "line 6, column 1: worker-cores 0-64: must be at most 64 CPUs, one per worker (this \
         list names 65)"
    );
    assert!(errors(&text.replace("0-64", "1-64")).is_empty());
}

#[test]
fn error_invalid_value_vdev() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\nvdev VDEV\n";
    for bad in ["ring0", "net_ring0,iface", "\"net_ring0 --no-pci\""] {
        let shown = bad.trim_matches('"');
        assert_eq!(
            one(errors(&text.replace("VDEV", bad))),
            format!(
                "line 6, column 1: vdev {shown}: must be a DPDK virtual device \
                 net_NAME[,key=value...] without blanks, such as net_af_packet0,iface=veth0"
            )
        );
    }
    assert!(errors(&text.replace("VDEV", "net_af_packet0,iface=wan0")).is_empty());
}

#[test]
fn error_device_bound_twice() {
    let text = "config\nauthority\nrouter r1\nnode n1\n\
                device-interface d1\nKEYWORD FIRST\nexit\n\
                device-interface d2\nKEYWORD SECOND\nexit\n";
    let case = |keyword: &str, first: &str, second: &str| {
        errors(&text.replace("KEYWORD", keyword).replace("FIRST", first).replace("SECOND", second))
    };
    let expected = "expected a device that no other device-interface of the node uses";
    assert_eq!(
        one(case("interface-name", "wan0", "wan0")),
        format!(
            "line 9, column 1: interface-name wan0: already bound by device-interface d1 at \
             line 6; {expected}"
        )
    );
    assert_eq!(
        one(case("vdev", "net_tap0,iface=a", "net_tap0,iface=b")),
        format!(
            "line 9, column 1: vdev net_tap0,iface=b: device net_tap0 already bound by \
             device-interface d1 at line 6; {expected}"
        )
    );
    assert_eq!(
        one(case("pci-address", "0000:03:00.0", "03:00.0")),
        format!(
            "line 9, column 1: pci-address 03:00.0: device 0000:03:00.0 already bound by \
             device-interface d1 at line 6; {expected}"
        )
    );
    assert!(case("vdev", "net_tap0", "net_tap1").is_empty());
    assert!(case("pci-address", "03:00.0", "03:00.1").is_empty());
}

#[test]
fn error_device_bound_on_two_nodes_accepted() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\nvdev net_tap0\n\
                exit\nexit\nnode n2\ndevice-interface d1\nvdev net_tap0\n";
    assert!(errors(text).is_empty(), "{:?}", errors(text));
}

#[test]
fn error_eal_arguments_rejected() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndataplane\n\
                eal-argument --no-huge\neal-argument --in-memory\neal-argument --help\n\
                eal-argument --version\nexit\ndevice-interface d1\nvdev net_ring0\n";
    assert_eq!(
        errors(text),
        vec![
            "line 7, column 1: eal-argument --in-memory: DPDK's EAL rejects it together with \
             --no-huge (eal-argument --no-huge): --no-huge turns on the legacy memory mode; \
             remove one of them",
            "line 8, column 1: eal-argument --help: DPDK's EAL prints its usage on it and ends \
             svrd; remove it (run dpdk-testpmd --help to read the EAL options)",
            "line 9, column 1: eal-argument --version: not an EAL option, so EAL prints its \
             usage and fails to start; use -v to log DPDK's version",
        ]
    );
}

#[test]
fn error_eal_block_list_with_pci_port() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndataplane\neal-argument -b\n\
                eal-argument 0000:09:00.0\nexit\ndevice-interface d1\nBINDING\n";
    assert_eq!(
        one(errors(&text.replace("BINDING", "pci-address 0000:01:00.0"))),
        "line 6, column 1: eal-argument -b: EAL rejects a block list together with -a, which \
         svrd passes for each pci-address; remove it, since only the configured PCI ports are \
         used"
    );
    assert!(errors(&text.replace("BINDING", "vdev net_ring0")).is_empty());
}

#[test]
fn error_invalid_secret() {
    let messages = in_authority(
        "security s\nencryption-cipher aes-cbc-256\nencryption-key 00112233\n\
         encryption-iv zz\nhmac-key abc\n",
    );
    assert_eq!(
        messages,
        vec![
            "line 5, column 1: encryption-key (value not shown): must be 64 hex digits for aes-cbc-256",
            "line 6, column 1: encryption-iv (value not shown): must be 32 hex digits for an AES block",
            "line 7, column 1: hmac-key (value not shown): must be an even number of hex digits, \
             at least 2",
        ]
    );
    assert!(messages.iter().all(|m| !m.contains("00112233")));
}

#[test]
fn error_undefined_tenant_and_policy() {
    assert_eq!(
        in_authority(
            "security s1\nexit\ntenant t1\nsecurity s2\nexit\nservice web\nsecurity s1\n\
             access-policy t9\n"
        ),
        vec![
            "line 6, column 1: security s2: no security policy s2 is defined (defined: s1)",
            "line 10, column 15: access-policy t9: no tenant t9 is defined (defined: t1)",
        ]
    );
}

#[test]
fn error_undefined_references_in_router() {
    let text = router_with(
        "inter-node-security nope\nservice-route sr\nservice-name mail\npeer r9\nexit\n\
         service-route local\nservice-name svc\nnext-hop n2 lan\nexit\nnext-hop n1 lan\nexit\nexit",
        "tenant blue\ninter-router-security s\nadjacency 10.0.0.2 r9\ninter-router-security x\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "line 10, column 1: inter-node-security nope: no security policy nope is defined \
             (defined: s)",
            "line 12, column 1: service-name mail: no service mail is defined (defined: svc)",
            "line 13, column 1: peer r9: no peer r9 is defined (none are)",
            "line 17, column 10: next-hop n2: no node n2 is defined (defined: n1)",
            "line 19, column 13: next-hop lan: no network-interface lan is defined (defined: wan)",
            "line 26, column 1: tenant blue: no tenant blue is defined (defined: t)",
            "line 28, column 20: adjacency r9: no peer r9 is defined (none are)",
            "line 29, column 1: inter-router-security x: no security policy x is defined \
             (defined: s)",
        ]
    );
}

#[test]
fn error_undefined_peer_router() {
    assert_eq!(
        one(in_authority("router r1\npeer p1\nrouter-name r7\n")),
        "line 4, column 1: peer r7: no router r7 is defined (defined: r1)"
    );
    // A peer in another authority is not checked against this one's routers.
    assert!(in_authority("name a\nrouter r1\npeer p1\nauthority-name other\n").is_empty());
}

#[test]
fn error_duplicate_peering_common_name() {
    assert_eq!(
        one(in_authority(
            "router r1\npeering-common-name same\nexit\nrouter r2\npeering-common-name same\n"
        )),
        "line 6, column 1: peering-common-name same: router r2 uses the same name as router r1, \
         but it must be unique per router"
    );
}

#[test]
fn error_missing_binding() {
    let base = "config\nauthority\nrouter r1\nnode n1\ndataplane\ndriver DRIVER\nexit\n\
                device-interface d1\nBINDING\n";
    let case = |driver: &str, binding: &str| {
        errors(&base.replace("DRIVER", driver).replace("BINDING", binding))
    };
    assert_eq!(
        one(case("af-xdp", "pci-address 0000:01:00.0")),
        "line 8, column 1: device-interface d1: driver af-xdp needs interface-name"
    );
    assert_eq!(
        one(case("dpdk", "interface-name eth0")),
        "line 8, column 1: device-interface d1: driver dpdk needs pci-address or vdev"
    );
    assert_eq!(
        one(case("auto", "description none")),
        "line 8, column 1: device-interface d1: driver auto needs pci-address, vdev or \
         interface-name"
    );
    assert!(case("dpdk", "vdev net_ring0").is_empty());
}

#[test]
fn error_pci_and_vdev_conflict() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\n\
                pci-address 0000:01:00.0\nvdev net_ring0\n";
    assert_eq!(
        one(errors(text)),
        "line 7, column 1: vdev: cannot be set together with pci-address"
    );
}

#[test]
fn error_family_mismatch() {
    assert_eq!(
        one(errors(&router_with("", "address 10.0.0.1\nprefix-length 24\ngateway 2001:db8::1\n"))),
        "line 17, column 1: gateway 2001:db8::1: must be an IPv4 address"
    );
}

#[test]
fn error_inconsistent() {
    assert_eq!(
        one(in_authority("service s\ntransport tcp\nport-range 90\nend-port 80\n")),
        "line 6, column 1: end-port 80: must not be below start-port 90"
    );
    assert_eq!(
        one(in_authority("router r1\nbfd\nhold-down-time 10\nmaximum-hold-down-time 10\n")),
        "line 6, column 1: maximum-hold-down-time 10: must be above hold-down-time 10"
    );
    assert_eq!(
        one(in_authority("service s\ntransport icmp\nport-range 90\n")),
        "line 4, column 1: transport icmp: icmp has no ports, so it takes no port-range"
    );
}

#[test]
fn error_duplicate_network_interface_on_node() {
    let text = "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\ninterface-name a\n\
                network-interface x\nexit\nexit\ndevice-interface d2\ninterface-name b\n\
                network-interface x\n";
    assert_eq!(
        one(errors(text)),
        "line 12, column 1: network-interface x: duplicate entry, first defined at line 7"
    );
}

#[test]
fn errors_all_reported() {
    // Three independent errors in one text: all are returned, in line order.
    let messages = in_authority(
        "name a b\nsecurity-key-management\npeer-key-timeout 5\nexit\nrouter r1\nname r2\n",
    );
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].starts_with("line 3,"));
    assert!(messages[1].starts_with("line 5,"));
    assert!(messages[2].starts_with("line 8,"));
}

#[test]
fn errors_display_and_source() {
    let err = parse_authority("config\nauthority\nname\nrouterr 1\n").unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(
        err.to_string(),
        "line 3, column 1: name: missing value\nline 4, column 1: unknown keyword routerr in \
         authority: did you mean router?"
    );
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), "line 3, column 1: name: missing value");
}

#[test]
fn error_unknown_keyword_belongs_deeper() {
    assert_eq!(
        one(in_authority("peer-key-timeout 100\n")),
        "line 3, column 1: unknown keyword peer-key-timeout in authority: it belongs in \
         security-key-management"
    );
    assert_eq!(
        one(in_authority("router r1\nml-kem-key-size 512\n")),
        "line 4, column 1: unknown keyword ml-kem-key-size in router r1: it belongs in \
         key-exchange-algorithm-override > ml-kem"
    );
}

#[test]
fn error_undefined_reference_list_capped() {
    let tenants: String = (0..10).map(|i| format!("tenant t{i}\nexit\n")).collect();
    assert_eq!(
        one(in_authority(&format!("{tenants}service s\naccess-policy nobody\n"))),
        "line 24, column 15: access-policy nobody: no tenant nobody is defined (defined: t0, t1, \
         t2, t3, t4, t5, t6, t7 and 2 more)"
    );
}

#[test]
fn long_value_clipped_in_message() {
    let long = "9".repeat(300);
    let text = format!(
        "config\n authority\n  security-key-management\n   peer-key-timeout {long}\n  \
         exit\n exit\nexit\n"
    );
    let errors = svr_control::config::parse_authority(&text).unwrap_err().to_string();
    assert!(!errors.contains(&long), "{errors}");
    assert!(errors.contains(&format!("{}…", "9".repeat(64))), "{errors}");
}

#[test]
fn ipv4_prefix_length_range_named() {
    let text = "config\n authority\n  router r1\n   node n1\n    device-interface d1\n     \
                interface-name e1\n     network-interface n1\n      address 10.0.0.1\n       \
                prefix-length 24x\n      exit\n     exit\n    exit\n   exit\n  exit\n exit\nexit\n";
    let errors = svr_control::config::parse_authority(text).unwrap_err().to_string();
    assert!(errors.contains("prefix-length 24x: must be 0-32 for an IPv4 address"), "{errors}");
}
