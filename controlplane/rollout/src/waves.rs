//! Which wave each host belongs to.
//!
//! A percent wave takes a cumulative share of the fleet by a seed that depends on the
//! host's name only, as Bottlerocket's waves do: the first two bytes of the SHA-256 of
//! the lower-cased FQDN, big-endian, modulo 2048. So the same host is always in the same
//! wave, whoever runs the driver and however the fleet grows; adding hosts never moves
//! one from an early wave to a late one. A wave of `p` percent takes the seeds below
//! `p × 2048 / 100`; named hosts go to the wave that names them, before any percent.

use crate::model::{Members, Wave};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The number of seeds: percent waves cut `0..SEEDS`.
pub const SEEDS: u32 = 2048;

/// The host's seed, `0..2048`.
pub fn seed(fqdn: &str) -> u16 {
    let digest = Sha256::digest(fqdn.to_ascii_lowercase().as_bytes());
    (u16::from_be_bytes([digest[0], digest[1]]) as u32 % SEEDS) as u16
}

/// Whether a seed is within a cumulative share of `percent`.
pub fn within(seed: u16, percent: u8) -> bool {
    // seed < percent × 2048 / 100, without rounding: 100 % takes every seed.
    u32::from(seed) * 100 < u32::from(percent) * SEEDS
}

/// The index of the wave `fqdn` belongs to, or `None` if no wave takes it.
pub fn wave_of(waves: &[Wave], fqdn: &str) -> Option<usize> {
    let fqdn = fqdn.to_ascii_lowercase();
    let named = waves.iter().position(|w| match &w.members {
        Members::Hosts(h) => h.contains(&fqdn),
        Members::Percent(_) => false,
    });
    named.or_else(|| {
        let s = seed(&fqdn);
        waves.iter().position(|w| match w.members {
            Members::Percent(p) => within(s, p),
            Members::Hosts(_) => false,
        })
    })
}

/// Every host of `fleet` by wave index; hosts no wave takes are left out.
pub fn assign<'a>(
    waves: &[Wave],
    fleet: impl Iterator<Item = &'a str>,
) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for fqdn in fleet {
        if let Some(i) = wave_of(waves, fqdn) {
            out.entry(i).or_default().push(fqdn.to_ascii_lowercase());
        }
    }
    for hosts in out.values_mut() {
        hosts.sort();
        hosts.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(name: &str, members: Members) -> Wave {
        Wave {
            name: name.into(),
            members,
        }
    }

    #[test]
    fn the_seed_is_the_first_two_bytes_of_sha256_mod_2048() {
        // Known answers from `printf NAME | sha256sum`: 8f28… and 6996…
        assert_eq!(seed("sbc1.example.net"), 0x8f28 % 2048);
        assert_eq!(seed("sbc1.example.net"), 1832);
        assert_eq!(seed("a.example.net"), 0x6996 % 2048);
        // Stable across case, which host names ignore.
        assert_eq!(seed("SBC1.Example.NET"), 1832);
        assert!((0..500).all(|i| seed(&format!("h{i}.example.net")) < 2048));
    }

    #[test]
    fn percent_bounds_take_nothing_at_zero_and_everything_at_100() {
        assert!(within(0, 1));
        assert!(!within(21, 1)); // 1 % of 2048 is 20.48: seeds 0..=20
        assert!(within(20, 1));
        assert!(within(2047, 100));
        assert!(!within(1024, 50));
        assert!(within(1023, 50));
    }

    #[test]
    fn cumulative_shares_grow_and_named_hosts_come_first() {
        let fleet: Vec<String> = (0..1000).map(|i| format!("h{i}.example.net")).collect();
        let waves = vec![
            wave("canary", Members::Hosts(vec!["h7.example.net".into()])),
            wave("ten", Members::Percent(10)),
            wave("half", Members::Percent(50)),
            wave("rest", Members::Percent(100)),
        ];
        let by_wave = assign(&waves, fleet.iter().map(String::as_str));
        assert_eq!(by_wave[&0], ["h7.example.net"]);
        let total: usize = by_wave.values().map(Vec::len).sum();
        assert_eq!(total, 1000, "100 % takes every host exactly once");
        // Shares near what they promise (SHA-256 spreads names evenly).
        let ten = by_wave[&1].len();
        let up_to_half = ten + by_wave[&2].len();
        assert!((60..=140).contains(&ten), "{ten} hosts in the 10 % wave");
        assert!(
            (430..=570).contains(&up_to_half),
            "{up_to_half} hosts up to 50 %"
        );
        // Every host of a percent wave is within its share and outside earlier ones.
        for h in &by_wave[&2] {
            assert!(within(seed(h), 50) && !within(seed(h), 10), "{h}");
        }
        // A named host goes to its wave even if its seed would put it elsewhere.
        assert!(!by_wave[&1].contains(&"h7.example.net".to_string()));
    }

    #[test]
    fn adding_hosts_never_moves_one_between_waves() {
        let waves = vec![
            wave("a", Members::Percent(20)),
            wave("b", Members::Percent(100)),
        ];
        let small: Vec<String> = (0..50).map(|i| format!("h{i}.example.net")).collect();
        let big: Vec<String> = (0..400).map(|i| format!("h{i}.example.net")).collect();
        let before = assign(&waves, small.iter().map(String::as_str));
        let after = assign(&waves, big.iter().map(String::as_str));
        for (i, hosts) in &before {
            assert!(
                hosts.iter().all(|h| after[i].contains(h)),
                "wave {i} lost a host"
            );
        }
    }

    #[test]
    fn hosts_beyond_the_last_share_belong_to_no_wave() {
        let waves = vec![wave("a", Members::Percent(5))];
        let fleet: Vec<String> = (0..200).map(|i| format!("h{i}.example.net")).collect();
        let outside = fleet
            .iter()
            .filter(|h| wave_of(&waves, h).is_none())
            .count();
        assert!(outside > 150, "{outside}");
        let inside = assign(&waves, fleet.iter().map(String::as_str));
        assert_eq!(inside.values().map(Vec::len).sum::<usize>(), 200 - outside);
    }
}
