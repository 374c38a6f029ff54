//! What `hostbgp check` reports: every error and warning with the file and line it
//! comes from.
//!
//! `validate` names problems by key path. This module reads the files (the main file,
//! then `conf.d/*.yaml`), remembers which file set which key and, only when there is
//! something to report, parses the files a second time for the line of every key. An
//! error's line is the line of the longest prefix of its key path found in a file (a
//! missing key points at its parent or a sibling).
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::node::{self, Node};
use super::{suggest, validate, Config, ConfigError, DEFAULT_BGP_PORT};

/// RFC 6793's AS_TRANS: the stand-in old 2-byte speakers see for a 4-byte ASN.
pub const AS_TRANS: u32 = 23456;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One error or warning, located when its file and line are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// Full key path (`networks.br0.config.bgp.peers.r1.asn`); None for a whole file.
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    /// `FILE:LINE` (or `FILE`), when the file is known.
    fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match self.line {
            Some(l) => format!("{file}:{l}"),
            None => file.clone(),
        })
    }

    /// As a [`ConfigError`] whose key carries the location: `FILE:LINE: KEY`, so that it
    /// displays as `check` prints it.
    pub fn to_config_error(&self) -> ConfigError {
        let key = match (self.location(), &self.key) {
            (Some(l), Some(k)) => format!("{l}: {k}"),
            (Some(l), None) => l,
            (None, Some(k)) => k.clone(),
            (None, None) => String::new(),
        };
        ConfigError {
            key,
            message: self.message.clone(),
        }
    }
}

/// `FILE:LINE: KEY: MESSAGE`, `FILE:LINE: warning: KEY: MESSAGE`, as compilers print them.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.location() {
            write!(f, "{l}: ")?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The outcome of reading and validating a configuration.
#[derive(Debug)]
pub struct Report {
    /// The configuration, when there is no error.
    pub config: Option<Config>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    pub fn into_result(self) -> Result<Config, Vec<ConfigError>> {
        match self.config {
            Some(c) if self.errors.is_empty() => Ok(c),
            _ => Err(self
                .errors
                .iter()
                .map(Diagnostic::to_config_error)
                .collect()),
        }
    }
}

struct Source {
    label: String,
    text: String,
    /// Key path -> line, parsed on first use.
    lines: Option<BTreeMap<String, u64>>,
}

/// An override found while merging, located once everything is read.
struct Override {
    key: String,
    by: usize,
    of: usize,
}

#[derive(Default)]
struct Checker {
    sources: Vec<Source>,
    /// Leaf key path -> the source whose value is in the merged tree.
    origins: BTreeMap<String, usize>,
    overrides: Vec<Override>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

fn unlocated(e: ConfigError) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: None,
        line: None,
        key: Some(e.key),
        message: e.message,
    }
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

/// Reads `path` and `conf.d/*.yaml` beside it, applies the overlay of `member`,
/// validates, and locates every error and warning.
pub fn check(path: &Path, member: &str) -> Report {
    let mut c = Checker::default();
    let label = path.display().to_string();
    let mut root = match std::fs::read_to_string(path) {
        Ok(text) => c.parse(label, text).unwrap_or(Node::Null),
        Err(e) => {
            let err = unlocated(ConfigError {
                key: label,
                message: format!("cannot read: {e}"),
            });
            if std::fs::metadata(path).is_err() {
                return Report {
                    config: None,
                    errors: vec![err],
                    warnings: Vec::new(),
                };
            }
            c.errors.push(err);
            // Keep index 0 for the main file all the same.
            c.sources.push(Source {
                label: path.display().to_string(),
                text: String::new(),
                lines: None,
            });
            Node::Null
        }
    };
    record_leaves(&root, "", 0, &mut c.origins);
    match super::conf_d_files(path) {
        Ok(files) => {
            for f in files {
                let flabel = f.display().to_string();
                match std::fs::read_to_string(&f) {
                    Ok(text) => {
                        if let Some(n) = c.parse(flabel, text) {
                            c.merge(&mut root, n);
                        }
                    }
                    Err(e) => c.errors.push(unlocated(ConfigError {
                        key: flabel,
                        message: format!("cannot read: {e}"),
                    })),
                }
            }
        }
        Err(e) => c.errors.push(unlocated(e)),
    }
    for f in ignored_yml_files(path) {
        c.warnings.push(Diagnostic {
            severity: Severity::Warning,
            file: Some(f.display().to_string()),
            line: Some(1),
            key: None,
            message: "ignored: only conf.d/*.yaml files are read (rename it to .yaml)".to_string(),
        });
    }
    for o in std::mem::take(&mut c.overrides) {
        let (_, line) = c.line_in(o.of, &o.key);
        let was = match line {
            Some(l) => format!("{}:{l}", c.sources[o.of].label),
            None => c.sources[o.of].label.clone(),
        };
        let d = c.at(
            o.by,
            Severity::Warning,
            o.key,
            format!("overrides the value set in {was}"),
        );
        c.warnings.push(d);
    }
    if !c.errors.is_empty() {
        return c.report(None);
    }

    let listen_values = listen_values(&root);
    match validate::build(root, member) {
        Ok(config) => {
            c.config_warnings(&config);
            c.listen_hints(&listen_values);
            c.report(Some(config))
        }
        Err(errors) => {
            for e in errors {
                let mut message = e.message;
                if message.starts_with("unknown key") {
                    if let Some(s) = suggest::suggest(&e.key) {
                        message = format!("{message}, did you mean {s}?");
                    }
                }
                if let Some(other) = other_key(&message) {
                    let o = c.locate(Severity::Error, other.to_string(), String::new());
                    if let Some(l) = o.location() {
                        message = format!("{message}; that one is at {l}");
                    }
                }
                let d = c.locate(Severity::Error, e.key, message);
                c.errors.push(d);
            }
            c.listen_hints(&listen_values);
            c.report(None)
        }
    }
}

/// Locates errors found elsewhere on the tree of `path` and its `conf.d` files (the live
/// LXD source's check); an error no file names a prefix of stays as it is.
pub fn locate_errors(path: &Path, errors: Vec<ConfigError>) -> Vec<Diagnostic> {
    let mut c = Checker::default();
    let mut files = vec![path.to_path_buf()];
    files.extend(super::conf_d_files(path).unwrap_or_default());
    for f in files {
        c.sources.push(Source {
            label: f.display().to_string(),
            text: std::fs::read_to_string(&f).unwrap_or_default(),
            lines: None,
        });
    }
    errors
        .into_iter()
        .map(|e| {
            let mut message = e.message.clone();
            if message.starts_with("unknown key") {
                if let Some(s) = suggest::suggest(&e.key) {
                    message = format!("{message}, did you mean {s}?");
                }
            }
            let d = c.locate(Severity::Error, e.key.clone(), message);
            if d.line.is_some() {
                d
            } else {
                unlocated(e)
            }
        })
        .collect()
}

impl Checker {
    /// Parses one file; None (with the error or warning recorded) when it is invalid or empty.
    fn parse(&mut self, label: String, text: String) -> Option<Node> {
        let parsed = node::parse_yaml(&text, &label);
        self.sources.push(Source {
            label,
            text,
            lines: None,
        });
        let idx = self.sources.len() - 1;
        match parsed {
            Err(e) => {
                self.errors.push(unlocated(e));
                None
            }
            Ok(Node::Null) => {
                self.warnings.push(Diagnostic {
                    severity: Severity::Warning,
                    file: Some(self.sources[idx].label.clone()),
                    line: Some(1),
                    key: None,
                    message: "empty file: nothing is configured in it".to_string(),
                });
                None
            }
            Ok(n) => Some(n),
        }
    }

    /// Merges a conf.d file (the last source) into `root`, noting what it overrides.
    fn merge(&mut self, root: &mut Node, over: Node) {
        let idx = self.sources.len() - 1;
        match (&*root, &over) {
            (Node::Map(_), Node::Map(_)) => {
                walk_override(root, &over, "", idx, &mut self.origins, &mut self.overrides)
            }
            (Node::Null, _) => record_leaves(&over, "", idx, &mut self.origins),
            _ => {
                self.origins.clear();
                record_leaves(&over, "", idx, &mut self.origins);
            }
        }
        node::merge_document(root, over);
    }

    fn lines(&mut self, idx: usize) -> &BTreeMap<String, u64> {
        let s = &mut self.sources[idx];
        s.lines.get_or_insert_with(|| key_lines(&s.text))
    }

    /// The line of the longest prefix of `key` in source `idx`, with that prefix's length.
    fn line_in(&mut self, idx: usize, key: &str) -> (usize, Option<u64>) {
        let lines = self.lines(idx);
        let mut p = key;
        loop {
            if let Some(l) = lines.get(p) {
                return (p.len(), Some(*l));
            }
            // A missing key: a sibling or child written in this file.
            let dotted = format!("{p}.");
            if let Some((k, l)) = lines.range(dotted.clone()..).next() {
                if k.starts_with(&dotted) {
                    return (p.len(), Some(*l));
                }
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return (0, None),
            }
        }
    }

    fn at(&mut self, idx: usize, severity: Severity, key: String, message: String) -> Diagnostic {
        let (_, line) = self.line_in(idx, &key);
        Diagnostic {
            severity,
            file: Some(self.sources[idx].label.clone()),
            line,
            key: Some(key),
            message,
        }
    }

    /// Locates a key: the file whose value was kept, else the file naming the longest
    /// prefix of it (the first such file on a tie); the main file when none does.
    fn locate(&mut self, severity: Severity, key: String, message: String) -> Diagnostic {
        if let Some(&idx) = self.origins.get(&key) {
            return self.at(idx, severity, key, message);
        }
        let mut best = (0, None, 0);
        for idx in 0..self.sources.len() {
            let (len, line) = self.line_in(idx, &key);
            if line.is_some() && (best.1.is_none() || len > best.0) {
                best = (len, line, idx);
            }
        }
        let (_, _, idx) = best;
        self.at(idx, severity, key, message)
    }

    fn warn(&mut self, key: String, message: String) {
        let d = self.locate(Severity::Warning, key, message);
        self.warnings.push(d);
    }

    fn config_warnings(&mut self, config: &Config) {
        if config.server.asn == Some(AS_TRANS) {
            self.warn(
                "config.core.bgp_asn".to_string(),
                format!("{AS_TRANS} is AS_TRANS (RFC 6793), the stand-in that 2-byte-only speakers see for a 4-byte ASN: not an AS number to use"),
            );
        }
        let mut first_peer = None;
        for (nname, net) in &config.networks {
            for (pname, p) in &net.peers {
                let base = format!("networks.{nname}.config.bgp.peers.{pname}");
                if p.asn == AS_TRANS {
                    self.warn(
                        format!("{base}.asn"),
                        format!("{AS_TRANS} is AS_TRANS (RFC 6793), the stand-in that 2-byte-only speakers see for a 4-byte ASN: a peer's OPEN will carry its real ASN"),
                    );
                }
                if p.graceful_restart_time.is_some() && !config.server.graceful_restart {
                    self.warn(
                        format!("{base}.graceful_restart.time"),
                        "has no effect: config.hostbgp.graceful_restart is false (no graceful restart capability is sent)".to_string(),
                    );
                }
                first_peer.get_or_insert(base);
            }
        }
        for (key, message) in super::own_addrs::warnings(config) {
            self.warn(key, message);
        }
        if let (None, Some(peer)) = (config.server.listen, first_peer) {
            self.warn(
                peer,
                "peers are configured but config.core.bgp_address is unset: BGP is off, no session will be opened".to_string(),
            );
        }
    }

    /// An unbracketed IPv6 address followed by what looks like a port: a hint on the
    /// error, or a warning when it is a valid (other) address.
    fn listen_hints(&mut self, values: &[(String, String)]) {
        for (key, value) in values {
            let Some((host, port)) = ambiguous_listen(value) else {
                continue;
            };
            let bracketed = format!("[{host}]:{port}");
            if let Some(e) = self
                .errors
                .iter_mut()
                .find(|e| e.key.as_deref() == Some(key.as_str()))
            {
                e.message = format!(
                    "{}; an IPv6 address with a port is written in brackets: {bracketed}",
                    e.message
                );
                continue;
            }
            let v = value.trim();
            self.warn(
                key.clone(),
                format!(
                    "{v} is ambiguous: it is read as the IPv6 address {v} on port {DEFAULT_BGP_PORT}; for address {host} port {port} write {bracketed} (or [{v}] for that address)"
                ),
            );
        }
    }

    fn report(self, config: Option<Config>) -> Report {
        Report {
            config,
            errors: self.errors,
            warnings: self.warnings,
        }
    }
}

/// The other key an error names (a peer conflict, an overlap of two NICs' routes).
fn other_key(message: &str) -> Option<&str> {
    let rest = match message.strip_prefix("conflicts with ") {
        Some(r) => r,
        None => message.split_once(" overlaps ")?.1,
    };
    let key = rest.split(' ').next()?;
    key.contains('.').then_some(key)
}

/// `2001:db8::1:179`: an IPv6 address, a colon and a number, without brackets.
fn ambiguous_listen(value: &str) -> Option<(Ipv6Addr, u32)> {
    let v = value.trim();
    if v.starts_with('[') || v.matches(':').count() < 3 {
        return None;
    }
    let (host, port) = v.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = host.parse::<Ipv6Addr>().ok()?;
    let port = port.parse::<u32>().ok()?;
    Some((host, port))
}

/// Every `core.bgp_address` value in the tree (`config:` and each member's overlay).
fn listen_values(root: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Node::Map(top) = root else { return out };
    if let Some(Node::Map(cfg)) = top.get("config") {
        if let Some(Node::Scalar(v)) = cfg.get("core.bgp_address") {
            out.push(("config.core.bgp_address".to_string(), v.clone()));
        }
    }
    if let Some(Node::Map(members)) = top.get("members") {
        for (m, mv) in members {
            let Node::Map(mm) = mv else { continue };
            if let Some(Node::Map(cfg)) = mm.get("config") {
                if let Some(Node::Scalar(v)) = cfg.get("core.bgp_address") {
                    out.push((format!("members.{m}.config.core.bgp_address"), v.clone()));
                }
            }
        }
    }
    out
}

/// Notes every leaf (anything but a non-empty map) under `prefix` as set by `idx`.
fn record_leaves(n: &Node, prefix: &str, idx: usize, origins: &mut BTreeMap<String, usize>) {
    match n {
        Node::Map(m) if !m.is_empty() => {
            for (k, v) in m {
                record_leaves(v, &join(prefix, k), idx, origins);
            }
        }
        _ if !prefix.is_empty() => {
            origins.insert(prefix.to_string(), idx);
        }
        _ => {}
    }
}

/// Follows `node::merge` over two maps: a value replacing an earlier one is an override.
fn walk_override(
    base: &Node,
    over: &Node,
    prefix: &str,
    idx: usize,
    origins: &mut BTreeMap<String, usize>,
    overrides: &mut Vec<Override>,
) {
    let (Node::Map(b), Node::Map(o)) = (base, over) else {
        return;
    };
    for (k, v) in o {
        let p = join(prefix, k);
        match (b.get(k), v) {
            (Some(bv @ Node::Map(_)), Node::Map(_)) => {
                walk_override(bv, v, &p, idx, origins, overrides)
            }
            (Some(_), _) => {
                let dotted = format!("{p}.");
                let mut old: Vec<String> = origins
                    .range(dotted.clone()..)
                    .take_while(|(k, _)| k.starts_with(&dotted))
                    .map(|(k, _)| k.clone())
                    .collect();
                if origins.contains_key(&p) {
                    old.insert(0, p.clone());
                }
                if let Some(of) = old.first().and_then(|k| origins.get(k)).copied() {
                    overrides.push(Override {
                        key: p.clone(),
                        by: idx,
                        of,
                    });
                }
                for k in old {
                    origins.remove(&k);
                }
                record_leaves(v, &p, idx, origins);
            }
            (None, _) => record_leaves(v, &p, idx, origins),
        }
    }
}

/// The conf.d files that look like configuration but are not read (`*.yml`).
fn ignored_yml_files(path: &Path) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("conf.d"),
        _ => Path::new("conf.d").to_path_buf(),
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".yml")
        })
        .map(|e| e.path())
        .filter(|p| !p.is_dir())
        .collect();
    out.sort();
    out
}

/// Key path -> line of the key, for every map key of a document (flow maps included).
pub(crate) fn key_lines(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Ok(tree) = serde_saphyr::from_str::<LocTree>(text) {
        flatten(&tree, "", &mut out);
    }
    out
}

fn flatten(t: &LocTree, prefix: &str, out: &mut BTreeMap<String, u64>) {
    if let LocTree::Map(entries) = t {
        for (k, line, v) in entries {
            let p = join(prefix, k);
            flatten(v, &p, out);
            out.entry(p).or_insert(*line);
        }
    }
}

/// A document's shape with the line of every map key; values other than maps are dropped.
enum LocTree {
    Other,
    Map(Vec<(String, u64, LocTree)>),
}

impl<'de> Deserialize<'de> for LocTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LocVisitor)
    }
}

struct LocVisitor;

impl<'de> Visitor<'de> for LocVisitor {
    type Value = LocTree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    // Scalars, null and lists are `Other`: only maps have keys.
    node::visit_all_but_seq_and_map!(LocTree, |_| LocTree::Other, null: LocTree::Other);
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<LocTree, E> {
        Ok(LocTree::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LocTree, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(LocTree::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LocTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<serde_saphyr::Spanned<Node>>()? {
            let key = match k.value {
                Node::Scalar(s) => s,
                Node::Null => "null".to_string(),
                _ => String::new(),
            };
            let v = map.next_value::<LocTree>()?;
            entries.push((key, k.referenced.line(), v));
        }
        Ok(LocTree::Map(entries))
    }
}
