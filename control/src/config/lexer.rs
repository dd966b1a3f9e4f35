//! Splits configuration text into statements: one per line, each a list of words.
//!
//! A word is a run of non-blank characters or a double-quoted string. Quoted strings may
//! span lines (certificate `content`) and take the escapes `\"`, `\\`, `\n`, `\t` and `\r`.
//! A `#` that starts a word begins a comment that runs to the end of the line. A `#` inside
//! a word or a quoted string is an ordinary character. Lines end in LF, CRLF or a lone CR,
//! as files from old Mac editors have.
//!
//! Indentation matters only to the parser's recovery after an unknown keyword, which
//! compares the columns of first words. A tab counts as one column there, so a text must
//! indent with spaces or with tabs, not both: a line whose indentation differs from the
//! first indented line's, or mixes the two, is an error.

use super::error::{ConfigError, ConfigErrorKind, Span};

/// One word of a statement, with the position of its first character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

/// The words of one line; a multi-line quoted string belongs to the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub tokens: Vec<Token>,
    /// A lexical error was reported in this line, so its words are incomplete.
    pub broken: bool,
    /// The blanks before the first word.
    pub indent: Indent,
}

/// The blanks that indent a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Indent {
    /// No indentation: the first word is in column 1.
    #[default]
    None,
    /// Spaces, or blanks other than tabs.
    Spaces,
    Tabs,
    /// Tabs and other blanks.
    Mixed,
}

impl Indent {
    /// Returns the indentation with the blank `c` added.
    fn add(self, c: char) -> Indent {
        let tab = c == '\t';
        match self {
            Indent::None if tab => Indent::Tabs,
            Indent::None => Indent::Spaces,
            Indent::Spaces if tab => Indent::Mixed,
            Indent::Tabs if !tab => Indent::Mixed,
            same => same,
        }
    }

    /// Tells whether the columns of lines indented with `self` and with `other` compare as
    /// they look, whatever the width of a tab.
    pub fn comparable(self, other: Indent) -> bool {
        match (self, other) {
            (Indent::None, _) | (_, Indent::None) => true,
            (Indent::Mixed, _) | (_, Indent::Mixed) => false,
            (one, other) => one == other,
        }
    }

    /// Returns the name of the indentation as messages show it.
    fn describe(self) -> &'static str {
        match self {
            Indent::None => "nothing",
            Indent::Spaces => "spaces",
            Indent::Tabs => "tabs",
            Indent::Mixed => "tabs and spaces",
        }
    }
}

/// The statements of a text, read one at a time so that the words of only one line are
/// held at once.
pub struct Statements<'a> {
    lexer: Lexer<'a>,
    /// The first line indented with spaces only or tabs only, and its indentation.
    first_indent: Option<(u32, Indent)>,
    /// The first line whose indentation mixes with `first_indent` or within itself.
    mixed: Option<(u32, Indent)>,
    /// Lines after `mixed` whose indentation mixes too.
    more_mixed: u32,
}

impl<'a> Statements<'a> {
    pub fn new(text: &'a str) -> Self {
        Statements {
            lexer: Lexer { chars: text.chars().peekable(), line: 1, column: 1 },
            first_indent: None,
            mixed: None,
            more_mixed: 0,
        }
    }

    /// Returns the next non-empty statement, or `None` at the end of the text. Lexical
    /// errors go to `errors`, and mixed indentation goes there once, at the end.
    pub fn next(&mut self, errors: &mut Vec<ConfigError>) -> Option<Statement> {
        let lexer = &mut self.lexer;
        let mut tokens = Vec::new();
        let mut broken = false;
        let mut indent = Indent::None;
        // The line of the statement's first word; `None` until a word starts.
        let mut start_line = None;
        while let Some(&c) = lexer.chars.peek() {
            let before = errors.len();
            match c {
                // The CR of a CRLF ends the statement, and the LF then ends an empty one.
                '\n' | '\r' => {
                    lexer.bump();
                    if let Some(line) = start_line {
                        self.note_indent(line, indent);
                        return Some(Statement { tokens, broken, indent });
                    }
                    indent = Indent::None;
                }
                c if c.is_whitespace() => {
                    if start_line.is_none() {
                        indent = indent.add(c);
                    }
                    lexer.bump();
                }
                '#' => lexer.skip_to_line_end(),
                '"' => {
                    start_line.get_or_insert(lexer.line);
                    tokens.extend(lexer.quoted(errors));
                }
                _ => {
                    start_line.get_or_insert(lexer.line);
                    tokens.extend(lexer.word(errors));
                }
            }
            broken |= errors.len() > before;
        }
        if let Some(line) = start_line {
            self.note_indent(line, indent);
            return Some(Statement { tokens, broken, indent });
        }
        self.report_mixed_indent(errors);
        None
    }

    /// Records the indentation of the statement that starts on `line`.
    fn note_indent(&mut self, line: u32, indent: Indent) {
        if indent == Indent::None {
            return;
        }
        if indent != Indent::Mixed && self.first_indent.is_none() {
            self.first_indent = Some((line, indent));
        }
        let same = self.first_indent.is_some_and(|(_, first)| first == indent);
        if same {
            return;
        }
        match self.mixed {
            None => self.mixed = Some((line, indent)),
            Some(_) => self.more_mixed = self.more_mixed.saturating_add(1),
        }
    }

    /// Reports the first line with mixed indentation, once, with the count of the others.
    fn report_mixed_indent(&mut self, errors: &mut Vec<ConfigError>) {
        let Some((line, indent)) = self.mixed.take() else { return };
        let first = self
            .first_indent
            .filter(|&(first, _)| first < line)
            .map(|(first, kind)| (first, kind.describe()));
        errors.push(ConfigError {
            span: Span::new(line, 1),
            kind: ConfigErrorKind::MixedIndentation {
                found: indent.describe(),
                first,
                more_lines: self.more_mixed,
            },
        });
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn span(&self) -> Span {
        Span::new(self.line, self.column)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        let line_end = c == '\n' || (c == '\r' && self.chars.peek() != Some(&'\n'));
        if line_end {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn skip_to_line_end(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.bump();
        }
    }

    fn word(&mut self, errors: &mut Vec<ConfigError>) -> Option<Token> {
        let span = self.span();
        let mut text = String::new();
        let mut has_quote = false;
        let mut control = None;
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() {
                break;
            }
            if c == '"' {
                has_quote = true;
            }
            if c.is_control() && control.is_none() {
                control = Some((self.span(), c));
            }
            text.push(c);
            self.bump();
        }
        if let Some((span, character)) = control {
            errors
                .push(ConfigError { span, kind: ConfigErrorKind::ControlCharacter { character } });
            return None;
        }
        if has_quote {
            errors
                .push(ConfigError { span, kind: ConfigErrorKind::QuoteInsideWord { word: text } });
            return None;
        }
        Some(Token { text, quoted: false, span })
    }

    /// Reads a quoted string. A string that reaches the end of the text, or that spans
    /// lines and ends in a quote with more words after it on its line, is taken as a
    /// missing closing quote. It is reported at its opening quote, and lexing resumes at
    /// the end of that line, so the lines after it are read as usual.
    fn quoted(&mut self, errors: &mut Vec<ConfigError>) -> Option<Token> {
        let span = self.span();
        let opening = (self.chars.clone(), self.line, self.column);
        let mut escape_errors = Vec::new();
        let text = self.quoted_text(&mut escape_errors);
        let closed = text.is_some() && (self.line == span.line || !self.words_follow());
        let Some(text) = text.filter(|_| closed) else {
            (self.chars, self.line, self.column) = opening;
            self.skip_to_line_end();
            errors.push(ConfigError {
                span,
                kind: ConfigErrorKind::UnterminatedString { opened: span },
            });
            return None;
        };
        let valid = escape_errors.is_empty();
        errors.append(&mut escape_errors);

        // A word glued to the closing quote (`"a"b`) is as wrong as a quote inside a word.
        if let Some(&c) = self.chars.peek()
            && !c.is_whitespace()
        {
            let rest = self.word(errors).map(|t| t.text).unwrap_or_default();
            errors.push(ConfigError {
                span,
                kind: ConfigErrorKind::QuoteInsideWord { word: format!("\"{text}\"{rest}") },
            });
            return None;
        }
        valid.then_some(Token { text, quoted: true, span })
    }

    /// Reads from an opening quote to the closing one and returns the text between them,
    /// or `None` at the end of the text. Unknown escapes go to `errors`.
    fn quoted_text(&mut self, errors: &mut Vec<ConfigError>) -> Option<String> {
        self.bump();
        let mut text = String::new();
        loop {
            let escape_span = self.span();
            match self.bump()? {
                '"' => return Some(text),
                '\\' => match self.bump()? {
                    '"' => text.push('"'),
                    '\\' => text.push('\\'),
                    'n' => text.push('\n'),
                    't' => text.push('\t'),
                    'r' => text.push('\r'),
                    other => errors.push(ConfigError {
                        span: escape_span,
                        kind: ConfigErrorKind::UnknownEscape { escape: other },
                    }),
                },
                // Line ends inside certificates may be CRLF or CR; keep the text as LF only.
                '\r' if self.chars.peek() == Some(&'\n') => {}
                '\r' => text.push('\n'),
                c if c.is_control() && c != '\n' && c != '\t' => errors.push(ConfigError {
                    span: escape_span,
                    kind: ConfigErrorKind::ControlCharacter { character: c },
                }),
                c => text.push(c),
            }
        }
    }

    /// Tells whether a word follows on the current line, directly or after blanks. A
    /// comment is no word.
    fn words_follow(&self) -> bool {
        let mut rest = self.chars.clone().skip_while(|&c| c == ' ' || c == '\t');
        !matches!(rest.next(), None | Some('\n' | '\r' | '#'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` into all its statements.
    fn tokenize(text: &str, errors: &mut Vec<ConfigError>) -> Vec<Statement> {
        let mut statements = Statements::new(text);
        std::iter::from_fn(|| statements.next(errors)).collect()
    }

    fn words(text: &str) -> Vec<Vec<String>> {
        let mut errors = Vec::new();
        let statements = tokenize(text, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        statements.into_iter().map(|s| s.tokens.into_iter().map(|t| t.text).collect()).collect()
    }

    #[test]
    fn lexer_control_character_rejected() {
        for (text, column) in [("name svr\0demo\n", 9), ("name \"svr\u{7}demo\"\n", 10)] {
            let mut errors = Vec::new();
            tokenize(text, &mut errors);
            assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
            assert!(errors[0].to_string().contains("control character U+"), "{}", errors[0]);
            assert_eq!(errors[0].span.column, column, "{text:?}");
        }
    }

    #[test]
    fn lexer_words_and_lines() {
        assert_eq!(words("a b\n\n  c   d e\n"), vec![vec!["a", "b"], vec!["c", "d", "e"]]);
    }

    #[test]
    fn lexer_quoted_escapes() {
        assert_eq!(words(r#"x "a \"b\" \\ \n""#), vec![vec!["x", "a \"b\" \\ \n"]]);
    }

    #[test]
    fn lexer_multiline_string_stays_on_its_line() {
        assert_eq!(
            words("content \"l1\nl2\"\nnext"),
            vec![vec!["content", "l1\nl2"], vec!["next"]]
        );
    }

    #[test]
    fn lexer_comments() {
        assert_eq!(
            words("# c\na b # c\nx a#b \"#q\""),
            vec![vec!["a", "b"], vec!["x", "a#b", "#q"]]
        );
    }

    #[test]
    fn lexer_columns() {
        let mut errors = Vec::new();
        let s = tokenize("  ab\tc\n", &mut errors);
        assert_eq!(s[0].tokens[0].span, Span::new(1, 3));
        assert_eq!(s[0].tokens[1].span, Span::new(1, 6));
    }

    #[test]
    fn lexer_cr_only_lines() {
        assert_eq!(words("a b\rc\r\rd\r"), vec![vec!["a", "b"], vec!["c"], vec!["d"]]);
        let mut errors = Vec::new();
        let statements = tokenize("a\r\rb # c\rd\r", &mut errors);
        assert_eq!(statements[1].tokens[0].span, Span::new(3, 1));
        assert_eq!(statements[2].tokens[0].span, Span::new(4, 1));
    }

    #[test]
    fn lexer_cr_only_inside_quotes() {
        assert_eq!(
            words("content \"l1\rl2\"\rnext"),
            vec![vec!["content", "l1\nl2"], vec!["next"]]
        );
    }

    /// Returns the messages of the errors in `text`.
    fn error_messages(text: &str) -> Vec<String> {
        let mut errors = Vec::new();
        tokenize(text, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn lexer_tab_after_spaces_rejected() {
        let text = "config\n  authority\n\trouter r1\n\t\tnode n1\n  name a\n";
        assert_eq!(
            error_messages(text),
            ["line 3, column 1: indentation with tabs, but line 2 is indented with spaces \
                 (and 1 more line after this one): indent every line with spaces, or every line \
                 with tabs"]
        );
    }

    #[test]
    fn lexer_spaces_after_tabs_rejected() {
        let text = "config\n\tauthority\n  router r1\n";
        assert_eq!(
            error_messages(text),
            ["line 3, column 1: indentation with spaces, but line 2 is indented with tabs: \
                 indent every line with spaces, or every line with tabs"]
        );
    }

    #[test]
    fn lexer_tabs_and_spaces_in_one_line_rejected() {
        assert_eq!(
            error_messages("config\n \tauthority\n"),
            ["line 2, column 1: indentation with tabs and spaces: indent every line with \
                 spaces, or every line with tabs"]
        );
    }

    #[test]
    fn lexer_one_kind_of_indentation_accepted() {
        assert_eq!(error_messages("config\n\tauthority\n\t\trouter r1\n"), Vec::<String>::new());
        assert_eq!(error_messages("config\n authority\n  router r1\n"), Vec::<String>::new());
        // Blanks after the first word, blank lines, comments and quoted text do not count.
        let text = "config\tx\n \t\n\t# tab\n content \"a\n\tb\"\n";
        assert_eq!(error_messages(text), Vec::<String>::new());
    }

    #[test]
    fn lexer_crlf() {
        assert_eq!(words("a b\r\nc\r\n"), vec![vec!["a", "b"], vec!["c"]]);
    }
}
