//! The path-attribute keys a network or NIC may set (`bgp.communities`,
//! `bgp.large_communities`, `bgp.med`, `bgp.as_path_prepend`): hostbgp's own keys,
//! named in LXD's style. Each value is checked on its own here; the planner adds a
//! NIC's to its network's.
use crate::bgp::wire::community;
use crate::bgp::wire::ExtraAttrs;

use super::values;

pub(super) const ATTR_KEYS: &[&str] = &[
    "bgp.communities",
    "bgp.large_communities",
    "bgp.med",
    "bgp.as_path_prepend",
];

/// Bounds that keep the shared attribute block of an UPDATE (network's and NIC's
/// lists together) far below the 4096-byte message.
const MAX_COMMUNITIES: usize = 64;
const MAX_LARGE_COMMUNITIES: usize = 32;
const MAX_PREPEND: u8 = 10;

/// The well-known communities of RFC 1997 and RFC 8326, by the names operators use.
const WELL_KNOWN: &[(&str, u32)] = &[
    ("no-export", community::NO_EXPORT),
    ("no-advertise", community::NO_ADVERTISE),
    ("no-export-subconfed", community::NO_EXPORT_SUBCONFED),
    ("graceful-shutdown", community::GRACEFUL_SHUTDOWN),
];

/// Sets the attribute `key` (one of [`ATTR_KEYS`]) from `value`.
pub(super) fn apply(attrs: &mut ExtraAttrs, key: &str, value: &str) -> Result<(), String> {
    match key {
        "bgp.communities" => attrs.communities = parse_communities(value)?,
        "bgp.large_communities" => attrs.large_communities = parse_large_communities(value)?,
        "bgp.med" => attrs.med = Some(values::parse_u32(value, 0, u32::MAX)?),
        _ => {
            let n = values::parse_u16(value, 0, MAX_PREPEND.into())?;
            attrs.as_path_prepend = u8::try_from(n).unwrap_or(MAX_PREPEND);
        }
    }
    Ok(())
}

/// Space-separated `ASN:VALUE` (16 bits each) or well-known names; sorted, deduplicated.
pub(super) fn parse_communities(value: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for word in value.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        if let Some((_, c)) = WELL_KNOWN.iter().find(|(name, _)| *name == lower) {
            out.push(*c);
            continue;
        }
        let halves = word.split_once(':').and_then(|(a, v)| {
            let a = a.parse::<u16>().ok()?;
            let v = v.parse::<u16>().ok()?;
            Some(u32::from(a) << 16 | u32::from(v))
        });
        match halves {
            Some(c) => out.push(c),
            None => {
                return Err(format!(
                    "{word:?} is not a community: ASN:VALUE with both at most 65535, or \
                     no-export, no-advertise, no-export-subconfed, graceful-shutdown"
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_COMMUNITIES {
        return Err(format!("at most {MAX_COMMUNITIES} communities"));
    }
    Ok(out)
}

/// Space-separated `GLOBAL:LOCAL1:LOCAL2` (32 bits each); sorted, deduplicated.
pub(super) fn parse_large_communities(value: &str) -> Result<Vec<[u32; 3]>, String> {
    let mut out = Vec::new();
    for word in value.split_whitespace() {
        let parts: Vec<Option<u32>> = word.split(':').map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [Some(a), Some(b), Some(c)] => out.push([*a, *b, *c]),
            _ => {
                return Err(format!(
                    "{word:?} is not a large community: A:B:C with each at most 4294967295"
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_LARGE_COMMUNITIES {
        return Err(format!("at most {MAX_LARGE_COMMUNITIES} large communities"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities() {
        assert_eq!(
            parse_communities(" 65010:100  no-export 0:0 65535:65535 65010:100 "),
            Ok(vec![0, 0xfdf2_0064, 0xffff_ff01, 0xffff_ffff])
        );
        assert_eq!(
            parse_communities("graceful-shutdown No-Advertise no-export-subconfed"),
            Ok(vec![0xffff_0000, 0xffff_ff02, 0xffff_ff03])
        );
        assert_eq!(parse_communities(""), Ok(vec![]));
        for bad in [
            "65536:1",
            "1:65536",
            "1",
            "1:2:3",
            "a:b",
            "-1:2",
            "blackhole",
            "1,2",
        ] {
            assert!(parse_communities(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("1:{i}")).collect();
        assert!(parse_communities(&many.join(" ")).is_err());
    }

    #[test]
    fn large_communities() {
        assert_eq!(
            parse_large_communities("65010:1:2 4200000000:0:4294967295 65010:1:2"),
            Ok(vec![[65010, 1, 2], [4_200_000_000, 0, u32::MAX]])
        );
        for bad in ["1:2", "1:2:3:4", "4294967296:0:0", "a:1:2", "1::2"] {
            assert!(parse_large_communities(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn med_and_prepend() {
        let mut a = ExtraAttrs::default();
        assert_eq!(apply(&mut a, "bgp.med", "4294967295"), Ok(()));
        assert_eq!(apply(&mut a, "bgp.as_path_prepend", "10"), Ok(()));
        assert_eq!((a.med, a.as_path_prepend), (Some(u32::MAX), 10));
        assert!(apply(&mut a, "bgp.med", "4294967296").is_err());
        assert!(apply(&mut a, "bgp.med", "-1").is_err());
        assert!(apply(&mut a, "bgp.as_path_prepend", "11").is_err());
    }

    const FILE: &str = "networks:
  br0:
    type: bridge
    config:
      bgp.communities: 65010:100 no-export
      bgp.large_communities: 65010:1:2
      bgp.med: \"50\"
      bgp.as_path_prepend: \"2\"
  ovn1:
    type: ovn
    config: {network: br0, bgp.med: \"7\"}
instances:
  c1:
    devices:
      eth0:
        type: nic
        network: br0
        bgp.communities: 65010:200
        bgp.med: \"60\"
";

    #[test]
    fn network_and_nic_keys_are_read() {
        let c = crate::config::parse_str(FILE, "node1").expect("valid");
        let net = &c.networks["br0"].attrs;
        assert_eq!(net.communities, vec![0xfdf2_0064, 0xffff_ff01]);
        assert_eq!(net.large_communities, vec![[65010, 1, 2]]);
        assert_eq!((net.med, net.as_path_prepend), (Some(50), 2));
        assert_eq!(c.networks["ovn1"].attrs.med, Some(7));
        let nic = &c.instances["c1"].nics["eth0"].attrs;
        assert_eq!(
            (nic.communities.clone(), nic.med),
            (vec![0xfdf2_00c8], Some(60))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let bad = FILE
            .replace("65010:100 no-export", "65010:100 no-exprot")
            .replace("65010:1:2", "65010:1")
            .replace("\"50\"", "\"-5\"")
            .replace("\"2\"", "\"11\"")
            .replace("65010:200", "70000:1");
        let Err(errors) = crate::config::parse_str(&bad, "node1") else {
            panic!("accepted {bad}");
        };
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "instances.c1.devices.eth0.bgp.communities",
                "networks.br0.config.bgp.as_path_prepend",
                "networks.br0.config.bgp.communities",
                "networks.br0.config.bgp.large_communities",
                "networks.br0.config.bgp.med",
            ]
        );
        assert!(
            errors[2].message.contains("no-exprot"),
            "{}",
            errors[2].message
        );
    }
}
