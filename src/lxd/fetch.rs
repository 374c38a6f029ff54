//! One full read of LXD's state: server, managed networks (with this member's own
//! keys in a cluster), instances of every project.
use std::collections::BTreeMap;

use serde_json::Value;

use super::api::{Forward, Instance, Network, Server};
use super::client::Client;
use super::convert::{instance_key, Snapshot};
use super::error::LxdError;

pub const INSTANCES_PATH: &str = "/1.0/instances?recursion=1&all-projects=true";
pub const NETWORKS_PATH: &str = "/1.0/networks?recursion=1";

/// Reads everything. An entry that cannot be parsed is logged with its path and, when
/// `previous` knew it, kept as it was: one odd object must not withdraw anything.
pub async fn fetch(client: &mut Client, previous: Option<&Snapshot>) -> Result<Snapshot, LxdError> {
    let mut server: Server = client.get("/1.0").await?;
    let member = server.environment.server_name.clone();
    let clustered = server.environment.server_clustered && safe_name(&member);
    if clustered {
        // core.bgp_routerid (and core.bgp_address) are member keys.
        server = client.get(&format!("/1.0?target={member}")).await?;
    }
    let raw: Vec<Value> = client.get(NETWORKS_PATH).await?;
    let mut networks: Vec<Network> = parse_entries(
        NETWORKS_PATH,
        raw,
        |n: &Network| n.name.clone(),
        previous.map(|p| p.networks.as_slice()).unwrap_or_default(),
        |v| v.get("name").and_then(Value::as_str).map(str::to_string),
    );
    networks.retain(|n| n.managed);
    if clustered {
        for net in &mut networks {
            if !safe_name(&net.name) {
                continue;
            }
            // Member keys (bgp.ipvN.nexthop, parent...) are absent without ?target=.
            let path = format!("/1.0/networks/{}?target={member}", net.name);
            match client.get::<Network>(&path).await {
                Ok(full) => net.config = full.config,
                Err(e) if e.not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut forwards = BTreeMap::new();
    for net in &networks {
        if matches!(net.kind.as_str(), "bridge" | "ovn") && safe_name(&net.name) {
            let mut all = Vec::new();
            for what in ["forwards", "load-balancers"] {
                let path = format!("/1.0/networks/{}/{what}?recursion=1", net.name);
                match client.get::<Vec<Forward>>(&path).await {
                    Ok(list) => all.extend(list),
                    // Not in this version (load balancers came after 5.0), or not
                    // for this network type.
                    Err(LxdError::Api { .. }) => {}
                    Err(e @ LxdError::Parse { .. }) => {
                        let kept = previous.and_then(|p| p.forwards.get(&net.name));
                        tracing::warn!(
                            "{e}; {}",
                            if kept.is_some() {
                                "kept as last read"
                            } else {
                                "skipped"
                            }
                        );
                        all.extend(kept.into_iter().flatten().cloned());
                    }
                    Err(e) => return Err(e),
                }
            }
            if !all.is_empty() {
                all.sort_by(|a, b| a.listen_address.cmp(&b.listen_address));
                all.dedup();
                forwards.insert(net.name.clone(), all);
            }
        }
    }
    let instances = fetch_instances(client, previous).await?;
    Ok(Snapshot {
        server,
        networks,
        instances,
        forwards,
    })
}

/// Every instance of every project.
pub async fn fetch_instances(
    client: &mut Client,
    previous: Option<&Snapshot>,
) -> Result<Vec<Instance>, LxdError> {
    let raw: Vec<Value> = client.get(INSTANCES_PATH).await?;
    let mut instances = parse_entries(
        INSTANCES_PATH,
        raw,
        instance_key,
        previous.map(|p| p.instances.as_slice()).unwrap_or_default(),
        |v| {
            let name = v.get("name")?.as_str()?;
            let project = v
                .get("project")
                .and_then(Value::as_str)
                .unwrap_or("default");
            Some(instance_key(&Instance {
                name: name.to_string(),
                project: project.to_string(),
                ..Instance::default()
            }))
        },
    );
    instances.sort_by_key(instance_key);
    Ok(instances)
}

/// One instance: `None` when it is gone (404).
pub async fn fetch_instance(
    client: &mut Client,
    project: &str,
    name: &str,
) -> Result<Option<Instance>, LxdError> {
    if !safe_name(project) || !safe_name(name) {
        return Err(LxdError::Request {
            path: format!("/1.0/instances/{name}?project={project}"),
            message: "unexpected characters in the name".to_string(),
        });
    }
    let path = format!("/1.0/instances/{name}?project={project}");
    match client.get::<Instance>(&path).await {
        Ok(mut i) => {
            if i.project.is_empty() {
                i.project = project.to_string();
            }
            Ok(Some(i))
        }
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Each entry parsed on its own; an unreadable one is logged and replaced by what
/// `previous` had under the same key (found in the raw entry), if anything.
fn parse_entries<T: serde::de::DeserializeOwned + Clone>(
    path: &str,
    raw: Vec<Value>,
    key_of: impl Fn(&T) -> String,
    previous: &[T],
    raw_key: impl Fn(&Value) -> Option<String>,
) -> Vec<T> {
    let before: BTreeMap<String, &T> = previous.iter().map(|t| (key_of(t), t)).collect();
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let key = raw_key(&v);
        match serde_json::from_value::<T>(v) {
            Ok(t) => out.push(t),
            Err(e) => {
                let kept = key.as_ref().and_then(|k| before.get(k));
                tracing::warn!(
                    "{path}: entry {i} ({}) unreadable, {}: {e}",
                    key.as_deref().unwrap_or("no name"),
                    if kept.is_some() {
                        "kept as last read"
                    } else {
                        "skipped"
                    }
                );
                if let Some(t) = kept {
                    out.push((*t).clone());
                }
            }
        }
    }
    out
}

/// Names LXD allows (letters, digits, `-`, `_`, `.`): safe in a URL as they are.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
