//! Packet capture on demand (`POST /v1/capture`): libpcap (through the `pcap` crate)
//! on one interface, with a BPF filter and SIP selectors (a Call-ID, or a number in the
//! Request-URI, From or To), streamed to the caller as a pcap file while it runs, so
//! `ccnqctl capture -f 'udp port 5060' -w - | tshark -r -` works.
//!
//! Bounded every way: each capture has a duration, a packet and a byte limit (defaults
//! and ceilings in [`Request`]); an operator runs one at a time and the host at most
//! [`MAX_AT_ONCE`]; none starts when the data volume is low (a capture is streamed, not
//! stored, but the host that is short of disk is short of everything). The packets go
//! through a bounded channel, so a slow client slows the capture, not the daemon's
//! memory, and the capture ends when the client goes.
//!
//! The decoding is [`packet`]'s (pure); this module opens the capture and runs it.

pub mod packet;

use bytes::Bytes;
use packet::Selectors;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Captures running at once on this host.
pub const MAX_AT_ONCE: usize = 4;
/// Bytes kept of each packet.
pub const SNAPLEN: u32 = 65535;
/// How long an idle capture sleeps before it looks again.
const IDLE: Duration = Duration::from_millis(10);
/// Below this much free space on the data volume, no capture starts.
pub const MIN_FREE_BYTES: u64 = 256 << 20;

/// What the caller asks (the body of `POST /v1/capture`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The interface (`eth0`, `lo`; `any`: every one). Default `any`.
    #[serde(default = "any")]
    pub interface: String,
    /// A BPF filter (tcpdump's syntax), e.g. `udp port 5060`.
    pub filter: Option<String>,
    /// Only the SIP messages of this Call-ID.
    pub call_id: Option<String>,
    /// Only the SIP messages with this number in the Request-URI, From or To.
    pub number: Option<String>,
    /// Seconds, 1 to 3600; default 60.
    #[serde(default = "sixty")]
    pub duration_secs: u64,
    /// Packets kept, 1 to 1,000,000; default 10,000.
    #[serde(default = "ten_thousand")]
    pub packets: u64,
    /// Bytes streamed, 1 KiB to 1 GiB; default 100 MiB.
    #[serde(default = "hundred_mib")]
    pub bytes: u64,
}

fn any() -> String {
    "any".into()
}
fn sixty() -> u64 {
    60
}
fn ten_thousand() -> u64 {
    10_000
}
fn hundred_mib() -> u64 {
    100 << 20
}

impl Request {
    /// Each limit within its bounds, and the texts sane; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.interface.is_empty()
            && self.interface.len() <= 15
            && self
                .interface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(format!(
                "interface: {:?} is not an interface name",
                self.interface
            ));
        }
        if !(1..=3600).contains(&self.duration_secs) {
            return Err("duration_secs: 1 to 3600".into());
        }
        if !(1..=1_000_000).contains(&self.packets) {
            return Err("packets: 1 to 1000000".into());
        }
        if !(1024..=1 << 30).contains(&self.bytes) {
            return Err("bytes: 1024 to 1073741824".into());
        }
        for (field, v) in [
            ("filter", &self.filter),
            ("call_id", &self.call_id),
            ("number", &self.number),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() || v.len() > 1024 {
                    return Err(format!("{field}: 1 to 1024 characters"));
                }
            }
        }
        Ok(())
    }

    fn selectors(&self) -> Selectors {
        Selectors {
            call_id: self.call_id.clone(),
            number: self.number.clone(),
        }
    }
}

/// Why a capture did not start.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0} already runs a capture: one at a time")]
    Busy(String),
    #[error("{MAX_AT_ONCE} captures run already: the most at once")]
    Full,
    #[error("the data volume has {0} bytes free: no capture below {MIN_FREE_BYTES}")]
    LowDisk(u64),
    /// libpcap refused the interface or the filter (the field named).
    #[error("{0}")]
    Bad(String),
    #[error("cannot capture: {0}")]
    Failed(String),
}

/// The captures running, by who runs them.
#[derive(Default)]
pub struct Captures {
    running: Mutex<HashSet<String>>,
}

/// Held while a capture runs: dropping it frees its place.
pub struct Slot {
    captures: Arc<Captures>,
    who: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.captures
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.who);
    }
}

impl Captures {
    /// A place for `who`'s capture, or why not.
    pub fn take(self: &Arc<Self>, who: &str, free_bytes: u64) -> Result<Slot, Refused> {
        if free_bytes < MIN_FREE_BYTES {
            return Err(Refused::LowDisk(free_bytes));
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains(who) {
            return Err(Refused::Busy(who.to_owned()));
        }
        if running.len() >= MAX_AT_ONCE {
            return Err(Refused::Full);
        }
        running.insert(who.to_owned());
        Ok(Slot {
            captures: self.clone(),
            who: who.to_owned(),
        })
    }
}

/// Opens the capture and, once it runs, streams it: the file header, then each packet
/// kept. Resolves once libpcap opened it (or refused); the stream ends at a limit or
/// when the receiver is dropped. `slot` is held until then.
pub async fn start(req: Request, slot: Slot) -> Result<mpsc::Receiver<Bytes>, Refused> {
    let (tx, rx) = mpsc::channel(64);
    let (ready_tx, ready_rx) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        run(req, tx, ready_tx);
    });
    match ready_rx.await {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Refused::Failed("the capture thread ended".into())),
    }
}

fn open(req: &Request) -> Result<pcap::Capture<pcap::Active>, Refused> {
    let inactive = pcap::Capture::from_device(req.interface.as_str())
        .map_err(|e| Refused::Bad(format!("interface: {}: {e}", req.interface)))?;
    let mut cap = inactive
        .promisc(false)
        .snaplen(SNAPLEN as i32)
        .immediate_mode(true)
        .open()
        .map_err(|e| match e {
            pcap::Error::PcapError(ref m) if m.contains("No such device") => {
                Refused::Bad(format!("interface: {}: {m}", req.interface))
            }
            other => Refused::Failed(format!("{}: {other}", req.interface)),
        })?;
    // Selectors read SIP, which travels over UDP and TCP: without a filter, only those.
    let filter = match (&req.filter, req.selectors().any()) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some("udp or tcp".to_owned()),
        (None, false) => None,
    };
    if let Some(f) = &filter {
        cap.filter(f, true)
            .map_err(|e| Refused::Bad(format!("filter: {f:?}: {e}")))?;
    }
    // Non-blocking: in immediate mode Linux's libpcap waits for a packet however long
    // it takes, and a capture that sees none must still end at its deadline.
    cap.setnonblock()
        .map_err(|e| Refused::Failed(format!("{}: {e}", req.interface)))
}

fn run(req: Request, tx: mpsc::Sender<Bytes>, ready: oneshot::Sender<Result<(), Refused>>) {
    let mut cap = match open(&req) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let linktype = cap.get_datalink().0;
    let _ = ready.send(Ok(()));
    if tx
        .blocking_send(Bytes::from(packet::file_header(linktype, SNAPLEN)))
        .is_err()
    {
        return;
    }
    let selectors = req.selectors();
    let deadline = Instant::now() + Duration::from_secs(req.duration_secs);
    let (mut packets, mut bytes) = (0u64, 24u64);
    while Instant::now() < deadline && packets < req.packets && !tx.is_closed() {
        let p = match cap.next_packet() {
            Ok(p) => p,
            // Nothing waiting: the kernel's ring keeps what comes meanwhile.
            Err(pcap::Error::TimeoutExpired) => {
                std::thread::sleep(IDLE);
                continue;
            }
            Err(e) => {
                log::warn!("capture on {}: {e}", req.interface);
                return;
            }
        };
        let sip = packet::sip(linktype, p.data);
        if !selectors.keep(sip.as_ref()) {
            continue;
        }
        let rec = packet::record(
            p.header.ts.tv_sec as u32,
            p.header.ts.tv_usec as u32,
            p.header.len,
            p.data,
        );
        if bytes + rec.len() as u64 > req.bytes {
            return;
        }
        bytes += rec.len() as u64;
        packets += 1;
        if tx.blocking_send(Bytes::from(rec)).is_err() {
            return; // the client went
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Result<Request, String> {
        let r: Request = serde_json::from_str(body).map_err(|e| e.to_string())?;
        r.check().map(|_| r)
    }

    #[test]
    fn requests_have_defaults_and_bounds() {
        let r = request("{}").unwrap();
        assert_eq!(
            (r.interface.as_str(), r.duration_secs, r.packets),
            ("any", 60, 10_000)
        );
        for (body, says) in [
            (r#"{"duration_secs": 0}"#, "duration_secs"),
            (r#"{"duration_secs": 3601}"#, "duration_secs"),
            (r#"{"packets": 0}"#, "packets"),
            (r#"{"bytes": 10}"#, "bytes"),
            (r#"{"interface": "eth0; rm"}"#, "interface"),
            (r#"{"call_id": " "}"#, "call_id"),
            (r#"{"snaplen": 5}"#, "snaplen"),
        ] {
            let e = request(body).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn one_capture_per_operator_and_a_few_at_once() {
        let c = Arc::new(Captures::default());
        let a = c.take("alice", u64::MAX).unwrap();
        assert!(matches!(c.take("alice", u64::MAX), Err(Refused::Busy(_))));
        let others: Vec<Slot> = (1..MAX_AT_ONCE)
            .map(|i| c.take(&format!("op{i}"), u64::MAX).unwrap())
            .collect();
        assert!(matches!(c.take("bob", u64::MAX), Err(Refused::Full)));
        drop(a);
        let _b = c.take("bob", u64::MAX).unwrap();
        assert!(matches!(c.take("carol", 1 << 20), Err(Refused::LowDisk(_))));
        drop(others);
    }
}
