//! Leaf values: checking a word against its schema type and the typed result.

use std::fmt;
use std::net::IpAddr;

use super::schema::Type;

/// A leaf or key value that passed its type check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Str(String),
    Bool(bool),
    /// An enumeration value or a special word of a number type (`never`), in lower case.
    Word(&'static str),
    Uint(u64),
    Ip(IpAddr),
    Prefix(Prefix),
    Cpus(Vec<u16>),
}

/// An IPv4 or IPv6 prefix with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub address: IpAddr,
    pub length: u8,
}

impl Prefix {
    /// Tells whether `ip` falls inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.length) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.length) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// The highest CPU number a `worker-cores` list may name.
pub const MAX_CPU: u16 = 1023;

/// Checks `text` against `ty`; on failure returns the description of what is allowed.
pub fn check(ty: Type, text: &str) -> Result<Value, String> {
    match ty {
        Type::String => Ok(Value::Str(text.to_owned())),
        Type::Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("true or false".to_owned()),
        },
        Type::Enum(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(text))
            .map(|w| Value::Word(w))
            .ok_or_else(|| format!("one of {}", join_or(words))),
        Type::Uint { min, max, unit, words } => {
            if let Some(w) = words.iter().find(|w| w.eq_ignore_ascii_case(text)) {
                return Ok(Value::Word(w));
            }
            match parse_decimal(text) {
                Some(n) if (min..=max).contains(&n) => Ok(Value::Uint(n)),
                _ => Err(describe_uint(min, max, unit, words)),
            }
        }
        Type::Ip => {
            text.parse::<IpAddr>().map(Value::Ip).map_err(|_| "an IPv4 or IPv6 address".to_owned())
        }
        Type::Prefix => parse_prefix(text).map(Value::Prefix),
        Type::CpuList => parse_cpu_list(text).map(Value::Cpus),
    }
}

fn describe_uint(min: u64, max: u64, unit: &str, words: &[&str]) -> String {
    let mut out = format!("{min}-{max}");
    if !unit.is_empty() {
        out.push(' ');
        out.push_str(unit);
    }
    if words.is_empty() {
        return out;
    }
    let mut all = vec![out.as_str()];
    all.extend_from_slice(words);
    join_or(&all)
}

/// Joins words as `a, b or c`.
pub fn join_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Parses plain ASCII decimal digits; rejects signs, blanks and overflow.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_prefix(text: &str) -> Result<Prefix, String> {
    const SHAPE: &str = "an IPv4 or IPv6 prefix such as 10.0.0.0/8 or 2001:db8::/32";
    let (addr, length) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let address: IpAddr = addr.parse().map_err(|_| SHAPE.to_owned())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let length = match length {
        None => max,
        Some(l) => match parse_decimal(l) {
            Some(n) if n <= u64::from(max) => n as u8,
            _ => return Err(SHAPE.to_owned()),
        },
    };
    let network = match address {
        IpAddr::V4(a) => IpAddr::V4(mask_v4(u32::from(a), length).into()),
        IpAddr::V6(a) => IpAddr::V6(mask_v6(u128::from(a), length).into()),
    };
    if network != address {
        return Err(format!("a prefix with no host bits set, such as {network}/{length}"));
    }
    Ok(Prefix { address, length })
}

fn mask_v4(a: u32, length: u8) -> u32 {
    a & u32::MAX.checked_shl(32 - u32::from(length.min(32))).unwrap_or(0)
}

fn mask_v6(a: u128, length: u8) -> u128 {
    a & u128::MAX.checked_shl(128 - u32::from(length.min(128))).unwrap_or(0)
}

fn parse_cpu_list(text: &str) -> Result<Vec<u16>, String> {
    let shape = format!("a CPU list such as 1,3-5 with CPU numbers 0-{MAX_CPU}, each named once");
    let cpu = |s: &str| match parse_decimal(s) {
        Some(n) if n <= u64::from(MAX_CPU) => Some(n as u16),
        _ => None,
    };
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (cpu(a), cpu(b)),
            None => (cpu(part), cpu(part)),
        };
        let (Some(low), Some(high)) = (low, high) else {
            return Err(shape);
        };
        if low > high {
            return Err(shape);
        }
        for c in low..=high {
            if cpus.contains(&c) {
                return Err(shape);
            }
            cpus.push(c);
        }
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_host_bits_rejected() {
        assert_eq!(
            check(Type::Prefix, "10.1.1.1/24"),
            Err("a prefix with no host bits set, such as 10.1.1.0/24".to_owned())
        );
    }

    #[test]
    fn prefix_bare_address_is_host() {
        let Ok(Value::Prefix(p)) = check(Type::Prefix, "2001:db8::1") else { panic!() };
        assert_eq!(p.length, 128);
    }

    #[test]
    fn prefix_zero_length() {
        let Ok(Value::Prefix(p)) = check(Type::Prefix, "0.0.0.0/0") else { panic!() };
        assert!(p.contains("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn prefix_contains() {
        let Ok(Value::Prefix(p)) = check(Type::Prefix, "10.20.0.0/16") else { panic!() };
        assert!(p.contains("10.20.3.4".parse().unwrap()));
        assert!(!p.contains("10.21.0.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
    }

    #[test]
    fn cpu_list_ranges() {
        assert_eq!(check(Type::CpuList, "1,3-5"), Ok(Value::Cpus(vec![1, 3, 4, 5])));
        assert!(check(Type::CpuList, "3-1").is_err());
        assert!(check(Type::CpuList, "1,1").is_err());
        assert!(check(Type::CpuList, "1024").is_err());
        assert!(check(Type::CpuList, "").is_err());
    }

    #[test]
    fn uint_rejects_sign_and_overflow() {
        let ty = Type::Uint { min: 0, max: u64::MAX, unit: "", words: &[] };
        assert!(check(ty, "+1").is_err());
        assert!(check(ty, "99999999999999999999999").is_err());
        assert_eq!(check(ty, "007"), Ok(Value::Uint(7)));
    }
}
