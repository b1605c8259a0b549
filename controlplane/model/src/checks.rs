//! The string rules of the host document, kept apart from the walk over the JSON so each
//! rule can be read (and tested) on its own. Every rule answers `Err(reason)` in words an
//! operator can act on; the caller adds the path.
//!
//! Most of these strings end up inside FreeSWITCH's XML, where FreeSWITCH expands
//! `$${…}` and `${…}` in attribute values before anything else sees them: escaping
//! cannot neutralise that, so such values are refused outright.

use ipnet::IpNet;
use std::net::IpAddr;

/// Longest profile, variable, interface-key or context name accepted. Profile names grow
/// by `-ingress`/`-egress` and become file names and XML attribute values.
pub const NAME_MAX: usize = 64;
/// Longest `sip_variables` value accepted.
pub const VALUE_MAX: usize = 1024;
/// Longest codec list accepted.
pub const CODEC_MAX: usize = 256;
/// Longest capture filter accepted.
pub const FILTER_MAX: usize = 1024;
/// Longest image version accepted.
pub const VERSION_MAX: usize = 64;
/// Linux's IFNAMSIZ less the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// A string quoted for an error message: escaped (so a control character cannot forge a
/// log line) and cut short (so a huge value cannot flood the report).
pub fn quote(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Why `s` may not be written into FreeSWITCH's XML, if it may not.
pub fn injection(s: &str) -> Result<(), String> {
    if s.contains("$${") {
        return Err(format!(
            "{} contains \"$${{\", which FreeSWITCH would expand as a global variable",
            quote(s)
        ));
    }
    if s.contains("${") {
        return Err(format!(
            "{} contains \"${{\", which FreeSWITCH would expand as a channel variable",
            quote(s)
        ));
    }
    for c in s.chars() {
        match c {
            '\n' | '\r' => return Err(format!("{} contains a line break", quote(s))),
            '<' | '>' | '&' | '"' => {
                return Err(format!(
                "{} contains '{c}', which is not allowed in a value written to FreeSWITCH's XML",
                quote(s)
            ))
            }
            c if c.is_control() => {
                return Err(format!(
                    "{} contains the control character U+{:04X}",
                    quote(s),
                    u32::from(c)
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A name that becomes a sofia profile, ACL list, variable or context name: strict, so it
/// is the same text in a file name, an XML attribute and an fs_cli command.
pub fn name(s: &str) -> Result<(), String> {
    injection(s)?;
    if s.is_empty() {
        return Err("empty name".into());
    }
    if s.len() > NAME_MAX {
        return Err(format!("{} is longer than {NAME_MAX} characters", quote(s)));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!(
            "{} contains {c:?}: names allow only A-Z, a-z, 0-9, '_', '.' and '-'",
            quote(s)
        ));
    }
    // A leading '-' reads as an option to fs_cli and a leading '.' makes hidden or
    // parent-directory file names.
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{} must start with a letter, a digit or '_'",
            quote(s)
        ));
    }
    Ok(())
}

/// A DNS host name (RFC 1123 labels), without a trailing dot.
pub fn hostname(s: &str) -> Result<(), String> {
    injection(s)?;
    if s.is_empty() {
        return Err("empty host name".into());
    }
    if s.len() > 253 {
        return Err(format!("{} is longer than 253 characters", quote(s)));
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{} is not a valid host name (label {})",
                quote(s),
                quote(label)
            ));
        }
    }
    Ok(())
}

/// An IP address literal, v4 or v6.
pub fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("invalid IP address {}", quote(s)))
}

/// A CIDR, or a bare address meaning that one host. Answers the network with its host
/// bits cleared, and whether there were host bits to clear (FreeSWITCH ignores them too,
/// but they usually betray a typo worth a warning).
pub fn cidr(s: &str) -> Result<(IpNet, bool), String> {
    let bad = |why: String| format!("invalid CIDR {}: {why}", quote(s));
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad(format!("{} is not an IP address", quote(addr))))?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad(format!("prefix length {} is not a number", quote(p))));
            }
            match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad(format!("prefix length above {max}"))),
            }
        }
    };
    let net = IpNet::new(addr, prefix).map_err(|_| bad(format!("prefix length above {max}")))?;
    let trunc = net.trunc();
    Ok((trunc, trunc != net))
}

/// The target of an outbound event socket: `host:port`, an IPv6 host in brackets.
/// Answers the host without brackets.
pub fn socket(s: &str) -> Result<(String, u16), String> {
    let form = || {
        format!(
            "invalid socket {}: expected \"host:port\" (IPv6 as \"[address]:port\")",
            quote(s)
        )
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(form)?;
        match h.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => {}
            _ => {
                return Err(format!(
                    "invalid socket {}: {} is not an IPv6 address",
                    quote(s),
                    quote(h)
                ))
            }
        }
        (h, p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(form)?;
        if h.contains(':') {
            return Err(form());
        }
        if h.parse::<IpAddr>().is_err() {
            hostname(h).map_err(|why| format!("invalid socket {}: {why}", quote(s)))?;
        }
        (h, p)
    };
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid socket {}: port {} is not a number",
            quote(s),
            quote(port)
        ));
    }
    let port = match port.parse::<u32>() {
        Ok(n @ 1..=65535) => n as u16,
        _ => {
            return Err(format!(
                "invalid socket {}: port {port} is out of range 1..=65535",
                quote(s)
            ))
        }
    };
    Ok((host.to_owned(), port))
}

/// A codec preference list as sofia takes it, e.g. `PCMA,PCMU` or `OPUS@48000h@20i`.
pub fn codecs(s: &str) -> Result<(), String> {
    injection(s)?;
    if s.is_empty() {
        return Err("empty codec list".into());
    }
    if s.len() > CODEC_MAX {
        return Err(format!(
            "{} is longer than {CODEC_MAX} characters",
            quote(s)
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.@,-".contains(*c)))
    {
        return Err(format!(
            "{} contains {c:?}: codec lists allow only A-Z, a-z, 0-9, '_', '.', '@', ',' and '-'",
            quote(s)
        ));
    }
    Ok(())
}

/// A value for a FreeSWITCH global variable: anything that cannot inject, bounded.
pub fn variable_value(s: &str) -> Result<(), String> {
    injection(s)?;
    if s.len() > VALUE_MAX {
        return Err(format!(
            "{} is longer than {VALUE_MAX} characters",
            quote(s)
        ));
    }
    Ok(())
}

/// An image version. It names files and download paths during an upgrade, hence no
/// slash, no `..` and a short alphabet.
pub fn version(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty version".into());
    }
    if s.len() > VERSION_MAX {
        return Err(format!(
            "{} is longer than {VERSION_MAX} characters",
            quote(s)
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+~-".contains(*c)))
    {
        return Err(format!(
            "{} contains {c:?}: versions allow only A-Z, a-z, 0-9, '.', '_', '+', '~' and '-'",
            quote(s)
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{} must start with a letter or a digit", quote(s)));
    }
    if s.contains("..") {
        return Err(format!("{} contains \"..\"", quote(s)));
    }
    Ok(())
}

/// A Linux network interface name for the capture ring (`any` included).
pub fn interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty interface name".into());
    }
    if s.len() > IFNAME_MAX {
        return Err(format!(
            "{} is longer than {IFNAME_MAX} characters, the Linux limit",
            quote(s)
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!(
            "{} contains {c:?}: interface names allow only A-Z, a-z, 0-9, '_', '.' and '-'",
            quote(s)
        ));
    }
    if s == "." || s == ".." {
        return Err(format!("{} is not an interface name", quote(s)));
    }
    Ok(())
}

/// A capture filter in BPF syntax. It goes to the capture tool as one argument, never
/// through a shell or FreeSWITCH, so `<`, `>` and `&` are legitimate here.
pub fn capture_filter(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("empty filter: leave the field out to capture everything".into());
    }
    if s.len() > FILTER_MAX {
        return Err(format!(
            "filter is {} characters long, more than {FILTER_MAX}",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{} contains the control character U+{:04X}",
            quote(s),
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_forms() {
        assert_eq!(
            cidr("10.0.0.0/33").unwrap_err(),
            "invalid CIDR \"10.0.0.0/33\": prefix length above 32"
        );
        assert_eq!(
            cidr("2001:db8::/129").unwrap_err(),
            "invalid CIDR \"2001:db8::/129\": prefix length above 128"
        );
        assert_eq!(
            cidr("10.0.0.0/x").unwrap_err(),
            "invalid CIDR \"10.0.0.0/x\": prefix length \"x\" is not a number"
        );
        assert_eq!(
            cidr("10.0.0.300/8").unwrap_err(),
            "invalid CIDR \"10.0.0.300/8\": \"10.0.0.300\" is not an IP address"
        );
        assert_eq!(
            cidr("10.1.2.3").unwrap(),
            ("10.1.2.3/32".parse().unwrap(), false)
        );
        assert_eq!(
            cidr("10.1.2.3/8").unwrap(),
            ("10.0.0.0/8".parse().unwrap(), true)
        );
        assert_eq!(
            cidr("2001:db8::1").unwrap(),
            ("2001:db8::1/128".parse().unwrap(), false)
        );
    }

    #[test]
    fn socket_forms() {
        assert_eq!(
            socket("127.0.0.1:5702").unwrap(),
            ("127.0.0.1".into(), 5702)
        );
        assert_eq!(socket("[::1]:5702").unwrap(), ("::1".into(), 5702));
        assert_eq!(
            socket("cp.example.net:8021").unwrap(),
            ("cp.example.net".into(), 8021)
        );
        assert!(socket("::1:5702").is_err());
        assert!(socket("127.0.0.1").is_err());
        assert!(socket("127.0.0.1:0").is_err());
        assert!(socket("127.0.0.1:65536").is_err());
        assert!(socket("[127.0.0.1]:5702").is_err());
        assert!(socket("bad_host:5702").is_err());
    }

    #[test]
    fn names() {
        assert!(name("test").is_ok());
        assert!(name("_a.b-c9").is_ok());
        assert!(name("").is_err());
        assert!(name("-x").is_err());
        assert!(name("..").is_err());
        assert!(name("a b").is_err());
        assert!(name("a/b").is_err());
        assert!(name(&"a".repeat(NAME_MAX)).is_ok());
        assert!(name(&"a".repeat(NAME_MAX + 1)).is_err());
        assert_eq!(
            name("x${y}").unwrap_err(),
            "\"x${y}\" contains \"${\", which FreeSWITCH would expand as a channel variable"
        );
    }

    #[test]
    fn injections() {
        for bad in [
            "$${a}", "${a}", "<", ">", "&", "\"", "a\nb", "a\rb", "a\u{7}b", "\t",
        ] {
            assert!(injection(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["", "plain", "a$b", "{x}", "it's", "a=b;c"] {
            assert!(injection(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn quoting_is_escaped_and_bounded() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert!(quote(&"x".repeat(1000)).len() < 80);
    }

    #[test]
    fn versions_and_interfaces() {
        assert!(version("2026.11.2").is_ok());
        assert!(version("1.0.0-rc1+g1234").is_ok());
        assert!(version("../etc").is_err());
        assert!(version("1..2").is_err());
        assert!(version("1/2").is_err());
        assert!(version("").is_err());
        assert!(interface_name("eth0").is_ok());
        assert!(interface_name("any").is_ok());
        assert!(interface_name("enp0s31f6.100").is_ok());
        assert!(interface_name("averyverylongname0").is_err());
        assert!(interface_name("eth 0").is_err());
        assert!(capture_filter("udp port 5060 && len > 100").is_ok());
        assert!(capture_filter("udp\nport").is_err());
        assert!(capture_filter(" ").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(hostname("sbc1.example.net").is_ok());
        assert!(hostname("localhost").is_ok());
        assert!(hostname("-a.example").is_err());
        assert!(hostname("a..b").is_err());
        assert!(hostname("a_b").is_err());
        assert!(hostname("a.example.").is_err());
    }
}
