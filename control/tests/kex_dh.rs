//! Diffie-Hellman tests: the MODP primes, public-value checks, fixed-length encoding and
//! agreement between two sides.

// Test helpers outside #[test] functions unwrap too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use num_bigint::BigUint;
use rand::SeedableRng;
use rand::rngs::StdRng;
use svr_control::kex::dh::{DhGroup, DhKeyPair, check_public, encode_fixed};
use svr_control::kex::error::DhError;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Miller-Rabin with fixed bases; enough to catch a mistyped digit.
fn miller_rabin(n: &BigUint, bases: &[u32]) -> bool {
    let one = BigUint::from(1u32);
    let n_minus_one = n - &one;
    let s = n_minus_one.trailing_zeros().unwrap_or(0);
    let d = &n_minus_one >> s;
    'base: for a in bases {
        let mut x = BigUint::from(*a).modpow(&d, n);
        if x == one || x == n_minus_one {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&BigUint::from(2u32), n);
            if x == n_minus_one {
                continue 'base;
            }
        }
        return false;
    }
    true
}

#[test]
fn modp_primes_known_words() {
    let head = "FFFFFFFFFFFFFFFFC90FDAA22168C234";
    for (group, tail) in [
        (DhGroup::Modp1024, "ECE65381FFFFFFFFFFFFFFFF"),
        (DhGroup::Modp2048, "8AACAA68FFFFFFFFFFFFFFFF"),
        (DhGroup::Modp4096, "34063199FFFFFFFFFFFFFFFF"),
    ] {
        let hex = format!("{:X}", group.prime());
        assert_eq!(hex.len() * 4, usize::from(group.bits()), "{group}: bit length");
        assert!(hex.starts_with(head), "{group}: first words");
        assert!(hex.ends_with(tail), "{group}: last words");
        assert_eq!(group.prime() % 8u32, BigUint::from(7u32), "{group}: p = 7 mod 8");
    }
}

#[test]
fn modp_primes_are_safe() {
    for group in DhGroup::ALL {
        let p = group.prime();
        let q = group.order();
        assert_eq!(&(q * 2u32 + 1u32), p, "{group}: p = 2q + 1");
        assert!(miller_rabin(p, &[2, 3]), "{group}: p composite");
        assert!(miller_rabin(q, &[2, 3]), "{group}: q composite");
        // 2 generates the subgroup of order q.
        assert_eq!(BigUint::from(2u32).modpow(q, p), BigUint::from(1u32), "{group}: g^q");
    }
}

#[test]
fn dh_agreement_both_sides() {
    for group in DhGroup::ALL {
        let mut r = rng(u64::from(group.bits()));
        let a = DhKeyPair::generate(group, &mut r);
        let b = DhKeyPair::generate(group, &mut r);
        assert_eq!(a.public().len(), group.encoded_len());
        let ab = a.agree(b.public(), &mut r).unwrap();
        let ba = b.agree(a.public(), &mut r).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes(), "{group}");
        assert_eq!(ab.as_bytes().len(), group.encoded_len());
        assert_ne!(a.public(), b.public());
    }
}

#[test]
fn dh_blinding_keeps_result() {
    // Two agreements with the same key pair use different blinding factors, and both
    // must give the same secret.
    let mut r = rng(5);
    let a = DhKeyPair::generate(DhGroup::Modp1024, &mut r);
    let b = DhKeyPair::generate(DhGroup::Modp1024, &mut r);
    let first = a.agree(b.public(), &mut r).unwrap();
    let second = a.agree(b.public(), &mut r).unwrap();
    assert_eq!(first.as_bytes(), second.as_bytes());
}

#[test]
fn dh_exponent_lengths() {
    assert_eq!(DhGroup::Modp1024.exponent_bits(), 224);
    assert_eq!(DhGroup::Modp2048.exponent_bits(), 256);
    assert_eq!(DhGroup::Modp4096.exponent_bits(), 320);
    // At least twice the security strength: 80, 112 and 152 bits.
    assert!(DhGroup::Modp1024.exponent_bits() >= 160);
    assert!(DhGroup::Modp2048.exponent_bits() >= 224);
    assert!(DhGroup::Modp4096.exponent_bits() >= 304);
}

#[test]
fn dh_public_wrong_length() {
    let group = DhGroup::Modp2048;
    let mut r = rng(1);
    let a = DhKeyPair::generate(group, &mut r);
    for len in [0, 255, 257] {
        let mut bad = a.public().to_vec();
        bad.resize(len, 0);
        assert_eq!(
            check_public(group, &bad).err(),
            Some(DhError::WrongLength { group, expected: 256, actual: len })
        );
    }
    // A value that would fit in fewer bytes must still come at full length.
    let short = BigUint::from(12345u32).to_bytes_be();
    assert!(matches!(check_public(group, &short), Err(DhError::WrongLength { .. })));
}

#[test]
fn dh_public_out_of_range() {
    for group in DhGroup::ALL {
        let p = group.prime();
        let values = [
            BigUint::from(0u32),
            BigUint::from(1u32),
            p - 1u32,
            p.clone(),
            p + 1u32,
            (BigUint::from(1u32) << usize::from(group.bits())) - 1u32,
        ];
        for v in values {
            let mut bytes = vec![0u8; group.encoded_len()];
            let raw = v.to_bytes_be();
            if raw.len() > group.encoded_len() {
                continue;
            }
            bytes[group.encoded_len() - raw.len()..].copy_from_slice(&raw);
            assert_eq!(
                check_public(group, &bytes).err(),
                Some(DhError::OutOfRange { group }),
                "{group}"
            );
        }
    }
}

#[test]
fn dh_public_outside_subgroup() {
    // p - 2 = -2 mod p: 2 is a square mod p and -1 is not (p = 3 mod 4), so -2 is a
    // non-residue and lies outside the subgroup of order q.
    for group in DhGroup::ALL {
        let p = group.prime();
        let minus_two = p - 2u32;
        let bytes = encode_fixed(group, &minus_two);
        assert_eq!(check_public(group, &bytes).err(), Some(DhError::NotInSubgroup { group }));
    }
}

#[test]
fn dh_public_in_subgroup_accepted() {
    for group in DhGroup::ALL {
        // 4 = 2^2 is in the subgroup.
        let bytes = encode_fixed(group, &BigUint::from(4u32));
        assert!(check_public(group, &bytes).is_ok(), "{group}");
    }
}

#[test]
fn encode_fixed_keeps_leading_zeros() {
    let group = DhGroup::Modp1024;
    let bytes = encode_fixed(group, &BigUint::from(0x0102u32));
    assert_eq!(bytes.len(), 128);
    assert!(bytes[..126].iter().all(|b| *b == 0));
    assert_eq!(&bytes[126..], &[1, 2]);

    // Search for a generated public value and shared secret with a leading zero byte:
    // about 1 in 256 of each, so a few hundred tries find both.
    let mut r = rng(99);
    let peer = DhKeyPair::generate(group, &mut r);
    let mut found_public = false;
    let mut found_secret = false;
    for _ in 0..2000 {
        let a = DhKeyPair::generate(group, &mut r);
        assert_eq!(a.public().len(), 128);
        found_public |= a.public()[0] == 0;
        let s = a.agree(peer.public(), &mut r).unwrap();
        assert_eq!(s.as_bytes().len(), 128);
        if s.as_bytes()[0] == 0 {
            found_secret = true;
            assert_eq!(s.as_bytes(), peer.agree(a.public(), &mut r).unwrap().as_bytes());
        }
        if found_public && found_secret {
            break;
        }
    }
    assert!(found_public, "no public value with a leading zero byte in 2000 tries");
    assert!(found_secret, "no shared secret with a leading zero byte in 2000 tries");
}

#[test]
fn dh_group_from_bits() {
    assert_eq!(DhGroup::from_bits(2048), Some(DhGroup::Modp2048));
    assert_eq!(DhGroup::from_bits(3072), None);
}
