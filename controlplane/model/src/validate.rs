//! From a raw CouchDB document (`serde_json::Value`) to the normalized [`Host`].
//!
//! Serde's derive would stop at the first problem and reject unknown fields or silently
//! drop them; an operator wants every problem at once, each with its JSON path, and a
//! document written for a newer host must still be accepted by an older one. So the
//! document is walked by hand: each field is read, checked, reported with its path, and
//! defaulted here, in one place, so nothing downstream needs to know a default.
//!
//! Parsers return `Parsed<T>`: `Err(Reported)` means the problem is already recorded in
//! the context. Independent fields are all read before any `?`, so one bad field never
//! hides another.

use crate::checks;
use crate::error::{ValidationError, Warning};
use crate::model::*;
use crate::window::Window;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// What a valid document yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The normalized model.
    pub host: Host,
    /// Accepted oddities (unknown fields, host bits in a CIDR), with their paths.
    pub warnings: Vec<Warning>,
    /// The document's `_rev`, if it has one.
    pub rev: Option<String>,
}

/// The path and reason reported for a deleted document (`_deleted: true`).
pub const DELETED_PATH: &str = "_deleted";

/// Whether this is a deletion (`_deleted: true`, as CouchDB's `_changes` sends it).
/// A deleted host document carries no configuration: the daemon decides what to keep.
pub fn is_deleted(doc: &Value) -> bool {
    doc.get("_deleted") == Some(&Value::Bool(true))
}

/// Validate a host document for the host named `expected_fqdn` and normalize it.
///
/// Reports every problem found, each with its JSON path. A deleted document is
/// rejected with the single error `_deleted: the document is deleted` (see
/// [`is_deleted`] to tell it apart before calling).
pub fn validate(doc: &Value, expected_fqdn: &str) -> Result<Validated, Vec<ValidationError>> {
    if is_deleted(doc) {
        return Err(vec![ValidationError {
            path: DELETED_PATH.into(),
            reason: "the document is deleted".into(),
        }]);
    }
    let mut ctx = Ctx::default();
    let host = host(&mut ctx, doc, expected_fqdn);
    let rev = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
    match host {
        Ok(host) if ctx.errors.is_empty() => Ok(Validated {
            host,
            warnings: ctx.warnings,
            rev,
        }),
        _ => {
            // A parser that failed always records why; this guards the invariant.
            if ctx.errors.is_empty() {
                ctx.errors.push(ValidationError {
                    path: ROOT.into(),
                    reason: "invalid document".into(),
                });
            }
            Err(ctx.errors)
        }
    }
}

const ROOT: &str = "(document)";
const UNKNOWN_FIELD: &str = "unknown field, ignored";

/// Marker: the problem is recorded in the context already.
#[derive(Debug, Clone, Copy)]
struct Reported;
type Parsed<T> = Result<T, Reported>;

#[derive(Default)]
struct Ctx {
    errors: Vec<ValidationError>,
    warnings: Vec<Warning>,
}

impl Ctx {
    fn error(&mut self, path: &Path, reason: impl Into<String>) -> Reported {
        self.errors.push(ValidationError {
            path: path.to_string(),
            reason: reason.into(),
        });
        Reported
    }

    fn warn(&mut self, path: &Path, reason: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// Record a rule's verdict.
    fn check(&mut self, path: &Path, verdict: Result<(), String>) -> Parsed<()> {
        verdict.map_err(|why| self.error(path, why))
    }
}

/// A JSON path as operators read it: `sip_profiles.test.ingress_acl[1]`; keys that are
/// not plain identifiers are quoted, `sip_profiles["a b"]`, so the path is unambiguous.
#[derive(Debug, Clone, Default)]
struct Path(String);

impl Path {
    fn key(&self, k: &str) -> Path {
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain && self.0.is_empty() {
            Path(k.to_owned())
        } else if plain {
            Path(format!("{}.{k}", self.0))
        } else {
            let quoted = serde_json::to_string(k).unwrap_or_else(|_| format!("{k:?}"));
            Path(format!("{}[{quoted}]", self.0))
        }
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str(ROOT)
        } else {
            f.write_str(&self.0)
        }
    }
}

/// How a JSON value's type reads in an error ("got a string").
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A present, non-null field. `null` reads as absent: CouchDB documents written by
/// scripts often carry explicit nulls for "not set".
fn get<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

fn object<'a>(ctx: &mut Ctx, v: &'a Value, path: &Path) -> Parsed<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ctx.error(path, format!("expected an object, got {}", kind(other)))),
    }
}

fn unknown_fields(ctx: &mut Ctx, m: &Map<String, Value>, path: &Path, known: &[&str]) {
    for k in m.keys().filter(|k| !known.contains(&k.as_str())) {
        ctx.warn(&path.key(k), UNKNOWN_FIELD);
    }
}

fn required<'a, T>(
    ctx: &mut Ctx,
    m: &'a Map<String, Value>,
    path: &Path,
    key: &str,
    parse: impl FnOnce(&mut Ctx, &'a Value, &Path) -> Parsed<T>,
) -> Parsed<T> {
    let at = path.key(key);
    match get(m, key) {
        Some(v) => parse(ctx, v, &at),
        None => Err(ctx.error(&at, "required field is missing")),
    }
}

fn optional<'a, T>(
    ctx: &mut Ctx,
    m: &'a Map<String, Value>,
    path: &Path,
    key: &str,
    parse: impl FnOnce(&mut Ctx, &'a Value, &Path) -> Parsed<T>,
) -> Parsed<Option<T>> {
    match get(m, key) {
        Some(v) => parse(ctx, v, &path.key(key)).map(Some),
        None => Ok(None),
    }
}

fn string<'a>(ctx: &mut Ctx, v: &'a Value, path: &Path) -> Parsed<&'a str> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(ctx.error(path, format!("expected a string, got {}", kind(other)))),
    }
}

fn boolean(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(ctx.error(path, format!("expected true or false, got {}", kind(other)))),
    }
}

/// An integer within `lo..=hi`, `what` naming it in the message.
fn integer(ctx: &mut Ctx, v: &Value, path: &Path, what: &str, lo: u64, hi: u64) -> Parsed<u64> {
    let n = match v {
        Value::Number(n) => n,
        other => return Err(ctx.error(path, format!("expected an integer, got {}", kind(other)))),
    };
    match n.as_u64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(x),
        Some(_) => Err(ctx.error(path, format!("{what} {n} is out of range {lo}..={hi}"))),
        None if n.is_i64() => {
            Err(ctx.error(path, format!("{what} {n} is out of range {lo}..={hi}")))
        }
        None => Err(ctx.error(path, format!("expected an integer, got {n}"))),
    }
}

fn port(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<u16> {
    integer(ctx, v, path, "port", 1, 65535).map(|p| p as u16)
}

fn ip(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<IpAddr> {
    let s = string(ctx, v, path)?;
    checks::ip(s).map_err(|why| ctx.error(path, why))
}

fn acl(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Acl> {
    let items = match v {
        Value::Array(a) => a,
        other => {
            return Err(ctx.error(
                path,
                format!("expected a list of CIDRs, got {}", kind(other)),
            ))
        }
    };
    let mut nets = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Ok(s) = string(ctx, item, &at) else {
            ok = false;
            continue;
        };
        match checks::cidr(s) {
            Ok((net, had_host_bits)) => {
                if had_host_bits {
                    ctx.warn(
                        &at,
                        format!(
                            "{} has host bits set: it means {net}, as FreeSWITCH reads it",
                            checks::quote(s)
                        ),
                    );
                }
                nets.push(net);
            }
            Err(why) => {
                ctx.error(&at, why);
                ok = false;
            }
        }
    }
    if ok {
        Ok(Acl(nets))
    } else {
        Err(Reported)
    }
}

/// Read a `{ "<name>": value }` map whose names are checked with `checks::name`,
/// `what` naming the keys in messages.
fn named_map<'a, T>(
    ctx: &mut Ctx,
    v: &'a Value,
    path: &Path,
    what: &str,
    mut parse: impl FnMut(&mut Ctx, &str, &'a Value, &Path) -> Parsed<T>,
) -> Parsed<BTreeMap<String, T>> {
    let m = object(ctx, v, path)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in m {
        let at = path.key(k);
        let name_ok = checks::name(k)
            .map_err(|why| ctx.error(&at, format!("invalid {what} name: {why}")))
            .is_ok();
        match parse(ctx, k, v, &at) {
            Ok(t) if name_ok => {
                out.insert(k.clone(), t);
            }
            _ => ok = false,
        }
    }
    if ok {
        Ok(out)
    } else {
        Err(Reported)
    }
}

const HOST_FIELDS: &[&str] = &[
    "_id",
    "_rev",
    "type",
    "host",
    "site",
    "image",
    "server_only",
    "services",
    "interfaces",
    "sip_domain_name",
    "rtp_ip",
    "sip_variables",
    "sip_profiles",
    "traces",
];

fn host(ctx: &mut Ctx, doc: &Value, expected_fqdn: &str) -> Parsed<Host> {
    let root = Path::default();
    let m = object(ctx, doc, &root)?;
    // Other `_`-prefixed fields are CouchDB's metadata (`_attachments`, `_conflicts`…):
    // not ours to warn about.
    for k in m.keys() {
        if !k.starts_with('_') && !HOST_FIELDS.contains(&k.as_str()) {
            ctx.warn(&root.key(k), UNKNOWN_FIELD);
        }
    }

    let typ = required(ctx, m, &root, "type", string).and_then(|t| {
        if t == "host" {
            Ok(())
        } else {
            Err(ctx.error(
                &root.key("type"),
                format!("expected \"host\", got {}", checks::quote(t)),
            ))
        }
    });
    let id = required(ctx, m, &root, "_id", string);
    let fqdn = required(ctx, m, &root, "host", string).and_then(|h| {
        ctx.check(&root.key("host"), checks::hostname(h))
            .map(|()| h)
    });
    let identity = identity(ctx, &root, id, fqdn, expected_fqdn);

    let site = optional(ctx, m, &root, "site", |ctx, v, p| {
        let s = string(ctx, v, p)?;
        ctx.check(
            p,
            checks::name(s).map_err(|why| format!("invalid site name: {why}")),
        )
        .map(|()| s.to_owned())
    })
    .map(|s| s.unwrap_or_else(|| DEFAULT_SITE.to_owned()));
    let image = optional(ctx, m, &root, "image", image);
    let server_only = optional(ctx, m, &root, "server_only", boolean).map(|b| b.unwrap_or(false));
    let services = optional(ctx, m, &root, "services", services).map(Option::unwrap_or_default);
    let interfaces = optional(ctx, m, &root, "interfaces", |ctx, v, p| {
        named_map(ctx, v, p, "interface key", |ctx, _, v, p| {
            interface(ctx, v, p)
        })
    })
    .map(Option::unwrap_or_default);
    let sip_domain_name = optional(ctx, m, &root, "sip_domain_name", |ctx, v, p| {
        let s = string(ctx, v, p)?;
        let verdict = match s.parse::<IpAddr>() {
            Ok(_) => Ok(()),
            Err(_) => checks::hostname(s),
        };
        ctx.check(p, verdict).map(|()| s.to_owned())
    });
    let rtp_ip = optional(ctx, m, &root, "rtp_ip", rtp_ip).map(Option::unwrap_or_default);
    let sip_variables = optional(ctx, m, &root, "sip_variables", |ctx, v, p| {
        named_map(ctx, v, p, "variable", |ctx, _, v, p| {
            let s = string(ctx, v, p)?;
            ctx.check(p, checks::variable_value(s))
                .map(|()| s.to_owned())
        })
    })
    .map(Option::unwrap_or_default);
    let sip_profiles =
        optional(ctx, m, &root, "sip_profiles", sip_profiles).map(Option::unwrap_or_default);
    let traces = optional(ctx, m, &root, "traces", traces);

    // Required only when FreeSWITCH runs; when that cannot be told (a switch is itself
    // invalid) the switch's own error stands alone rather than guessing.
    if let (Ok(server_only), Ok(services), Ok(None)) = (&server_only, &services, &sip_domain_name) {
        if !server_only && services.freeswitch.enabled {
            ctx.error(
                &root.key("sip_domain_name"),
                "required when FreeSWITCH runs (server_only is false and services.freeswitch.enabled is not false)",
            );
        }
    }

    typ?;
    identity?;
    Ok(Host {
        host: fqdn?.to_owned(),
        site: site?,
        image: image?,
        server_only: server_only?,
        services: services?,
        interfaces: interfaces?,
        sip_domain_name: sip_domain_name?,
        rtp_ip: rtp_ip?,
        sip_variables: sip_variables?,
        sip_profiles: sip_profiles?,
        traces: traces?,
    })
}

/// `_id` must be `host:<host>` and `host` must be the name this host knows itself by.
fn identity(
    ctx: &mut Ctx,
    root: &Path,
    id: Parsed<&str>,
    fqdn: Parsed<&str>,
    expected_fqdn: &str,
) -> Parsed<()> {
    let mut ok = id.is_ok() && fqdn.is_ok();
    let id_fqdn = match id {
        Ok(id) => match id.strip_prefix("host:") {
            Some(rest) => Some(rest),
            None => {
                ctx.error(
                    &root.key("_id"),
                    format!("expected \"host:<fqdn>\", got {}", checks::quote(id)),
                );
                ok = false;
                None
            }
        },
        Err(_) => None,
    };
    if let Ok(fqdn) = fqdn {
        if let Some(id_fqdn) = id_fqdn {
            if id_fqdn != fqdn {
                ctx.error(
                    &root.key("host"),
                    format!(
                        "{} disagrees with _id {}",
                        checks::quote(fqdn),
                        checks::quote(&format!("host:{id_fqdn}"))
                    ),
                );
                ok = false;
            }
        }
        // Host names are case-insensitive; gethostname() and operators may differ in case.
        if !fqdn.eq_ignore_ascii_case(expected_fqdn) {
            ctx.error(
                &root.key("host"),
                format!(
                    "{} is not this host, which is {}",
                    checks::quote(fqdn),
                    checks::quote(expected_fqdn)
                ),
            );
            ok = false;
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Reported)
    }
}

fn image(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<ImageSpec> {
    let m = object(ctx, v, path)?;
    unknown_fields(ctx, m, path, &["version", "hold", "window"]);
    let version = required(ctx, m, path, "version", |ctx, v, p| {
        let s = string(ctx, v, p)?;
        ctx.check(p, checks::version(s)).map(|()| s.to_owned())
    });
    let hold = optional(ctx, m, path, "hold", boolean).map(|h| h.unwrap_or(false));
    let window = optional(ctx, m, path, "window", window);
    Ok(ImageSpec {
        version: version?,
        hold: hold?,
        window: window?,
    })
}

fn window(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Window> {
    let m = object(ctx, v, path)?;
    unknown_fields(ctx, m, path, &["start", "end", "days"]);
    let time = |ctx: &mut Ctx, v: &Value, p: &Path| -> Parsed<u16> {
        let s = string(ctx, v, p)?;
        crate::window::parse_time(s).map_err(|e| ctx.error(p, e))
    };
    let start = required(ctx, m, path, "start", time);
    let end = required(ctx, m, path, "end", time);
    let days = optional(ctx, m, path, "days", |ctx, v, p| {
        let Value::Array(items) = v else {
            return Err(ctx.error(p, format!("expected an array of days, got {}", kind(v))));
        };
        if items.is_empty() {
            return Err(ctx.error(
                p,
                "empty: the window would never open (leave days out for every day)",
            ));
        }
        let mut on = [false; 7];
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let at = p.index(i);
            match string(ctx, item, &at)
                .and_then(|s| crate::window::parse_day(s).map_err(|e| ctx.error(&at, e)))
            {
                Ok(d) => on[d] = true,
                Err(_) => ok = false,
            }
        }
        if ok {
            Ok(on)
        } else {
            Err(Reported)
        }
    });
    Ok(Window {
        start: start?,
        end: end?,
        days: days?.unwrap_or([true; 7]),
    })
}

fn services(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Services> {
    let m = object(ctx, v, path)?;
    let mut out = Services::default();
    let mut ok = true;
    for (name, v) in m {
        let at = path.key(name);
        let slot = match name.as_str() {
            "freeswitch" => &mut out.freeswitch,
            "couchdb" => &mut out.couchdb,
            _ => {
                ctx.warn(&at, "unknown service, ignored");
                continue;
            }
        };
        let parsed = object(ctx, v, &at).and_then(|sm| {
            unknown_fields(ctx, sm, &at, &["enabled"]);
            optional(ctx, sm, &at, "enabled", boolean)
        });
        match parsed {
            Ok(enabled) => slot.enabled = enabled.unwrap_or(true),
            Err(_) => ok = false,
        }
    }
    if ok {
        Ok(out)
    } else {
        Err(Reported)
    }
}

fn interface(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Interface> {
    let m = object(ctx, v, path)?;
    unknown_fields(ctx, m, path, &["ipv4", "ipv6"]);
    let ipv4 = optional(ctx, m, path, "ipv4", |ctx, v, p| match ip(ctx, v, p)? {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(ctx.error(p, format!("expected an IPv4 address, got {a}"))),
    });
    let ipv6 = optional(ctx, m, path, "ipv6", |ctx, v, p| match ip(ctx, v, p)? {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(a) => Err(ctx.error(p, format!("expected an IPv6 address, got {a}"))),
    });
    Ok(Interface {
        ipv4: ipv4?,
        ipv6: ipv6?,
    })
}

fn rtp_ip(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<RtpIp> {
    let s = string(ctx, v, path)?;
    if s == "auto" {
        return Ok(RtpIp::Auto);
    }
    s.parse().map(RtpIp::Ip).map_err(|_| {
        ctx.error(
            path,
            format!(
                "expected \"auto\" or an IP address, got {}",
                checks::quote(s)
            ),
        )
    })
}

fn traces(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Traces> {
    let m = object(ctx, v, path)?;
    unknown_fields(
        ctx,
        m,
        path,
        &["interfaces", "filesize", "ringsize", "filter"],
    );
    let interfaces = required(ctx, m, path, "interfaces", |ctx, v, p| {
        let items = match v {
            Value::Array(a) if a.is_empty() => {
                return Err(ctx.error(p, "no interface: name at least one (\"any\" for all)"))
            }
            Value::Array(a) => a,
            other => {
                return Err(ctx.error(
                    p,
                    format!("expected a list of interface names, got {}", kind(other)),
                ))
            }
        };
        let mut names = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let at = p.index(i);
            match string(ctx, item, &at)
                .and_then(|s| ctx.check(&at, checks::interface_name(s)).map(|()| s))
            {
                Ok(s) => names.push(s.to_owned()),
                Err(_) => ok = false,
            }
        }
        if ok {
            Ok(names)
        } else {
            Err(Reported)
        }
    });
    let filesize = required(ctx, m, path, "filesize", |ctx, v, p| {
        integer(ctx, v, p, "filesize", 1, u64::from(u32::MAX)).map(|n| n as u32)
    });
    let ringsize = required(ctx, m, path, "ringsize", |ctx, v, p| {
        integer(ctx, v, p, "ringsize", 1, u64::from(u32::MAX)).map(|n| n as u32)
    });
    let filter = optional(ctx, m, path, "filter", |ctx, v, p| {
        let s = string(ctx, v, p)?;
        ctx.check(p, checks::capture_filter(s))
            .map(|()| s.to_owned())
    });
    Ok(Traces {
        interfaces: interfaces?,
        filesize: filesize?,
        ringsize: ringsize?,
        filter: filter?,
    })
}

/// One address a sofia profile will bind, known even when other fields of its entry are
/// invalid, so that conflicts are still reported.
struct Bind {
    entry: String,
    side: Side,
    addr: SocketAddr,
    port_defaulted: bool,
}

fn sip_profiles(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<BTreeMap<String, SipProfile>> {
    let mut binds = Vec::new();
    let profiles = named_map(ctx, v, path, "profile", |ctx, entry, v, p| {
        sip_profile(ctx, entry, v, p, &mut binds)
    });

    // Profile names become file names and FreeSWITCH hash keys, which are not reliably
    // case-sensitive: two names that differ only in case are one too many.
    if let Value::Object(m) = v {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for k in m.keys() {
            if let Some(first) = seen.insert(k.to_ascii_lowercase(), k) {
                ctx.error(
                    &path.key(k),
                    format!(
                        "profile name {} differs from {} only in case",
                        checks::quote(k),
                        checks::quote(first)
                    ),
                );
            }
        }
    }

    let mut bound: BTreeMap<SocketAddr, String> = BTreeMap::new();
    let mut conflicts = false;
    for b in &binds {
        let this = format!("{}-{}", b.entry, b.side.as_str());
        match bound.get(&b.addr) {
            Some(other) => {
                let how = if b.port_defaulted {
                    " (egress_sip_port defaults to ingress_sip_port + 10000)"
                } else {
                    ""
                };
                ctx.error(
                    &path
                        .key(&b.entry)
                        .key(&format!("{}_sip_port", b.side.as_str())),
                    format!(
                        "{this} would bind {}, already bound by {other}{how}",
                        b.addr
                    ),
                );
                conflicts = true;
            }
            None => {
                bound.insert(b.addr, this);
            }
        }
    }
    let profiles = profiles?;
    if conflicts {
        Err(Reported)
    } else {
        Ok(profiles)
    }
}

const PROFILE_FIELDS: &[&str] = &[
    "ingress_sip_ip",
    "ingress_sip_port",
    "ingress_acl",
    "egress_sip_ip",
    "egress_sip_port",
    "egress_acl",
    "handler",
    "inbound_codec",
    "outbound_codec",
    "inbound_codec_negotiation",
    "timer_t1",
    "timer_t2",
    "timer_t4",
    "sip_trace",
    "disabled",
];

/// Timers above an hour are typos, and the bound keeps T1×64 far from overflow.
const TIMER_MAX_MS: u64 = 3_600_000;

fn sip_profile(
    ctx: &mut Ctx,
    entry: &str,
    v: &Value,
    path: &Path,
    binds: &mut Vec<Bind>,
) -> Parsed<SipProfile> {
    let m = object(ctx, v, path)?;
    unknown_fields(ctx, m, path, PROFILE_FIELDS);

    let ingress_ip = required(ctx, m, path, "ingress_sip_ip", ip);
    let ingress_port = required(ctx, m, path, "ingress_sip_port", port);
    let ingress_acl = optional(ctx, m, path, "ingress_acl", acl).map(Option::unwrap_or_default);
    let egress_ip = optional(ctx, m, path, "egress_sip_ip", ip);
    let egress_port = optional(ctx, m, path, "egress_sip_port", port);
    let egress_acl = optional(ctx, m, path, "egress_acl", acl).map(Option::unwrap_or_default);
    let handler = optional(ctx, m, path, "handler", handler).map(Option::unwrap_or_default);
    let codec = |ctx: &mut Ctx, v: &Value, p: &Path| -> Parsed<String> {
        let s = string(ctx, v, p)?;
        ctx.check(p, checks::codecs(s)).map(|()| s.to_owned())
    };
    let inbound_codec = optional(ctx, m, path, "inbound_codec", codec)
        .map(|c| c.unwrap_or_else(|| DEFAULT_CODEC.to_owned()));
    let outbound_codec = optional(ctx, m, path, "outbound_codec", codec)
        .map(|c| c.unwrap_or_else(|| DEFAULT_CODEC.to_owned()));
    let negotiation = optional(ctx, m, path, "inbound_codec_negotiation", negotiation)
        .map(Option::unwrap_or_default);
    let timer = |ctx: &mut Ctx, v: &Value, p: &Path| -> Parsed<u32> {
        integer(ctx, v, p, "timer", 1, TIMER_MAX_MS).map(|n| n as u32)
    };
    let t1 = optional(ctx, m, path, "timer_t1", timer).map(|t| t.unwrap_or(DEFAULT_TIMER_T1));
    let t2 = optional(ctx, m, path, "timer_t2", timer).map(|t| t.unwrap_or(DEFAULT_TIMER_T2));
    let t4 = optional(ctx, m, path, "timer_t4", timer).map(|t| t.unwrap_or(DEFAULT_TIMER_T4));
    let sip_trace = optional(ctx, m, path, "sip_trace", boolean).map(|b| b.unwrap_or(false));
    let disabled = optional(ctx, m, path, "disabled", boolean).map(|b| b.unwrap_or(false));

    // Defaults that depend on other fields: only computed from valid inputs, so an
    // invalid ingress value is reported once, at its own path.
    let egress_ip = match (egress_ip, ingress_ip) {
        (Ok(Some(ip)), _) => Ok(ip),
        (Ok(None), Ok(ip)) => Ok(ip),
        _ => Err(Reported),
    };
    let egress_port_defaulted = matches!(egress_port, Ok(None));
    let egress_port = match (egress_port, ingress_port) {
        (Ok(Some(p)), _) => Ok(p),
        (Ok(None), Ok(p)) => {
            let d = u32::from(p) + u32::from(EGRESS_PORT_OFFSET);
            u16::try_from(d).map_err(|_| {
                ctx.error(
                    &path.key("egress_sip_port"),
                    format!(
                        "the default egress port, ingress_sip_port + 10000 = {d}, is out of range 1..=65535: set egress_sip_port"
                    ),
                )
            })
        }
        _ => Err(Reported),
    };

    // A disabled profile binds nothing; one whose `disabled` is invalid is not guessed at.
    if let Ok(false) = disabled {
        if let (Ok(ip), Ok(port)) = (&ingress_ip, &ingress_port) {
            binds.push(Bind {
                entry: entry.to_owned(),
                side: Side::Ingress,
                addr: SocketAddr::new(*ip, *port),
                port_defaulted: false,
            });
        }
        if let (Ok(ip), Ok(port)) = (&egress_ip, &egress_port) {
            binds.push(Bind {
                entry: entry.to_owned(),
                side: Side::Egress,
                addr: SocketAddr::new(*ip, *port),
                port_defaulted: egress_port_defaulted,
            });
        }
    }

    Ok(SipProfile {
        ingress_sip_ip: ingress_ip?,
        ingress_sip_port: ingress_port?,
        ingress_acl: ingress_acl?,
        egress_sip_ip: egress_ip?,
        egress_sip_port: egress_port?,
        egress_acl: egress_acl?,
        handler: handler?,
        inbound_codec: inbound_codec?,
        outbound_codec: outbound_codec?,
        inbound_codec_negotiation: negotiation?,
        timer_t1: t1?,
        timer_t2: t2?,
        timer_t4: t4?,
        sip_trace: sip_trace?,
        disabled: disabled?,
    })
}

fn negotiation(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<CodecNegotiation> {
    match string(ctx, v, path)? {
        "generous" => Ok(CodecNegotiation::Generous),
        "greedy" => Ok(CodecNegotiation::Greedy),
        "scrooge" => Ok(CodecNegotiation::Scrooge),
        other => Err(ctx.error(
            path,
            format!(
                "expected \"generous\", \"greedy\" or \"scrooge\", got {}",
                checks::quote(other)
            ),
        )),
    }
}

const HANDLER_FORMS: &str = "expected {\"socket\": \"host:port\"} or {\"context\": \"name\"}";

fn handler(ctx: &mut Ctx, v: &Value, path: &Path) -> Parsed<Handler> {
    let Value::Object(m) = v else {
        return Err(ctx.error(
            path,
            format!("unknown handler form: {HANDLER_FORMS}, got {}", kind(v)),
        ));
    };
    match (get(m, "socket"), get(m, "context")) {
        (Some(_), Some(_)) => Err(ctx.error(
            path,
            "both socket and context given: a handler is one or the other",
        )),
        (None, None) => {
            let keys: Vec<String> = m.keys().map(|k| checks::quote(k)).collect();
            Err(ctx.error(
                path,
                format!(
                    "unknown handler form: {HANDLER_FORMS}, got an object with {}",
                    if keys.is_empty() {
                        "no field".to_owned()
                    } else {
                        format!("fields {}", keys.join(", "))
                    }
                ),
            ))
        }
        (Some(socket), None) => {
            unknown_fields(ctx, m, path, &["socket"]);
            let at = path.key("socket");
            let s = string(ctx, socket, &at)?;
            let (host, port) = checks::socket(s).map_err(|why| ctx.error(&at, why))?;
            Ok(Handler::Socket { host, port })
        }
        (None, Some(context)) => {
            unknown_fields(ctx, m, path, &["context"]);
            let at = path.key("context");
            let s = string(ctx, context, &at)?;
            ctx.check(
                &at,
                checks::name(s).map_err(|why| format!("invalid context name: {why}")),
            )?;
            Ok(Handler::Context(s.to_owned()))
        }
    }
}
