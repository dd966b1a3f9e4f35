//! Fuzz target for opening sealed SVR packets.
//!
//! The first input byte picks the mode. Mode 0 opens the rest as received from the network,
//! which exercises every rejection before and at the tag check. Mode 1 treats the rest as a
//! packet body (metadata and carried payload), appends a sequence field and a valid tag
//! under the fuzzer's keys, and then opens it: this reaches the metadata decryption, TLV
//! parsing, payload decryption and padding checks that a random tag would never pass.

#![no_main]

use libfuzzer_sys::fuzz_target;
use svr_dataplane::crypto::{
    Direction, MetadataKeys, MetadataSecret, PairKeys, PairSecret, PayloadSecret, Sequence,
    SessionKeys, Suite, seal_trailer,
};
use svr_dataplane::sealed::{
    Received, classify, decrypt_carried, open_with_metadata, open_without_metadata,
};

const METADATA_INDEX: u32 = 1;

struct Keys {
    metadata: MetadataKeys,
    pair: PairKeys,
    session: SessionKeys,
}

fn keys() -> Keys {
    let metadata = MetadataKeys::derive(
        METADATA_INDEX,
        Suite::AesCbc256HmacSha384,
        &MetadataSecret::from_bytes([0x11; 32]),
    );
    // Both directions under one key ("a" to "b"), so seeds sealed with `send` open with it.
    let pair = PairKeys::derive(Suite::AesCbc256HmacSha384, &PairSecret::from_bytes([0x33; 32]), "a", "b");
    let session =
        SessionKeys::derive(Suite::AesCbc256HmacSha384, 0, &PayloadSecret::from_bytes([0x22; 32]));
    Keys { metadata, pair, session }
}

fn open(packet: &mut [u8], keys: &Keys) {
    let (metadata, session) = (&keys.metadata, &keys.session);
    let opened = match classify(packet) {
        Ok(Received::Metadata { .. }) => open_with_metadata(packet, metadata, keys.pair.send()),
        Ok(Received::Session) => open_without_metadata(packet, session, Direction::Forward),
        Err(_) => return,
    };
    let Ok(opened) = opened else {
        return;
    };
    assert!(opened.carried.end <= packet.len());
    if let Ok(plain) = decrypt_carried(packet, &opened, session, Direction::Forward, true) {
        assert!(plain.start >= opened.carried.start && plain.end <= opened.carried.end);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    match mode % 2 {
        0 => open(&mut rest.to_vec(), &keys),
        _ => {
            let Ok(sequence) = Sequence::new(0, 1) else {
                return;
            };
            let mut packet = rest.to_vec();
            packet.resize(rest.len() + 8 + 48, 0);
            let mac = match classify(rest) {
                Ok(Received::Metadata { .. }) => keys.pair.send(),
                _ => keys.session.mac(Direction::Forward),
            };
            if seal_trailer(mac, &mut packet, rest.len(), sequence).is_ok() {
                open(&mut packet, &keys);
            }
        }
    }
});
