//! The strict decoder's tools: an error collector and a mapping reader that knows which keys it
//! was asked for, so every key nobody asked for is reported (with a "did you mean" hint).
//!
//! Decoding never stops at an error: a bad value is reported and left out, and decoding goes on
//! with the next key, so one run lists every problem in the file.

use crate::error::{LoadError, LoadErrorKind};
use crate::model::{KeyLines, Word};
use crate::yaml::{Node, Value};

/// Collects errors for one file.
pub(crate) struct Cx {
    pub(crate) file: String,
    pub(crate) errors: Vec<LoadError>,
}

impl Cx {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            errors: Vec::new(),
        }
    }

    /// Reports a problem at a node.
    pub(crate) fn error(&mut self, at: &Node, path: &str, message: impl Into<String>) {
        self.error_at(at.line, at.column, path, message);
    }

    /// Reports a problem at a position.
    pub(crate) fn error_at(
        &mut self,
        line: u32,
        column: u32,
        path: &str,
        message: impl Into<String>,
    ) {
        self.errors.push(LoadError {
            file: self.file.clone(),
            line,
            column,
            path: path.to_owned(),
            message: message.into(),
            kind: LoadErrorKind::Invalid,
        });
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

struct Entry<'n> {
    key: &'n str,
    key_node: &'n Node,
    value: &'n Node,
    used: bool,
}

/// A mapping being decoded.
pub(crate) struct Fields<'n> {
    pub(crate) path: String,
    pub(crate) line: u32,
    pub(crate) column: u32,
    entries: Vec<Entry<'n>>,
    known: Vec<&'static str>,
    lines: Vec<(&'static str, u32, u32)>,
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl<'n> Fields<'n> {
    /// Opens a mapping; reports and returns `None` when `node` is not one. Duplicate keys and
    /// non-scalar keys are reported here.
    pub(crate) fn open(cx: &mut Cx, node: &'n Node, path: &str, what: &str) -> Option<Self> {
        let Value::Map(pairs) = &node.value else {
            cx.error(
                node,
                path,
                format!("expected {what} (a mapping), found {}", node.kind()),
            );
            return None;
        };
        let mut entries: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        let mut merges: Vec<&'n Node> = Vec::new();
        for (k, v) in pairs {
            let Some(key) = k.scalar() else {
                cx.error(
                    k,
                    path,
                    format!("a key must be a plain string, found {}", k.kind()),
                );
                continue;
            };
            if key == "<<" && matches!(k.value, Value::Scalar { plain: true, .. }) {
                merges.push(v);
                continue;
            }
            if let Some(first) = entries.iter().find(|e| e.key == key) {
                let first_line = first.key_node.line;
                cx.error(
                    k,
                    &join(path, key),
                    format!("duplicate key `{key}` (first at line {first_line})"),
                );
                continue;
            }
            entries.push(Entry {
                key,
                key_node: k,
                value: v,
                used: false,
            });
        }
        for m in merges {
            merge(cx, m, path, &mut entries, 0);
        }
        Some(Self {
            path: path.to_owned(),
            line: node.line,
            column: node.column,
            entries,
            known: Vec::new(),
            lines: Vec::new(),
        })
    }

    /// The value of `key` if written and not null, with its key path. Marks the key as known.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<(&'n Node, String)> {
        self.known.push(key);
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
        entry.used = true;
        self.lines
            .push((key, entry.key_node.line, entry.key_node.column));
        if matches!(entry.value.value, Value::Null) {
            return None;
        }
        Some((entry.value, join(&self.path, key)))
    }

    /// Accepts every key that starts with `x-` (extension fields that hold YAML anchors for
    /// merge keys, as in docker-compose files); their content is not read.
    pub(crate) fn allow_extensions(&mut self) {
        for e in self.entries.iter_mut().filter(|e| e.key.starts_with("x-")) {
            e.used = true;
        }
    }

    /// True when `key` was written, even as null.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    /// Decodes an optional key with `f`.
    pub(crate) fn opt<T>(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        f: impl FnOnce(&mut Cx, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let (node, path) = self.get(key)?;
        f(cx, node, &path)
    }

    /// Decodes a required key with `f`; reports when it is missing or null.
    pub(crate) fn req<T>(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
        f: impl FnOnce(&mut Cx, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            Some((node, path)) => f(cx, node, &path),
            None => {
                let (line, column) = self
                    .lines
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, l, c)| (*l, *c))
                    .unwrap_or((self.line, self.column));
                let msg = if self.has(key) {
                    format!("`{key}` has no value")
                } else {
                    format!("missing required key `{key}`")
                };
                cx.error_at(line, column, &self.path, msg);
                None
            }
        }
    }

    /// Reports every key that was never asked for, and returns the lines of the others.
    pub(crate) fn finish(self, cx: &mut Cx) -> KeyLines {
        for e in self.entries.iter().filter(|e| !e.used) {
            let hint = self
                .known
                .iter()
                .map(|k| (edit_distance(e.key, k), *k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 4))
                .min()
                .map(|(_, k)| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| {
                    let mut known = self.known.clone();
                    known.sort_unstable();
                    known.dedup();
                    format!("; expected one of: {}", known.join(", "))
                });
            cx.error(
                e.key_node,
                &join(&self.path, e.key),
                format!("unknown key `{}`{hint}", e.key),
            );
        }
        KeyLines(self.lines)
    }
}

/// Adds the entries of a YAML merge key (`<<: *defaults` or `<<: [*a, *b]`) that the mapping
/// does not set itself; explicit keys win, earlier merge sources win over later ones.
fn merge<'n>(cx: &mut Cx, m: &'n Node, path: &str, entries: &mut Vec<Entry<'n>>, depth: u8) {
    if depth > 8 {
        cx.error(m, path, "merge keys (`<<`) nested too deeply");
        return;
    }
    match &m.value {
        Value::Map(pairs) => {
            let mut nested = Vec::new();
            for (k, v) in pairs {
                let Some(key) = k.scalar() else { continue };
                if key == "<<" {
                    nested.push(v);
                } else if !entries.iter().any(|e| e.key == key) {
                    entries.push(Entry {
                        key,
                        key_node: k,
                        value: v,
                        used: false,
                    });
                }
            }
            for n in nested {
                merge(cx, n, path, entries, depth + 1);
            }
        }
        Value::Seq(items) => {
            for i in items {
                merge(cx, i, path, entries, depth + 1);
            }
        }
        _ => cx.error(
            m,
            path,
            format!(
                "a merge key (`<<`) takes a mapping or a list of mappings, found {}",
                m.kind()
            ),
        ),
    }
}

/// A string from any scalar (numbers included, as written).
pub(crate) fn text(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            cx.error(
                node,
                path,
                format!("expected a string, found {}", node.kind()),
            );
            None
        }
    }
}

/// A list of items decoded with `f`; a single scalar counts as a one-item list, null as none.
pub(crate) fn list<'n, T>(
    cx: &mut Cx,
    node: &'n Node,
    path: &str,
    mut f: impl FnMut(&mut Cx, &'n Node, &str) -> Option<T>,
) -> Vec<T> {
    match &node.value {
        Value::Null => Vec::new(),
        Value::Scalar { .. } => f(cx, node, path).into_iter().collect(),
        Value::Seq(_) | Value::Map(_) => seq(cx, node, path, f),
    }
}

/// A list that must be written as a YAML list (of mappings, typically).
pub(crate) fn seq<'n, T>(
    cx: &mut Cx,
    node: &'n Node,
    path: &str,
    mut f: impl FnMut(&mut Cx, &'n Node, &str) -> Option<T>,
) -> Vec<T> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| f(cx, n, &index(path, i)))
            .collect(),
        _ => {
            cx.error(
                node,
                path,
                format!("expected a list, found {}", node.kind()),
            );
            Vec::new()
        }
    }
}

/// The text of a scalar that should hold a number; an error at the node for anything else.
fn number_text<'n>(cx: &mut Cx, node: &'n Node, path: &str) -> Option<&'n str> {
    let t = node.scalar();
    if t.is_none() {
        cx.error(
            node,
            path,
            format!("expected a number, found {}", node.kind()),
        );
    }
    t
}

/// An unsigned integer within `max`.
pub(crate) fn uint(cx: &mut Cx, node: &Node, path: &str, max: u64) -> Option<u64> {
    let t = number_text(cx, node, path)?;
    match crate::syntax::parse_uint(t) {
        Ok(v) if v <= max => Some(v),
        Ok(v) => {
            cx.error(node, path, format!("{v} is above the maximum {max}"));
            None
        }
        Err(e) => {
            cx.error(node, path, e);
            None
        }
    }
}

/// A signed integer in `min..=max` (decimal, or `0x` hex for non-negative values).
pub(crate) fn int(cx: &mut Cx, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
    let t = number_text(cx, node, path)?;
    let parsed = match t.trim().strip_prefix('-') {
        Some(abs) => crate::syntax::parse_uint(abs)
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        None => crate::syntax::parse_uint(t)
            .ok()
            .and_then(|v| i64::try_from(v).ok()),
    };
    match parsed {
        Some(v) if (min..=max).contains(&v) => Some(v),
        Some(v) => {
            cx.error(node, path, format!("{v} is outside {min}..={max}"));
            None
        }
        None => {
            cx.error(node, path, format!("`{t}` is not an integer"));
            None
        }
    }
}

/// A scalar parsed by `parse`, its error reported at the node.
pub(crate) fn parsed<T>(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let Some(t) = node.scalar() else {
        cx.error(
            node,
            path,
            format!("expected a scalar, found {}", node.kind()),
        );
        return None;
    };
    match parse(t) {
        Ok(v) => Some(v),
        Err(e) => {
            cx.error(node, path, e);
            None
        }
    }
}

/// One of the words of a model enum (its [`Word::word`] spellings, listed in the error).
pub(crate) fn word<T: Word>(cx: &mut Cx, node: &Node, path: &str) -> Option<T> {
    let t = node.scalar();
    if let Some(v) = t.and_then(|t| T::ALL_WORDS.iter().find(|w| w.word() == t)) {
        return Some(*v);
    }
    let expected: Vec<&str> = T::ALL_WORDS.iter().map(|w| w.word()).collect();
    let found = t.map_or_else(|| node.kind().to_owned(), |t| format!("`{t}`"));
    cx.error(
        node,
        path,
        format!("expected one of {}, found {found}", expected.join(" | ")),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("holdng", "holding"), 1);
        assert_eq!(edit_distance("zone", "zone"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
