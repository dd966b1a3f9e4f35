//! Builds the generic [`Tree`] from statements, using the schema to tell blocks from leaves.
//!
//! Blocks close with `exit`, or implicitly: a statement whose keyword is not valid in the
//! current block closes blocks until one accepts it, so hand-written text that omits exits
//! reads the way it is indented. A statement may also walk several levels at once, as in
//! the product's flat form `config authority router r1 name r1`. The blocks it walks
//! through are merged with entries already opened with the same keys.
//!
//! After an unknown keyword the parser guesses what the line was, so that one typo gives
//! one error. A keyword near a block keyword opens a block of that kind that is checked
//! but kept out of the tree, so its lines and its `exit` are read as they would have been.
//! Any other unknown keyword skips the lines indented deeper than it, and then an `exit` at
//! its own indentation. The skip also ends at a line indented with other blanks (tabs where
//! the keyword's line has spaces), whose columns do not compare with the keyword's.

use std::net::IpAddr;

use super::error::{ConfigError, ConfigErrorKind, Span};
use super::lexer::{Indent, Statements, Token};
use super::schema::{self, Kind, Schema};
use super::suggest;
use super::tree::{Node, NodeId, Tree};
use super::value::{self, Value};

/// Parses statements into a tree, collecting every lexical, structural and value error.
/// Returns `None` for a text without any statement, which is reported as the only error.
pub fn parse(mut statements: Statements<'_>, errors: &mut Vec<ConfigError>) -> Option<Tree> {
    let root = Node {
        schema: &schema::ROOT,
        span: Span::new(1, 1),
        keys: Vec::new(),
        value: None,
        children: Vec::new(),
        valid: true,
    };
    let mut parser = Parser {
        tree: Tree { nodes: vec![root] },
        stack: Vec::new(),
        state: State::Start,
        skip: None,
        errors,
    };
    let mut empty = true;
    while let Some(statement) = statements.next(parser.errors) {
        empty = false;
        // A line with a lexical error is skipped whole: its remaining words would only
        // produce follow-on errors.
        if !statement.broken {
            parser.statement(statement.tokens, statement.indent);
        }
    }
    if empty {
        parser.error(Span::new(1, 1), ConfigErrorKind::Empty);
        return None;
    }
    Some(parser.tree)
}

#[derive(PartialEq)]
enum State {
    Start,
    Open,
    Closed,
}

struct Parser<'e> {
    tree: Tree,
    /// Open blocks, outermost first; empty before `config` and after its `exit`.
    stack: Vec<NodeId>,
    state: State,
    /// Lines being skipped after an unknown keyword that opened no known block.
    skip: Option<Skip>,
    errors: &'e mut Vec<ConfigError>,
}

/// The skipping that follows an unknown keyword: lines whose first word starts right of
/// `column` are taken as its block, and an `exit` at `column` after them as its end.
struct Skip {
    column: u32,
    /// The blanks before the unknown keyword.
    indent: Indent,
    skipped_any: bool,
}

fn is_root_word(text: &str) -> bool {
    text == "config" || text == "configure"
}

impl Parser<'_> {
    /// Narrows the allowed range of a leaf by its block: the prefix-length of an IPv4
    /// address is at most 32, although the type allows 128 for IPv6.
    fn allowed_in(&self, parent: NodeId, schema: &Schema, allowed: String) -> String {
        if schema.canonical() != "prefix-length" {
            return allowed;
        }
        match self.tree.node(parent).keys.first() {
            Some((_, Value::Ip(IpAddr::V4(_)))) => "0-32 for an IPv4 address".to_owned(),
            Some((_, Value::Ip(IpAddr::V6(_)))) => "0-128 for an IPv6 address".to_owned(),
            _ => allowed,
        }
    }

    fn error(&mut self, span: Span, kind: ConfigErrorKind) {
        self.errors.push(ConfigError { span, kind });
    }

    fn top(&self) -> NodeId {
        self.stack.last().copied().unwrap_or(Tree::ROOT)
    }

    fn statement(&mut self, tokens: Vec<Token>, indent: Indent) {
        let Some(first) = tokens.first() else { return };
        if self.skipped(&tokens, indent) {
            return;
        }
        let mut rest = &tokens[..];
        let mut flat = false;

        if is_root_word(&first.text) && !first.quoted {
            self.state = State::Open;
            self.stack = vec![Tree::ROOT];
            flat = tokens.len() > 1;
            rest = &tokens[1..];
        } else if self.state == State::Start {
            self.error(first.span, ConfigErrorKind::MissingRoot { found: first.text.clone() });
            self.state = State::Open;
            self.stack = vec![Tree::ROOT];
        } else if self.state == State::Closed {
            self.error(first.span, ConfigErrorKind::AfterFinalExit { keyword: first.text.clone() });
            return;
        }

        let Some(first) = rest.first() else { return };
        if first.text == "exit" && !first.quoted {
            if let Some(extra) = rest.get(1) {
                self.error(
                    extra.span,
                    ConfigErrorKind::UnexpectedToken {
                        keyword: "exit".into(),
                        token: extra.text.clone(),
                    },
                );
            }
            self.exit();
            return;
        }

        // Close blocks until one accepts the keyword.
        let Some(depth) = self.accepting_depth(&first.text) else {
            let suggestion = self.unknown_keyword(first, true);
            self.recover(rest, suggestion, (tokens[0].span.column, indent));
            return;
        };
        self.stack.truncate(depth + 1);
        self.walk(rest, flat, (tokens[0].span.column, indent));
    }

    /// Closes the innermost open block.
    fn exit(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.state = State::Closed;
        }
    }

    /// Returns the index in the stack of the innermost open block that accepts `keyword`.
    fn accepting_depth(&self, keyword: &str) -> Option<usize> {
        self.stack.iter().rposition(|&id| self.tree.node(id).schema.child(keyword).is_some())
    }

    /// Tells whether the statement `tokens`, indented with `indent`, belongs to the block of
    /// an unknown keyword, and so is skipped without a message.
    fn skipped(&mut self, tokens: &[Token], indent: Indent) -> bool {
        let Some(skip) = self.skip.take() else { return false };
        if !skip.indent.comparable(indent) {
            return false;
        }
        let first = &tokens[0];
        if first.span.column > skip.column {
            self.skip = Some(Skip { skipped_any: true, ..skip });
            return true;
        }
        let is_exit = tokens.len() == 1 && first.text == "exit" && !first.quoted;
        skip.skipped_any && is_exit && first.span.column == skip.column
    }

    /// Recovers from the unknown keyword `tokens[0]` so that the lines after it are read as
    /// they were meant. `indent` is the column of the first word of its line and the blanks
    /// before it.
    ///
    /// A suggested `exit` closes a block. A suggested block keyword opens a block of that
    /// kind, left out of the tree, so its contents are still checked and its `exit` closes
    /// it. Such a list entry keeps the keys that follow the keyword, so that references to
    /// it are known to be follow-on errors. Otherwise the lines indented deeper than
    /// `indent` are skipped.
    fn recover(
        &mut self,
        tokens: &[Token],
        suggestion: Option<&'static str>,
        indent: (u32, Indent),
    ) {
        let token = &tokens[0];
        if suggestion == Some("exit") && !self.stack.is_empty() {
            self.exit();
            return;
        }
        let block = suggestion.and_then(|keyword| {
            let depth = self.accepting_depth(keyword)?;
            let schema = self.tree.node(self.stack[depth]).schema.child(keyword)?;
            schema.is_block().then_some((depth, schema))
        });
        match block {
            Some((depth, schema)) => {
                self.stack.truncate(depth + 1);
                let id = self.tree.nodes.len();
                let keys = checked_keys(schema, &tokens[1..])
                    .filter_map(|(_, token, value)| Some((token.clone(), value.ok()?)))
                    .collect();
                self.tree.nodes.push(Node {
                    schema,
                    span: token.span,
                    keys,
                    value: None,
                    children: Vec::new(),
                    valid: false,
                });
                self.stack.push(id);
            }
            None => {
                let (column, indent) = indent;
                self.skip = Some(Skip { column, indent, skipped_any: false });
            }
        }
    }

    /// Applies the keywords of one statement from the current block downwards. `indent` is
    /// the column of the statement's first word and the blanks before it.
    fn walk(&mut self, mut tokens: &[Token], flat: bool, indent: (u32, Indent)) {
        while let Some(token) = tokens.first() {
            let parent = self.top();
            let Some(schema) = self.tree.node(parent).schema.child(&token.text) else {
                let suggestion = self.unknown_keyword(token, false);
                self.recover(tokens, suggestion, indent);
                return;
            };
            match schema.kind {
                Kind::Leaf(ty) | Kind::LeafList(ty) => {
                    self.leaf(parent, schema, ty, tokens);
                    return;
                }
                Kind::Container { .. } => {
                    let merge = flat || tokens.len() > 1;
                    self.container(parent, schema, token, merge);
                    tokens = &tokens[1..];
                }
                Kind::List { keys, .. } => {
                    let key_count = keys.len().min(tokens.len() - 1);
                    let key_tokens = &tokens[1..=key_count];
                    let merge = flat || tokens.len() > key_count + 1;
                    self.list_entry(parent, schema, token, key_tokens, merge);
                    tokens = &tokens[key_count + 1..];
                }
            }
        }
    }

    fn leaf(
        &mut self,
        parent: NodeId,
        schema: &'static Schema,
        ty: schema::Type,
        tokens: &[Token],
    ) {
        let keyword = &tokens[0];
        let Some(value_token) = tokens.get(1) else {
            self.error(
                keyword.span,
                ConfigErrorKind::MissingValue { keyword: keyword.text.clone() },
            );
            return;
        };
        if let Some(extra) = tokens.get(2) {
            self.error(
                extra.span,
                ConfigErrorKind::UnexpectedToken {
                    keyword: format!("{} {}", keyword.text, value_token.text),
                    token: extra.text.clone(),
                },
            );
        }
        let value = match value::check(ty, &value_token.text) {
            Ok(v) => v,
            Err(allowed) => {
                let allowed = self.allowed_in(parent, schema, allowed);
                self.error(
                    keyword.span,
                    ConfigErrorKind::InvalidValue {
                        keyword: keyword.text.clone(),
                        value: value_token.text.clone(),
                        allowed,
                    },
                );
                // Kept without a value, so lowering does not also report the leaf missing.
                self.add(parent, schema, keyword.span, Vec::new(), None, false);
                return;
            }
        };
        if matches!(schema.kind, Kind::Leaf(_)) {
            let earlier = self
                .tree
                .node(parent)
                .children
                .iter()
                .map(|&c| self.tree.node(c))
                .find(|n| n.keyword() == schema.canonical() && n.value.is_some());
            if let Some(earlier) = earlier {
                let first = earlier.span;
                self.error(
                    keyword.span,
                    ConfigErrorKind::DuplicateLeaf {
                        keyword: keyword.text.clone(),
                        value: value_token.text.clone(),
                        first,
                    },
                );
                return;
            }
        }
        self.add(
            parent,
            schema,
            keyword.span,
            Vec::new(),
            Some((value_token.clone(), value)),
            true,
        );
    }

    fn container(&mut self, parent: NodeId, schema: &'static Schema, token: &Token, merge: bool) {
        let parent_node = self.tree.node(parent);
        let existing = parent_node
            .children
            .iter()
            .copied()
            .find(|&c| self.tree.node(c).keyword() == schema.name);
        if let Kind::Container { choice: true, .. } = parent_node.schema.kind {
            let other = parent_node
                .children
                .iter()
                .map(|&c| self.tree.node(c))
                .find(|n| n.keyword() != schema.name);
            if let Some(other) = other {
                let (other_name, first) = (other.keyword().to_owned(), other.span);
                let choice = parent_node.schema.name;
                self.error(
                    token.span,
                    ConfigErrorKind::ChoiceConflict {
                        choice,
                        case: schema.name.to_owned(),
                        other: other_name,
                        first,
                    },
                );
            }
        }
        if let Some(existing) = existing {
            if !merge {
                let first = self.tree.node(existing).span;
                self.error(
                    token.span,
                    ConfigErrorKind::DuplicateBlock { keyword: token.text.clone(), first },
                );
            }
            self.stack.push(existing);
            return;
        }
        let id = self.add(parent, schema, token.span, Vec::new(), None, true);
        self.stack.push(id);
    }

    fn list_entry(
        &mut self,
        parent: NodeId,
        schema: &'static Schema,
        token: &Token,
        key_tokens: &[Token],
        merge: bool,
    ) {
        let mut keys = Vec::new();
        let mut valid = true;
        for (name, key, value) in checked_keys(schema, key_tokens) {
            match value {
                Ok(v) => keys.push((key.clone(), v)),
                Err(allowed) => {
                    valid = false;
                    self.error(
                        key.span,
                        ConfigErrorKind::InvalidValue {
                            keyword: format!("{} {}", token.text, name),
                            value: key.text.clone(),
                            allowed,
                        },
                    );
                }
            }
        }
        if merge && valid && !keys.is_empty() {
            let same = self.tree.node(parent).children.iter().copied().rev().find(|&c| {
                let n = self.tree.node(c);
                n.keyword() == schema.name
                    && n.keys.iter().map(|k| &k.1).eq(keys.iter().map(|k| &k.1))
            });
            if let Some(id) = same {
                self.stack.push(id);
                return;
            }
        }
        let id = self.add(parent, schema, token.span, keys, None, valid);
        self.stack.push(id);
    }

    fn add(
        &mut self,
        parent: NodeId,
        schema: &'static Schema,
        span: Span,
        keys: Vec<(Token, value::Value)>,
        value: Option<(Token, value::Value)>,
        valid: bool,
    ) -> NodeId {
        let id = self.tree.nodes.len();
        self.tree.nodes.push(Node { schema, span, keys, value, children: Vec::new(), valid });
        self.tree.nodes[parent].children.push(id);
        id
    }

    /// Reports a keyword no open block accepts, suggesting the nearest one that would fit.
    /// Returns the suggestion.
    fn unknown_keyword(&mut self, token: &Token, search_enclosing: bool) -> Option<&'static str> {
        let top = self.tree.node(self.top());
        let mut candidates: Vec<&'static str> =
            top.schema.children().iter().map(|s| s.name).collect();
        if search_enclosing {
            for &id in self.stack.iter().rev().skip(1) {
                candidates.extend(self.tree.node(id).schema.children().iter().map(|s| s.name));
            }
        }
        if !self.stack.is_empty() && search_enclosing {
            candidates.push("exit");
        }
        let suggestion = suggest::nearest(&token.text, &candidates);
        let belongs_in = path_to(top.schema, &token.text);
        let allowed =
            top.schema.children().iter().filter(|s| s.alias_of.is_none()).map(|s| s.name).collect();
        let block = top.describe();
        self.error(
            token.span,
            ConfigErrorKind::UnknownKeyword {
                keyword: token.text.clone(),
                block,
                suggestion,
                belongs_in,
                allowed,
            },
        );
        suggestion
    }
}

/// Checks the leading `key_tokens` against the key types of the list `schema`. Yields the
/// name of each key, its token, and its value or the description of what is allowed.
fn checked_keys<'t>(
    schema: &'static Schema,
    key_tokens: &'t [Token],
) -> impl Iterator<Item = (&'static str, &'t Token, Result<Value, String>)> {
    let names: &'static [&'static str] = match schema.kind {
        Kind::List { keys, .. } => keys,
        _ => &[],
    };
    names.iter().zip(key_tokens).map(move |(name, key)| {
        let ty = match schema.child(name).map(|s| &s.kind) {
            Some(Kind::Leaf(ty)) => *ty,
            _ => schema::Type::String,
        };
        (*name, key, value::check(ty, &key.text))
    })
}

/// Finds the shallowest block below `schema` that accepts `keyword` and returns its path,
/// such as `security-key-management > key-exchange-algorithm > ml-kem`.
fn path_to(schema: &'static Schema, keyword: &str) -> Option<String> {
    // Breadth-first, so the nearest block wins; the schema is a finite tree.
    let mut queue: std::collections::VecDeque<(&'static Schema, Vec<&'static str>)> =
        schema.children().iter().filter(|s| s.is_block()).map(|s| (s, vec![s.name])).collect();
    while let Some((block, path)) = queue.pop_front() {
        if block.child(keyword).is_some() {
            return Some(path.join(" > "));
        }
        for child in block.children().iter().filter(|s| s.is_block()) {
            let mut longer = path.clone();
            longer.push(child.name);
            queue.push_back((child, longer));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::error_messages;

    #[test]
    fn unknown_block_after_tab_ends_at_spaces() {
        // Line 5 is indented more than line 4 by columns, but not as it is shown.
        let text = "config\nauthority\n    router r1\n\tqqqqq\n        locaton x\n";
        let errors = error_messages(text);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("line 4, column 1: indentation with tabs"), "{}", errors[0]);
        assert!(errors[1].starts_with("line 4, column 2: unknown keyword qqqqq"), "{}", errors[1]);
        assert!(
            errors[2].starts_with("line 5, column 9: unknown keyword locaton"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn unknown_block_skipped_with_tabs() {
        let text = "config\nauthority\n\trouter r1\n\tqqqqq\n\t\tlocaton x\n\texit\n";
        let errors = error_messages(text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("line 4, column 2: unknown keyword qqqqq"), "{}", errors[0]);
    }

    #[test]
    fn empty_text_one_error() {
        let expected = "line 1, column 1: configuration is empty: expected config followed by \
                        an authority block";
        for text in ["", "\n\n", "  \t \r\n", "# only a comment\n"] {
            assert_eq!(error_messages(text), [expected], "{text:?}");
        }
    }
}
