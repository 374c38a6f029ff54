//! LXD's (and Incus') REST replies and events, as far as hostbgp reads them.
//!
//! Every struct tolerates fields it does not know and missing optional ones: the API
//! grows between versions (Incus and LXD main add `project` to networks and
//! `metadata.name` to events) and a reply we half understand must not stop the source.
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The envelope around every synchronous reply.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub error_code: u16,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub metadata: Value,
}

/// `GET /1.0`
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Server {
    #[serde(default, deserialize_with = "string_map")]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: Environment,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub server_clustered: bool,
    /// `lxd` or `incus`.
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub server_version: String,
}

/// One entry of `GET /1.0/networks?recursion=1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Network {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub managed: bool,
    #[serde(default, deserialize_with = "string_map")]
    pub config: BTreeMap<String, String>,
    /// Absent in LXD 5.0.2; LXD main and Incus add it.
    #[serde(default)]
    pub project: Option<String>,
}

/// One entry of `GET /1.0/networks/NAME/forwards?recursion=1` (or `/load-balancers`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Forward {
    pub listen_address: String,
    /// The member holding it (bridge networks in a cluster); empty or `none` otherwise.
    #[serde(default)]
    pub location: String,
}

/// One entry of `GET /1.0/instances?recursion=1&all-projects=true`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Instance {
    pub name: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub status: String,
    /// Profiles merged in: the devices the instance really has.
    #[serde(default, deserialize_with = "devices")]
    pub expanded_devices: BTreeMap<String, BTreeMap<String, String>>,
    /// Holds `volatile.DEV.host_name` while the instance runs.
    #[serde(default, deserialize_with = "string_map")]
    pub config: BTreeMap<String, String>,
}

/// One message of `/1.0/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Event {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub metadata: Lifecycle,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Lifecycle {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub context: Option<Value>,
    /// LXD main and Incus (`event_lifecycle_name_and_project`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

/// A config map: LXD sends strings, but a number or boolean is read as its text and
/// anything else (null, nested) is left out rather than failing the whole reply.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| scalar(v).map(|v| (k, v)))
        .collect())
}

fn devices<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, dev)| match dev {
            Value::Object(m) => Some((
                name,
                m.into_iter()
                    .filter_map(|(k, v)| scalar(v).map(|v| (k, v)))
                    .collect(),
            )),
            _ => None,
        })
        .collect())
}

fn scalar(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
