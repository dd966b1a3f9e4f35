//! TCP MSS clamping (RFC 9293 section 3.7.1): lowering the maximum segment size that SYN
//! segments announce, so that full-sized segments still fit the WAN MTU once SVR's
//! overhead is added.

use super::checksum;

/// TCP option kinds.
const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_MSS: u8 = 2;
/// The SYN flag in byte 13 of the TCP header.
const FLAG_SYN: u8 = 0x02;

/// Lowers the MSS option of `segment`, a whole TCP segment, to `max` when it is a SYN
/// announcing more; returns whether it changed. The checksum is updated incrementally
/// (RFC 1624 equation 3). Malformed options are left alone: the segment was length-checked
/// by the parser, and a receiver ignores options it cannot read.
pub fn clamp_mss(segment: &mut [u8], max: u16) -> bool {
    if segment.len() < 20 || segment[13] & FLAG_SYN == 0 {
        return false;
    }
    let header_len = (usize::from(segment[12] >> 4) * 4).min(segment.len());
    let mut at = 20;
    while at < header_len {
        match segment[at] {
            OPTION_END => return false,
            OPTION_NOP => at += 1,
            kind => {
                let Some(&len) = segment.get(at + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || at + len > header_len {
                    return false;
                }
                if kind == OPTION_MSS && len == 4 {
                    let old = u16::from_be_bytes([segment[at + 2], segment[at + 3]]);
                    if old <= max {
                        return false;
                    }
                    segment[at + 2..at + 4].copy_from_slice(&max.to_be_bytes());
                    update_checksum(segment, old, max);
                    return true;
                }
                at += len;
            }
        }
    }
    false
}

/// Replaces the 16-bit word `old` by `new` in the TCP checksum at bytes 16-17.
fn update_checksum(segment: &mut [u8], old: u16, new: u16) {
    let stored = u16::from_be_bytes([segment[16], segment[17]]);
    let sum = u32::from(!stored) + u32::from(!old) + u32::from(new);
    let updated = checksum::finish(sum);
    segment[16..18].copy_from_slice(&updated.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DESTINATION: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    /// A SYN with the options NOP, NOP, MSS `mss`, NOP, NOP (a 28-byte header), and a valid
    /// checksum. The MSS value is at bytes 24-25.
    fn syn(mss: u16, flags: u8) -> Vec<u8> {
        let mut segment = vec![0x9c, 0x41, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, flags, 0xff, 0xff];
        segment.extend_from_slice(&[0, 0, 0, 0, 1, 1, 2, 4]);
        segment.extend_from_slice(&mss.to_be_bytes());
        segment.extend_from_slice(&[1, 1]);
        checksum::fill_l4(SOURCE, DESTINATION, 6, &mut segment);
        segment
    }

    #[test]
    fn clamp_lowers_mss() {
        let mut segment = syn(1460, FLAG_SYN);
        assert!(clamp_mss(&mut segment, 1340));
        assert_eq!(segment[24..26], 1340u16.to_be_bytes());
        assert!(checksum::verify_l4(SOURCE, DESTINATION, 6, &segment), "checksum updated");
    }

    #[test]
    fn clamp_keeps_smaller_mss() {
        let mut segment = syn(1200, FLAG_SYN);
        assert!(!clamp_mss(&mut segment, 1340));
        assert_eq!(segment[24..26], 1200u16.to_be_bytes());
    }

    #[test]
    fn clamp_ignores_non_syn() {
        let mut segment = syn(1460, 0x10);
        assert!(!clamp_mss(&mut segment, 1340));
    }

    #[test]
    fn clamp_stops_at_bad_option_length() {
        let mut segment = syn(1460, FLAG_SYN);
        segment[23] = 9;
        assert!(!clamp_mss(&mut segment, 1340));
    }
}
