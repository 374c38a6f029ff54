//! "did you mean": the known key nearest to a mistyped one, at the same position.
use super::validate::{
    Scope, INSTANCE_IGNORED, NETWORK_IGNORED, NETWORK_KEYS, NIC_IGNORED, NIC_KEYS, PEER_FIELDS,
    SERVER_KEYS,
};

/// The known key nearest to the unknown key at `path` (a full key path, as errors name it),
/// written as it would appear at that position (`asn` for `...bgp.peers.r1.as`).
pub(crate) fn suggest(path: &str) -> Option<String> {
    if let Some(k) = path.strip_prefix("config.") {
        return nearest(k, &server_keys());
    }
    if let Some(rest) = path.strip_prefix("networks.") {
        let (_, rest) = rest.split_once('.')?;
        let Some(ck) = rest.strip_prefix("config.") else {
            let mut known = vec!["type", "config"];
            known.extend_from_slice(NETWORK_IGNORED);
            return nearest(rest, &known);
        };
        if let Some(p) = ck.strip_prefix("bgp.peers.") {
            // The field alone reads best: `as` -> `asn`; the dotted fields keep
            // their own dot: `bfd.multiplyer` -> `bfd.multiplier`.
            let field = dotted_field(p).unwrap_or(p.rsplit_once('.')?.1);
            let fields: Vec<&str> = PEER_FIELDS.iter().map(|f| f.key).collect();
            return nearest(field, &fields);
        }
        let keys: Vec<&str> = NETWORK_KEYS.iter().map(|k| k.key).collect();
        return nearest(ck, &keys);
    }
    if let Some(rest) = path.strip_prefix("instances.") {
        let (_, rest) = rest.split_once('.')?;
        if let Some(d) = rest.strip_prefix("devices.") {
            let (_, nk) = d.split_once('.')?;
            let mut known = vec!["type"];
            known.extend_from_slice(NIC_KEYS);
            known.extend_from_slice(NIC_IGNORED);
            return nearest(nk, &known);
        }
        let mut known = vec!["location", "devices"];
        known.extend_from_slice(INSTANCE_IGNORED);
        return nearest(rest, &known);
    }
    if let Some(rest) = path.strip_prefix("members.") {
        let (_, rest) = rest.split_once('.')?;
        if let Some(k) = rest.strip_prefix("config.") {
            return nearest(k, &server_keys());
        }
        if let Some(n) = rest.strip_prefix("networks.") {
            let (_, k) = n.split_once('.')?;
            let local: Vec<&str> = NETWORK_KEYS
                .iter()
                .filter(|k| k.scope == Scope::Member)
                .map(|k| k.key)
                .collect();
            return nearest(k, &local);
        }
        return nearest(rest, &["config", "networks"]);
    }
    // A top-level key: a server key written outside `config:` is a common slip.
    if server_keys().contains(&path) {
        return Some(format!("config.{path} (inside config:)"));
    }
    nearest(
        path,
        &["config", "networks", "instances", "members", "lxd", "incus"],
    )
}

/// `bfd.multiplyer` of `r1.bfd.multiplyer`: the part of a peer key from the first
/// word a dotted field starts with (`bfd.`, `graceful_restart.`), typos included.
fn dotted_field(peer_key: &str) -> Option<&str> {
    let heads: Vec<&str> = PEER_FIELDS
        .iter()
        .filter_map(|f| f.key.split_once('.').map(|(h, _)| h))
        .collect();
    let (name, rest) = peer_key.split_once('.')?;
    let mut start = name.len() + 1;
    let mut rest = rest;
    loop {
        let (word, tail) = rest.split_once('.')?;
        let near = |h: &&str| distance(&word.to_lowercase(), h) <= (h.len() / 4).min(3);
        if heads.iter().any(near) {
            return Some(&peer_key[start..]);
        }
        start += word.len() + 1;
        rest = tail;
    }
}

fn server_keys() -> Vec<&'static str> {
    SERVER_KEYS.iter().map(|k| k.key).collect()
}

/// The candidate closest to `word` (edit distance, a transposition counting one), if it is
/// close enough to be a typo of it: at most one edit per four characters, at most three.
fn nearest(word: &str, candidates: &[&str]) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if *c == word {
            return None; // known here: the error is about something else
        }
        let d = distance(&word.to_lowercase(), c);
        let limit = (c.chars().count() / 4).clamp(1, 3);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of two neighbours, each costing one.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}
