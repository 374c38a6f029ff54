//! `hostbgp check`'s warnings for `bgp.ipvN.instances`: NICs whose address can never
//! be advertised. Warnings, not errors: the file is valid, and the same NIC may
//! carry external routes that work.
use super::{Config, NetworkKind};

/// (key, message) for each NIC on a network with `bgp.ipvN.instances` on that lacks
/// what finding its address needs.
pub(super) fn warnings(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (iname, instance) in &config.instances {
        for (dev, nic) in &instance.nics {
            let Some(net) = config.networks.get(&nic.network) else {
                continue;
            };
            if net.kind != NetworkKind::Bridge {
                continue;
            }
            let base = format!("instances.{iname}.devices.{dev}");
            let families = [
                ("ipv4", net.ipv4.instances, nic.ipv4_address.is_some()),
                ("ipv6", net.ipv6.instances, nic.ipv6_address.is_some()),
            ];
            if families.iter().any(|(_, on, _)| *on) && nic.host_name.is_none() {
                out.push((
                    base.clone(),
                    format!(
                        "host_name is unset: hostbgp cannot tell when the instance runs, so networks.{}.config.bgp.ipvN.instances never advertises its address",
                        net.name
                    ),
                ));
                continue;
            }
            for (key, on, has_static) in families {
                if on && !has_static && nic.hwaddr.is_none() {
                    out.push((
                        base.clone(),
                        format!(
                            "neither {key}.address nor hwaddr is set: networks.{}.config.bgp.{key}.instances cannot find its address",
                            net.name
                        ),
                    ));
                }
            }
        }
    }
    out
}
