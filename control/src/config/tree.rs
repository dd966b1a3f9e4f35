//! The generic tree the parser builds: blocks and leaves with their positions, before any
//! meaning is given to them.

use super::error::Span;
use super::lexer::Token;
use super::schema::{Kind, Schema};
use super::value::Value;

/// Index of a node in its [`Tree`].
pub type NodeId = usize;

/// One block or leaf.
// NOTE: a node takes 144 bytes before its strings, so the tree is several times the size
// of its text. A generated 14 MB file of services peaked at 148 MB in a debug build of
// `svrd --check`.
#[derive(Debug)]
pub struct Node {
    pub schema: &'static Schema,
    /// Position of the keyword.
    pub span: Span,
    /// Keys written on the opening line of a list entry, checked against the key types.
    pub keys: Vec<(Token, Value)>,
    /// The value of a leaf.
    pub value: Option<(Token, Value)>,
    pub children: Vec<NodeId>,
    /// False when a key failed its type check, or for a block opened by a misspelt
    /// keyword: the entry is parsed but not lowered.
    pub valid: bool,
}

impl Node {
    /// The canonical keyword (aliases resolved).
    pub fn keyword(&self) -> &'static str {
        self.schema.canonical()
    }

    /// Describes the block for messages: `router r1`, `bfd`.
    pub fn describe(&self) -> String {
        let mut out = self.schema.name.to_owned();
        for (token, _) in &self.keys {
            out.push(' ');
            out.push_str(&token.text);
        }
        out
    }
}

/// The parsed text; node 0 is the root (`config`).
#[derive(Debug)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub const ROOT: NodeId = 0;

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Returns the names of the entries of list `keyword` that are not lowered, each from
    /// its first key on the opening line or else from the key leaf inside.
    pub fn unlowered_names(&self, keyword: &str) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| !node.valid && node.keyword() == keyword)
            .filter_map(|(id, node)| match (node.keys.first(), &node.schema.kind) {
                (Some((token, _)), _) => Some(token.text.clone()),
                (None, Kind::List { keys, .. }) => {
                    let key = keys.first()?;
                    let leaf =
                        self.children_named(id, key).find_map(|(_, leaf)| leaf.value.as_ref());
                    leaf.map(|(token, _)| token.text.clone())
                }
                (None, _) => None,
            })
            .collect()
    }

    /// The children of `id` with keyword `keyword` (canonical), in text order.
    pub fn children_named<'t, 'k>(
        &'t self,
        id: NodeId,
        keyword: &'k str,
    ) -> impl Iterator<Item = (NodeId, &'t Node)> + use<'t, 'k> {
        self.nodes[id]
            .children
            .iter()
            .map(|&c| (c, &self.nodes[c]))
            .filter(move |(_, n)| n.keyword() == keyword)
    }
}
