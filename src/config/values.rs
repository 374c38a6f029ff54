//! Parsers for single LXD config values. Each returns a specific message on error.
//! None of them ever formats a password.
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use super::DEFAULT_BGP_PORT;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fam {
    V4,
    V6,
}

impl Fam {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fam::V4 => "IPv4",
            Fam::V6 => "IPv6",
        }
    }
    pub(crate) fn key(self) -> &'static str {
        match self {
            Fam::V4 => "ipv4",
            Fam::V6 => "ipv6",
        }
    }
    pub(crate) fn of_addr(a: &IpAddr) -> Fam {
        if a.is_ipv4() {
            Fam::V4
        } else {
            Fam::V6
        }
    }
    pub(crate) fn of_net(n: &IpNet) -> Fam {
        match n {
            IpNet::V4(_) => Fam::V4,
            IpNet::V6(_) => Fam::V6,
        }
    }
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected a boolean (true or false), got {s:?}")),
    }
}

/// `bgp.peers.NAME.export`.
pub(crate) fn parse_export(s: &str) -> Result<super::Export, String> {
    match s.trim() {
        "all" => Ok(super::Export::All),
        "network" => Ok(super::Export::Network),
        _ => Err(format!(
            "{s:?} is not an export scope: \"all\" (every prefix, the default) or \"network\" (the declaring networks' prefixes)"
        )),
    }
}

pub(crate) fn parse_int(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: i128 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected an integer between {min} and {max}, got {s:?}"))?;
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("must be between {min} and {max}, got {n}"));
    }
    u64::try_from(n).map_err(|_| format!("must be between {min} and {max}, got {n}"))
}

pub(crate) fn parse_asn(s: &str) -> Result<u32, String> {
    let n = parse_int(s, 1, 4_294_967_294)?;
    u32::try_from(n).map_err(|_| format!("must be between 1 and 4294967294, got {n}"))
}

pub(crate) fn parse_u16(s: &str, min: u16, max: u16) -> Result<u16, String> {
    let n = parse_int(s, min.into(), max.into())?;
    u16::try_from(n).map_err(|_| format!("must be between {min} and {max}, got {n}"))
}

pub(crate) fn parse_u32(s: &str, min: u32, max: u32) -> Result<u32, String> {
    let n = parse_int(s, min.into(), max.into())?;
    u32::try_from(n).map_err(|_| format!("must be between {min} and {max}, got {n}"))
}

/// An `IP:PORT` (IPv6 in brackets), the port required.
pub(crate) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    t.parse::<SocketAddr>().map_err(|_| {
        let hint = if t.parse::<IpAddr>().is_ok() {
            ": the port is missing"
        } else if t.matches(':').count() > 1 && !t.starts_with('[') {
            ": write an IPv6 address in brackets, [::1]:9179"
        } else {
            ""
        };
        format!("expected IP:PORT such as 127.0.0.1:9179 or [::1]:9179, got {s}{hint}")
    })
}

/// Any IP address, no port.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(a);
    }
    if t.parse::<SocketAddr>().is_ok() {
        return Err(format!("expected an IP address without port, got {s}"));
    }
    Err(format!("expected an IPv4 or IPv6 address, got {s}"))
}

/// An address of the given family.
pub(crate) fn parse_addr(s: &str, fam: Fam) -> Result<IpAddr, String> {
    match s.trim().parse::<IpAddr>() {
        Ok(a) if Fam::of_addr(&a) == fam => Ok(a),
        _ => Err(format!("expected an {} address, got {s}", fam.name())),
    }
}

/// A gateway address with its prefix length (`10.0.0.1/24`), host bits kept.
pub(crate) fn parse_gateway(s: &str, fam: Fam) -> Result<IpNet, String> {
    let t = s.trim();
    match t.parse::<IpNet>() {
        Ok(n) if Fam::of_net(&n) == fam => Ok(n),
        Ok(_) => Err(format!(
            "expected an {} address with prefix length, got {s}",
            fam.name()
        )),
        Err(_) => Err(format!(
            "expected an {} address with prefix length (like {}), got {s}",
            fam.name(),
            example_gateway(fam)
        )),
    }
}

fn example_gateway(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "10.0.0.1/24",
        Fam::V6 => "2001:db8::1/64",
    }
}

/// A comma-separated list of network prefixes of the given family (host bits zero).
pub(crate) fn parse_prefixes(s: &str, fam: Fam) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let t = item.trim();
        if t.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err(format!("empty entry in prefix list {s:?}"));
        }
        let n = match t.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => {
                return Err(match t.parse::<IpAddr>() {
                    Ok(a) if Fam::of_addr(&a) != fam => {
                        format!("expected an {} prefix, got {t}", fam.name())
                    }
                    Ok(_) => format!("expected a prefix with length (like {t}/..), got {t}"),
                    Err(_) => format!("expected an {} prefix, got {t}", fam.name()),
                })
            }
        };
        if Fam::of_net(&n) != fam {
            return Err(format!("expected an {} prefix, got {t}", fam.name()));
        }
        if n.trunc() != n {
            return Err(format!(
                "host bits must be zero in {t} (did you mean {}?)",
                n.trunc()
            ));
        }
        out.push(n);
    }
    Ok(out)
}

/// `core.bgp_address`: `ip:port`, `[v6]:port`, `:port` (meaning `[::]`) or a bare ip (port 179).
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    let bad_port = || format!("port must be between 1 and 65535, in {s}");
    if let Ok(sa) = t.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(bad_port());
        }
        return Ok(sa);
    }
    if let Some(p) = t.strip_prefix(':') {
        let port = p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad_port)?;
        return Ok(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_BGP_PORT));
    }
    Err(format!(
        "expected ip:port, [ipv6]:port, :port or an IP address, got {s}"
    ))
}

/// A Linux interface name.
pub(crate) fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!("interface names are 1 to 15 characters, got {s:?}"));
    }
    if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("invalid interface name {s:?}"));
    }
    Ok(())
}
