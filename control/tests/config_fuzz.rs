//! The parser returns a result, never panics, on arbitrary text and on mangled samples.

use proptest::prelude::*;
use svr_control::config::parse_authority;

const SAMPLE: &str = include_str!("configs/eskm-two-router.cfg");
const HUB: &str = include_str!("configs/hub-and-spoke.cfg");

/// Words that steer the parser into every block, so random text gets deep.
const WORDS: &[&str] = &[
    "config",
    "configure",
    "authority",
    "exit",
    "router",
    "r1",
    "node",
    "n1",
    "device-interface",
    "network-interface",
    "neighborhood",
    "adjacency",
    "10.0.0.1",
    "peer",
    "bfd",
    "security",
    "tenant",
    "service",
    "address",
    "10.0.0.0/8",
    "transport",
    "tcp",
    "port-range",
    "80",
    "key-exchange-algorithm",
    "ml-kem",
    "diffie-hellman",
    "dh-key-size",
    "2048",
    "name",
    "\"q",
    "\"x y\"",
    "#",
    "\\",
    "true",
    "never",
    "-1",
    "99999999999999999999",
    "service-route",
    "next-hop",
    "dataplane",
    "worker-cores",
    "0-3",
    "\n",
    "\n",
    "\n",
];

fn word_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..200).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_arbitrary_text(text in any::<String>()) {
        let _ = parse_authority(&text);
    }

    #[test]
    fn parse_keyword_soup(text in word_soup()) {
        let _ = parse_authority(&text);
    }

    #[test]
    fn parse_truncated_sample(cut in 0..SAMPLE.len()) {
        let cut = (0..=cut).rev().find(|&i| SAMPLE.is_char_boundary(i)).unwrap_or(0);
        let _ = parse_authority(&SAMPLE[..cut]);
    }

    #[test]
    fn parse_sample_with_lines_dropped(mask in prop::collection::vec(any::<bool>(), 64)) {
        let text: String = HUB
            .lines()
            .enumerate()
            .filter(|(i, _)| mask[i % mask.len()])
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let _ = parse_authority(&text);
    }

    #[test]
    fn parse_sample_with_bytes_replaced(at in 0..SAMPLE.len(), with in any::<char>()) {
        let mut text = SAMPLE.to_owned();
        if text.is_char_boundary(at) && text[at..].chars().next().is_some() {
            let len = text[at..].chars().next().map_or(0, char::len_utf8);
            text.replace_range(at..at + len, &with.to_string());
        }
        let _ = parse_authority(&text);
    }
}
