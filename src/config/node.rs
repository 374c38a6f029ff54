//! A generic YAML tree (every scalar kept as its string form), its parsing and deep merge.
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Null,
    /// Strings, numbers and booleans, as their text (`65010`, `"65010"` are the same).
    Scalar(String),
    Seq(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

impl Node {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Scalar(_) => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a map",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// The `Visitor` methods both YAML trees write alike, all but `visit_seq`, `visit_map`
/// and any the caller adds: a scalar gives `Ok(scalar)` with its value bound to `v`,
/// unit and none give `Ok(null)`, and an option or newtype is its inner value. E.g.
/// `visit_all_but_seq_and_map!(Node, |v| Node::Scalar(v.to_string()), null: Node::Null)`.
macro_rules! visit_all_but_seq_and_map {
    ($value:ty, |$v:pat_param| $scalar:expr, null: $null:expr) => {
        $crate::config::node::visit_all_but_seq_and_map!(@scalars $value, $v, $scalar;
            visit_bool: bool, visit_i64: i64, visit_i128: i128, visit_u64: u64,
            visit_u128: u128, visit_f64: f64, visit_char: char, visit_str: &str);
        fn visit_unit<E: de::Error>(self) -> Result<$value, E> {
            Ok($null)
        }
        fn visit_none<E: de::Error>(self) -> Result<$value, E> {
            Ok($null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
            <$value>::deserialize(d)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
            <$value>::deserialize(d)
        }
    };
    (@scalars $value:ty, $v:pat_param, $body:expr; $($visit:ident: $t:ty),*) => {$(
        fn $visit<E: de::Error>(self, $v: $t) -> Result<$value, E> {
            Ok($body)
        }
    )*};
}
pub(crate) use visit_all_but_seq_and_map;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    visit_all_but_seq_and_map!(Node, |v| Node::Scalar(v.to_string()), null: Node::Null);
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            v.push(n);
        }
        Ok(Node::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut m = BTreeMap::new();
        while let Some(k) = map.next_key::<Node>()? {
            let k = match k {
                Node::Scalar(s) => s,
                Node::Null => "null".to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "map keys must be scalars, got {}",
                        other.kind_name()
                    )))
                }
            };
            let v = map.next_value::<Node>()?;
            m.insert(k, v);
        }
        Ok(Node::Map(m))
    }
}

/// Parses one YAML document; `label` (a file path) names the errors.
pub(crate) fn parse_yaml(text: &str, label: &str) -> Result<Node, ConfigError> {
    let only_comments = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if only_comments {
        return Ok(Node::Null);
    }
    serde_saphyr::from_str::<Node>(text).map_err(|e| {
        let key = match e.location() {
            Some(loc) if loc.line() > 0 => format!("{label}:{}", loc.line()),
            _ => label.to_string(),
        };
        ConfigError {
            key,
            message: format!("invalid YAML: {}", first_line(&e.to_string())),
        }
    })
}

/// Deep merge: maps merge recursively, anything else in `over` replaces `base`.
/// A null (empty) document at the top level changes nothing.
pub(crate) fn merge(base: &mut Node, over: Node) {
    if let (Node::Map(b), Node::Map(_)) = (&mut *base, &over) {
        if let Node::Map(o) = over {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        return;
    }
    *base = over;
}

pub(crate) fn merge_document(base: &mut Node, over: Node) {
    if over != Node::Null {
        merge(base, over);
    }
}

/// The parser's one-line summary, without its source snippet (which could show a password).
fn first_line(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or("");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // "duplicate mapping key: KEY, set DuplicateKeyPolicy ..." is about our parser options.
    match line.find(", set DuplicateKeyPolicy") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}
