//! What the peer knows of the XML configuration: the sofia profiles in
//! `<conf>/sip_profiles/*.xml`, in the shape `ccnq-freeswitch`'s renderer writes.
//!
//! The peer does not model FreeSWITCH's whole XML tree (includes, pre-processing): it reads
//! only the profile files, because only a profile's name and bind decide what the ESL
//! answers model. A file that is not well-formed fails the load like a broken file fails
//! FreeSWITCH's `reloadxml`, and the last good view stays, as in FreeSWITCH.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// One profile as its XML describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileConf {
    /// `sip-ip`:`sip-port`; `None` when the values are not an address FreeSWITCH could
    /// bind (the profile is then "started" but never runs, like a bind failure).
    pub bind: Option<SocketAddr>,
    /// `context` (FreeSWITCH's default is `public`).
    pub context: String,
    /// `rtp-ip` when it is an address, else the `sip-ip`.
    pub rtp_ip: Option<IpAddr>,
    pub codecs_in: String,
    pub codecs_out: String,
}

impl ProfileConf {
    /// A profile bound at `bind` with FreeSWITCH's defaults for the rest.
    pub fn at(bind: SocketAddr) -> ProfileConf {
        ProfileConf {
            bind: Some(bind),
            context: "public".into(),
            rtp_ip: None,
            codecs_in: "PCMU,PCMA".into(),
            codecs_out: "PCMU,PCMA".into(),
        }
    }
}

/// Profile name → its configuration.
pub type Profiles = BTreeMap<String, ProfileConf>;

/// Reads every `sip_profiles/*.xml` under `conf_dir`. `Err` carries the text FreeSWITCH
/// puts between the brackets of `+OK [...]` (`[error near line N]: …`).
pub fn load(conf_dir: &Path) -> Result<Profiles, String> {
    let mut out = Profiles::new();
    let dir = conf_dir.join("sip_profiles");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        // No profile directory: FreeSWITCH loads with no profiles.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    // FreeSWITCH's glob include is sorted; so is the order profiles start in at boot.
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_into(&text, &mut out)?;
    }
    Ok(out)
}

/// Adds the `<profile>` elements of one file to `out`.
pub fn parse_into(text: &str, out: &mut Profiles) -> Result<(), String> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| format!("[error near line {}]: {e}", e.pos().row))?;
    for profile in doc.descendants().filter(|n| n.has_tag_name("profile")) {
        let Some(name) = profile.attribute("name") else {
            continue;
        };
        let param = |wanted: &str| {
            profile
                .descendants()
                .filter(|n| n.has_tag_name("param"))
                .find(|n| n.attribute("name") == Some(wanted))
                .and_then(|n| n.attribute("value"))
        };
        let ip: Option<IpAddr> = param("sip-ip").and_then(|v| v.parse().ok());
        let port: Option<u16> = param("sip-port").map_or(Some(5060), |v| v.parse().ok());
        let bind = match (ip, port) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        out.insert(
            name.to_string(),
            ProfileConf {
                bind,
                context: param("context").unwrap_or("public").to_string(),
                rtp_ip: param("rtp-ip").and_then(|v| v.parse().ok()),
                codecs_in: param("inbound-codec-prefs")
                    .unwrap_or("PCMU,PCMA")
                    .to_string(),
                codecs_out: param("outbound-codec-prefs")
                    .unwrap_or("PCMU,PCMA")
                    .to_string(),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_renderers_shape() {
        let xml = r#"<!-- Written by ccnqd -->
<include>
<profile name="v6-egress">
  <settings>
    <param name="sip-ip" value="2001:db8::11"/>
    <param name="sip-port" value="15060"/>
    <param name="rtp-ip" value="auto"/>
    <param name="context" value="v6-egress"/>
    <param name="inbound-codec-prefs" value="PCMA"/>
  </settings>
</profile>
</include>
"#;
        let mut p = Profiles::new();
        parse_into(xml, &mut p).unwrap();
        let c = &p["v6-egress"];
        assert_eq!(c.bind, Some("[2001:db8::11]:15060".parse().unwrap()));
        assert_eq!(c.context, "v6-egress");
        assert_eq!(c.rtp_ip, None);
        assert_eq!(c.codecs_in, "PCMA");
        assert_eq!(c.codecs_out, "PCMU,PCMA");
    }

    #[test]
    fn broken_xml_names_the_line() {
        let mut p = Profiles::new();
        let err = parse_into("<include>\n<profile name=\"x\">\n</include>\n", &mut p).unwrap_err();
        assert!(err.starts_with("[error near line 3]: "), "{err}");
    }

    #[test]
    fn unusable_bind_is_kept_as_none() {
        let mut p = Profiles::new();
        parse_into(
            r#"<profile name="x"><param name="sip-ip" value="$${local_ip_v4}"/></profile>"#,
            &mut p,
        )
        .unwrap();
        assert_eq!(p["x"].bind, None);
    }
}
