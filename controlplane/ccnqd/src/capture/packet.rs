//! What a captured packet holds, for the SIP selectors, and the pcap file format the
//! capture streams. Pure: bytes in, facts out, so it is unit-tested and fuzzed without
//! a network.
//!
//! A packet is decoded from its link layer (Ethernet, Linux cooked v1 and v2, raw IP;
//! the kinds Linux gives on `lo`, `any` and real interfaces) through IPv4 or IPv6 to UDP
//! or TCP, and its payload read as a SIP message when it is one: the first line and the
//! Call-ID, From and To headers (compact forms `i`, `f`, `t` too). A message split over
//! TCP segments or IP fragments is not reassembled: its first part, which holds the
//! headers, is what matches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// libpcap's link types this decoder knows.
pub const LINKTYPE_ETHERNET: i32 = 1;
pub const LINKTYPE_RAW: i32 = 101;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;

/// A SIP message's facts the selectors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// `INVITE sip:…@… SIP/2.0` or `SIP/2.0 200 OK`.
    pub first_line: String,
    pub call_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl Sip {
    /// The Request-URI of a request; `None` for a response.
    pub fn request_uri(&self) -> Option<&str> {
        let mut words = self.first_line.split(' ');
        let method = words.next()?;
        if method.starts_with("SIP/") {
            return None;
        }
        words.next()
    }
}

/// What a capture keeps: packets whose SIP message has this Call-ID, or this number in
/// its Request-URI, From or To. Both empty: every packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    pub call_id: Option<String>,
    pub number: Option<String>,
}

impl Selectors {
    pub fn any(&self) -> bool {
        self.call_id.is_some() || self.number.is_some()
    }

    pub fn keep(&self, sip: Option<&Sip>) -> bool {
        if !self.any() {
            return true;
        }
        let Some(sip) = sip else { return false };
        if let Some(id) = &self.call_id {
            if sip.call_id.as_deref() != Some(id.as_str()) {
                return false;
            }
        }
        if let Some(n) = &self.number {
            let has = |v: Option<&str>| v.is_some_and(|v| user_part(v).contains(n.as_str()));
            if !(has(sip.request_uri()) || has(sip.from.as_deref()) || has(sip.to.as_deref())) {
                return false;
            }
        }
        true
    }
}

/// The user part of a SIP URI in a header value (`"A" <sip:33123@h>;tag=x` → `33123`),
/// or the value itself when it has none.
fn user_part(v: &str) -> &str {
    let uri = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let after_scheme = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    after_scheme
        .split(['@', ';', '>'])
        .next()
        .unwrap_or(after_scheme)
}

/// The SIP message a packet carries, if it carries one.
pub fn sip(linktype: i32, frame: &[u8]) -> Option<Sip> {
    let (ethertype, ip) = link(linktype, frame)?;
    let (src_ip, dst_ip, proto, l4) = network(ethertype, ip)?;
    let (sport, dport, payload) = transport(proto, l4)?;
    let text = std::str::from_utf8(payload.get(..payload.len().min(8192))?)
        .or_else(|e| std::str::from_utf8(&payload[..e.valid_up_to()]))
        .ok()?;
    let mut lines = text.split("\r\n");
    let first_line = lines.next()?.to_owned();
    let is_sip = first_line.starts_with("SIP/2.0 ") || first_line.ends_with(" SIP/2.0");
    if !is_sip {
        return None;
    }
    let mut msg = Sip {
        first_line,
        call_id: None,
        from: None,
        to: None,
        src: SocketAddr::new(src_ip, sport),
        dst: SocketAddr::new(dst_ip, dport),
    };
    for line in lines {
        if line.is_empty() {
            break; // the body starts
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => msg.call_id = Some(value),
            "from" | "f" => msg.from = Some(value),
            "to" | "t" => msg.to = Some(value),
            _ => {}
        }
    }
    Some(msg)
}

/// The link layer: (ethertype, the network layer's bytes).
fn link(linktype: i32, f: &[u8]) -> Option<(u16, &[u8])> {
    let be16 = |b: &[u8], at: usize| Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut t = be16(f, at)?;
            // 802.1Q / 802.1ad tags
            while t == 0x8100 || t == 0x88a8 {
                at += 4;
                t = be16(f, at)?;
            }
            Some((t, f.get(at + 2..)?))
        }
        LINKTYPE_LINUX_SLL => Some((be16(f, 14)?, f.get(16..)?)),
        LINKTYPE_LINUX_SLL2 => Some((be16(f, 0)?, f.get(20..)?)),
        LINKTYPE_RAW => match f.first()? >> 4 {
            4 => Some((0x0800, f)),
            6 => Some((0x86dd, f)),
            _ => None,
        },
        _ => None,
    }
}

/// The network layer: (source, destination, protocol, the transport's bytes).
fn network(ethertype: u16, p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match ethertype {
        0x0800 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl {
                return None;
            }
            // A later fragment has no transport header.
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]) & 0x1fff;
            if frag != 0 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            let src = Ipv4Addr::new(*p.get(12)?, p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(*p.get(16)?, p[17], p[18], p[19]);
            let end = total.clamp(ihl, p.len());
            Some((src.into(), dst.into(), *p.get(9)?, p.get(ihl..end)?))
        }
        0x86dd => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            // Extension headers are not followed: SIP's packets carry none.
            Some((
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                *p.get(6)?,
                p.get(40..)?,
            ))
        }
        _ => None,
    }
}

/// The transport layer: (source port, destination port, payload).
fn transport(proto: u8, t: &[u8]) -> Option<(u16, u16, &[u8])> {
    let sport = u16::from_be_bytes([*t.first()?, *t.get(1)?]);
    let dport = u16::from_be_bytes([*t.get(2)?, *t.get(3)?]);
    match proto {
        17 => Some((sport, dport, t.get(8..)?)),
        6 => {
            let offset = usize::from(t.get(12)? >> 4) * 4;
            if offset < 20 {
                return None;
            }
            Some((sport, dport, t.get(offset..)?))
        }
        _ => None,
    }
}

/// The pcap file's global header (microsecond timestamps, native byte order as
/// libpcap writes it, version 2.4).
pub fn file_header(linktype: i32, snaplen: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    h.extend_from_slice(&2u16.to_ne_bytes());
    h.extend_from_slice(&4u16.to_ne_bytes());
    h.extend_from_slice(&0i32.to_ne_bytes());
    h.extend_from_slice(&0u32.to_ne_bytes());
    h.extend_from_slice(&snaplen.to_ne_bytes());
    h.extend_from_slice(&(linktype as u32).to_ne_bytes());
    h
}

/// One pcap record: its header and the bytes captured.
pub fn record(secs: u32, micros: u32, len: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(&secs.to_ne_bytes());
    r.extend_from_slice(&micros.to_ne_bytes());
    r.extend_from_slice(&(data.len() as u32).to_ne_bytes());
    r.extend_from_slice(&len.to_ne_bytes());
    r.extend_from_slice(data);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/UDP frame carrying `payload`.
    fn udp_frame(payload: &str) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut udp = vec![0x13, 0xc4, 0x14, 0x50, 0, 0, 0, 0];
        udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&udp);
        f.extend_from_slice(payload.as_bytes());
        f
    }

    const INVITE: &str = "INVITE sip:33123456789@127.0.0.2:5200 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n\
        f: <sip:qa@127.0.0.1:5060>;tag=1\r\n\
        To: <sip:33123456789@127.0.0.2:5200>\r\n\
        Call-ID: 1-42@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\r\nv=0\r\n";

    #[test]
    fn a_sip_request_over_udp_is_read() {
        let s = sip(LINKTYPE_ETHERNET, &udp_frame(INVITE)).unwrap();
        assert_eq!(s.request_uri(), Some("sip:33123456789@127.0.0.2:5200"));
        assert_eq!(s.call_id.as_deref(), Some("1-42@127.0.0.1"));
        assert_eq!(s.from.as_deref(), Some("<sip:qa@127.0.0.1:5060>;tag=1"));
        assert_eq!(s.src, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(s.dst, "127.0.0.2:5200".parse().unwrap());
    }

    #[test]
    fn selectors_keep_the_call_and_the_number() {
        let invite = sip(LINKTYPE_ETHERNET, &udp_frame(INVITE));
        let ok = sip(
            LINKTYPE_ETHERNET,
            &udp_frame("SIP/2.0 200 OK\r\nCall-ID: 1-42@127.0.0.1\r\nFrom: <sip:qa@h>\r\nTo: <sip:33123456789@h>;tag=x\r\n\r\n"),
        );
        assert!(ok.as_ref().unwrap().request_uri().is_none());
        let by_id = Selectors {
            call_id: Some("1-42@127.0.0.1".into()),
            number: None,
        };
        assert!(by_id.keep(invite.as_ref()) && by_id.keep(ok.as_ref()));
        let other = Selectors {
            call_id: Some("2-42@127.0.0.1".into()),
            number: None,
        };
        assert!(!other.keep(invite.as_ref()));
        let by_number = Selectors {
            call_id: None,
            number: Some("33123456789".into()),
        };
        assert!(by_number.keep(invite.as_ref()) && by_number.keep(ok.as_ref()));
        // The number in a header's host part or a tag is no match.
        let host_only = sip(
            LINKTYPE_ETHERNET,
            &udp_frame("OPTIONS sip:ping@33123456789.example SIP/2.0\r\nCall-ID: x\r\n\r\n"),
        );
        assert!(!by_number.keep(host_only.as_ref()));
        // Selectors given: what is not SIP goes; none given: everything stays.
        assert!(!by_id.keep(None));
        assert!(Selectors::default().keep(None));
    }

    #[test]
    fn what_is_not_sip_or_is_cut_short_is_nothing() {
        assert!(sip(LINKTYPE_ETHERNET, &udp_frame("GET / HTTP/1.1\r\n\r\n")).is_none());
        let f = udp_frame(INVITE);
        for n in 0..40 {
            assert!(sip(LINKTYPE_ETHERNET, &f[..n]).is_none(), "cut at {n}");
        }
        assert!(sip(999, &f).is_none());
    }

    #[test]
    fn the_file_format_is_libpcaps() {
        let h = file_header(LINKTYPE_ETHERNET, 65535);
        assert_eq!(h.len(), 24);
        assert_eq!(&h[..4], &0xa1b2_c3d4u32.to_ne_bytes());
        let r = record(1, 2, 10, b"abc");
        assert_eq!(r.len(), 19);
        assert_eq!(&r[8..12], &3u32.to_ne_bytes(), "caplen is what was kept");
        assert_eq!(
            &r[12..16],
            &10u32.to_ne_bytes(),
            "len is what was on the wire"
        );
    }
}
