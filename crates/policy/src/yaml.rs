//! A positioned YAML tree built from yaml-rust2's event stream.
//!
//! Why this and not `serde_yaml`: serde's derive stops at the first error and forgets where each
//! value came from, while a security policy loader must name every mistake with its line and key
//! path (and `serde_yaml` is unmaintained). yaml-rust2 is a maintained, pure-Rust, YAML 1.2
//! parser whose low-level event API marks every event with its line and column. We build our own
//! small tree from those events so that we also control what plain YAML loaders let slip:
//! - duplicate keys are kept (the decoder reports them; most loaders keep the last one silently);
//! - plain and quoted scalars stay apart (`port: "502"` vs `port: 502`), nothing is guessed;
//! - aliases are expanded with a node budget, so a "billion laughs" file fails instead of eating
//!   memory;
//! - tags other than `!!str` and a second document in the stream are errors.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Upper bound on the number of nodes after alias expansion.
const MAX_NODES: usize = 1_000_000;

/// A YAML node with its 1-based position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// The content of a [`Node`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar; `plain` is false for quoted and block scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short description of the node's kind for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing (null)",
            Value::Scalar { plain: true, .. } => "a scalar",
            Value::Scalar { plain: false, .. } => "a quoted string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar text, if this is a scalar.
    pub(crate) fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Self::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) message: String,
}

fn pos(mark: Marker) -> (u32, u32) {
    let line = u32::try_from(mark.line()).unwrap_or(u32::MAX).max(1);
    // yaml-rust2 columns are 0-based.
    let column = u32::try_from(mark.col())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    (line, column)
}

fn syntax(mark: Marker, message: impl Into<String>) -> SyntaxError {
    let (line, column) = pos(mark);
    SyntaxError {
        line,
        column,
        message: message.into(),
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        line: u32,
        column: u32,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        line: u32,
        column: u32,
        anchor: usize,
    },
}

fn is_str_tag(tag: &Tag) -> bool {
    tag.suffix == "str" && (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:")
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Anchored nodes with their subtree size.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl Builder {
    /// Accounts for `added` more nodes, failing past the budget.
    fn budget(&mut self, added: usize, mark: Marker) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > MAX_NODES {
            return Err(syntax(
                mark,
                format!("document too large (more than {MAX_NODES} nodes after alias expansion)"),
            ));
        }
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize, mark: Marker) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let size = node.count();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(syntax(mark, "only one YAML document is allowed"));
                }
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Parses one YAML document into a positioned tree. An empty document gives a `Null` root.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut documents = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            let (line, column) = pos(*e.marker());
            SyntaxError {
                line,
                column,
                message: format!("YAML syntax error: {}", e.info()),
            }
        })?;
        let (line, column) = pos(mark);
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(syntax(mark, "only one YAML document is allowed"));
                }
            }
            Event::Alias(id) => {
                let Some(size) = b.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(syntax(mark, "alias to an unknown anchor"));
                };
                // Check the budget before cloning, so an alias bomb never allocates.
                b.budget(size, mark)?;
                if let Some((node, _)) = b.anchors.get(&id) {
                    let node = node.clone();
                    b.complete(node, 0, mark)?;
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                b.budget(1, mark)?;
                let mut plain = style == TScalarStyle::Plain;
                if let Some(tag) = tag {
                    if !is_str_tag(&tag) {
                        return Err(syntax(
                            mark,
                            format!(
                                "YAML tag `{}{}` is not supported (only !!str)",
                                tag.handle, tag.suffix
                            ),
                        ));
                    }
                    plain = false;
                }
                let value = if plain && is_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar { text, plain }
                };
                b.complete(
                    Node {
                        value,
                        line,
                        column,
                    },
                    anchor,
                    mark,
                )?;
            }
            Event::SequenceStart(anchor, tag) => {
                b.budget(1, mark)?;
                if tag.is_some() {
                    return Err(syntax(mark, "YAML tags on lists are not supported"));
                }
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    line,
                    column,
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                b.budget(1, mark)?;
                if tag.is_some() {
                    return Err(syntax(mark, "YAML tags on mappings are not supported"));
                }
                b.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    line,
                    column,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        line,
                        column,
                        anchor,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            line,
                            column,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        entries,
                        line,
                        column,
                        anchor,
                        ..
                    }) => {
                        // yaml-rust2 marks a block mapping's start at the `:` after its
                        // first key; a reader sees the mapping begin at that key. (A flow
                        // mapping's mark, its `{`, comes before its first key and stays.)
                        let (line, column) = entries
                            .first()
                            .map(|(k, _)| (k.line, k.column))
                            .filter(|key| *key < (line, column))
                            .unwrap_or((line, column));
                        (
                            Node {
                                value: Value::Map(entries),
                                line,
                                column,
                            },
                            anchor,
                        )
                    }
                    None => return Err(syntax(mark, "unbalanced YAML structure")),
                };
                b.complete(node, anchor, mark)?;
            }
        }
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Null,
        line: 1,
        column: 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!((entries[0].0.line, entries[0].0.column), (1, 1));
        assert_eq!((entries[0].1.line, entries[0].1.column), (1, 4));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!((items[1].line, items[1].column), (4, 5));
        assert!(matches!(
            &items[1].value,
            Value::Scalar { plain: false, .. }
        ));
    }

    #[test]
    fn nulls_and_aliases() {
        let root = parse("a: ~\nb: &x [1, 2]\nc: *x\n").unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert!(matches!(entries[0].1.value, Value::Null));
        assert!(matches!(&entries[2].1.value, Value::Seq(v) if v.len() == 2));
    }

    #[test]
    fn rejects_second_document_and_tags() {
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: !!binary aGk=\n").is_err());
        assert!(parse("a: !!str 12\n").is_ok());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1);
        assert!(e.message.contains("YAML"));
    }

    #[test]
    fn billion_laughs_is_bounded() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&doc).is_err());
    }
}
