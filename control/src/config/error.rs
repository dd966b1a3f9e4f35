//! Errors and warnings found while reading a configuration, each tied to a line and column.

use std::error::Error;
use std::fmt;

/// A position in the configuration text: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub fn new(line: u32, column: u32) -> Self {
        Span { line, column }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Names listed at most in a message about an undefined reference.
const MAX_LISTED: usize = 8;

/// One problem that makes a configuration unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub span: Span,
    pub kind: ConfigErrorKind,
}

/// The kind of problem, grouped by where it was found: text, structure, values, model.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    // Text (lexer).
    /// A quoted string has no closing quote: it reaches the end of the text, or runs on to
    /// a later line whose quote is followed by more words.
    UnterminatedString { opened: Span },
    /// A backslash escape other than `\"`, `\\`, `\n`, `\t` or `\r`.
    UnknownEscape { escape: char },
    /// A `"` inside a bare word.
    QuoteInsideWord { word: String },
    /// A control character (other than a tab or line end) in a word or quoted string.
    ControlCharacter { character: char },
    /// A line indented with tabs where an earlier line is indented with spaces, or the
    /// reverse, or a line indented with both.
    MixedIndentation {
        /// The blanks that indent this line: `tabs`, `spaces` or `tabs and spaces`.
        found: &'static str,
        /// The first indented line, and its blanks, when it comes before this one.
        first: Option<(u32, &'static str)>,
        /// The lines after this one whose indentation mixes too.
        more_lines: u32,
    },

    // Structure (parser).
    /// The text does not start with `config` or `configure`.
    MissingRoot { found: String },
    /// The text contains no statement at all.
    Empty,
    /// A keyword that is valid neither in the current block nor in any enclosing one.
    UnknownKeyword {
        keyword: String,
        block: String,
        /// A keyword valid here that is a few edits away.
        suggestion: Option<&'static str>,
        /// The path below `block` where the keyword is valid, when it is valid deeper down.
        belongs_in: Option<String>,
        allowed: Vec<&'static str>,
    },
    /// A leaf keyword with no value after it.
    MissingValue { keyword: String },
    /// Words left over after a complete statement.
    UnexpectedToken { keyword: String, token: String },
    /// A statement after the `exit` that closes `config`.
    AfterFinalExit { keyword: String },
    /// A list entry with no value for one of its keys, neither on the opening line nor inside.
    MissingKey { list: String, key: &'static str },
    /// The key leaf inside a list entry disagrees with the key on the opening line.
    KeyMismatch { list: String, key: &'static str, inside: String, outside: String },
    /// The same list entry opened twice.
    DuplicateEntry { list: String, key: String, first: Span },
    /// The same container opened twice in one block.
    DuplicateBlock { keyword: String, first: Span },
    /// The same leaf set twice in one block.
    DuplicateLeaf { keyword: String, value: String, first: Span },
    /// Two cases of one choice set in the same block.
    ChoiceConflict { choice: &'static str, case: String, other: String, first: Span },
    /// Two leaves that exclude each other (`content` and `file`, `peer` and `next-hop`).
    Conflict { keyword: String, other: &'static str },
    /// A block that needs one of several leaves and has none.
    MissingOneOf { block: String, one_of: &'static [&'static str] },
    /// A block without a leaf it needs.
    MissingLeaf { block: String, keyword: &'static str },

    // Values (schema types).
    /// A number or word outside what the keyword accepts; `allowed` describes the range.
    InvalidValue { keyword: String, value: String, allowed: String },
    /// A key or IV that is malformed; the value itself is not repeated in the message.
    InvalidSecret { keyword: &'static str, allowed: String },

    // Model (validation across the tree).
    /// A reference to a tenant, service, peer, security policy, node or interface that is
    /// not defined.
    UndefinedReference { keyword: String, kind: &'static str, name: String, defined: Vec<String> },
    /// Two routers with the same `peering-common-name`.
    DuplicatePeeringCommonName { name: String, router: String, other_router: String },
    /// A `dataplane` driver whose device-interfaces lack the binding it needs.
    MissingBinding { device_interface: String, driver: &'static str, needs: &'static str },
    /// A gateway or address of the wrong IP family for its interface address.
    FamilyMismatch { keyword: String, value: String, expected: &'static str },
    /// A device that two device-interfaces of one node bind: the same Linux interface (by
    /// `interface-name` or by the `iface=` of a `vdev`), `vdev` device name or PCI address.
    DuplicateBinding {
        keyword: &'static str,
        value: String,
        /// The kind of device as messages name it: `device` or `Linux interface`.
        device_kind: &'static str,
        /// The device, as compared: the Linux interface, the vdev's name or the PCI address
        /// in full form.
        device: String,
        /// The device-interface that binds it first.
        other: String,
        /// The keyword by which `other` binds it.
        other_keyword: &'static str,
        first: Span,
    },
    /// A value that is valid alone but not with another one in the same block.
    Inconsistent { keyword: String, value: String, reason: String },
}

/// Characters of a value shown in a message; a longer value is cut there and ends in `…`.
const MAX_SHOWN_CHARS: usize = 64;

/// A value from the configuration text as a message shows it: cut to [`MAX_SHOWN_CHARS`]
/// characters, with control characters escaped.
struct Clip<'a>(&'a str);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.char_indices().nth(MAX_SHOWN_CHARS).map(|(i, _)| i);
        let shown = &self.0[..cut.unwrap_or(self.0.len())];
        f.write_str(&crate::printable::escape_control(shown))?;
        if cut.is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span, self.kind)
    }
}

impl Error for ConfigError {}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind as K;
        match self {
            K::UnterminatedString { opened } => write!(
                f,
                "quoted string opened at line {}, column {} is not closed: add the closing \"",
                opened.line, opened.column
            ),
            K::UnknownEscape { escape } => write!(
                f,
                "unknown escape \\{escape} in quoted string: use \\\", \\\\, \\n, \\t or \\r"
            ),
            K::QuoteInsideWord { word } => {
                write!(f, "unexpected quote inside {}: quote the whole value", Clip(word))
            }
            K::ControlCharacter { character } => write!(
                f,
                "control character U+{:04X} in a value: expected printable text",
                u32::from(*character)
            ),
            K::MixedIndentation { found, first, more_lines } => {
                write!(f, "indentation with {found}")?;
                if let Some((line, first)) = first {
                    write!(f, ", but line {line} is indented with {first}")?;
                }
                match more_lines {
                    0 => {}
                    1 => write!(f, " (and 1 more line after this one)")?,
                    n => write!(f, " (and {n} more lines after this one)")?,
                }
                write!(f, ": indent every line with spaces, or every line with tabs")
            }
            K::MissingRoot { found } => {
                write!(f, "{}: the configuration must start with config or configure", Clip(found))
            }
            K::Empty => {
                write!(f, "configuration is empty: expected config followed by an authority block")
            }
            K::UnknownKeyword { keyword, block, suggestion, belongs_in, allowed } => {
                write!(f, "unknown keyword {} in {block}", Clip(keyword))?;
                match (suggestion, belongs_in) {
                    (Some(s), _) => write!(f, ": did you mean {s}?"),
                    (None, Some(path)) => write!(f, ": it belongs in {path}"),
                    (None, None) => write!(f, ": allowed here: {}", allowed.join(", ")),
                }
            }
            K::MissingValue { keyword } => write!(f, "{keyword}: missing value"),
            K::UnexpectedToken { keyword, token } => {
                write!(f, "{keyword}: unexpected {} at the end of the statement", Clip(token))
            }
            K::AfterFinalExit { keyword } => {
                write!(f, "{keyword}: statement after the exit that closes config")
            }
            K::MissingKey { list, key } => {
                write!(f, "{list}: missing {key}: give it after {list} or as a {key} line inside")
            }
            K::KeyMismatch { list, key, inside, outside } => {
                write!(f, "{key} {inside}: does not match the {list} key {outside}")
            }
            K::DuplicateEntry { list, key, first } => {
                write!(f, "{list} {key}: duplicate entry, first defined at line {}", first.line)
            }
            K::DuplicateBlock { keyword, first } => {
                write!(f, "{keyword}: duplicate block, first opened at line {}", first.line)
            }
            K::DuplicateLeaf { keyword, value, first } => {
                write!(
                    f,
                    "{keyword} {}: set twice in one block, first at line {}",
                    Clip(value),
                    first.line
                )
            }
            K::ChoiceConflict { choice, case, other, first } => write!(
                f,
                "{case}: {choice} takes one case, {other} is already set at line {}",
                first.line
            ),
            K::Conflict { keyword, other } => {
                write!(f, "{keyword}: cannot be set together with {other}")
            }
            K::MissingOneOf { block, one_of } => {
                write!(f, "{block}: needs one of {}", one_of.join(", "))
            }
            K::MissingLeaf { block, keyword } => write!(f, "{block}: missing {keyword}"),
            K::InvalidSecret { keyword, allowed } => {
                write!(f, "{keyword} (value not shown): must be {allowed}")
            }
            K::InvalidValue { keyword, value, allowed } => {
                write!(f, "{keyword} {}: must be {allowed}", Clip(value))
            }
            K::UndefinedReference { keyword, kind, name, defined } => {
                let name = Clip(name);
                write!(f, "{keyword} {name}: no {kind} {name} is defined")?;
                match defined.len() {
                    0 => write!(f, " (none are)"),
                    n if n <= MAX_LISTED => write!(f, " (defined: {})", defined.join(", ")),
                    n => write!(
                        f,
                        " (defined: {} and {} more)",
                        defined[..MAX_LISTED].join(", "),
                        n - MAX_LISTED
                    ),
                }
            }
            K::DuplicatePeeringCommonName { name, router, other_router } => write!(
                f,
                "peering-common-name {name}: router {router} uses the same name as router \
                 {other_router}, but it must be unique per router"
            ),
            K::MissingBinding { device_interface, driver, needs } => {
                write!(f, "device-interface {device_interface}: driver {driver} needs {needs}")
            }
            K::FamilyMismatch { keyword, value, expected } => {
                write!(f, "{keyword} {}: must be an {expected} address", Clip(value))
            }
            K::DuplicateBinding {
                keyword,
                value,
                device_kind,
                device,
                other,
                other_keyword,
                first,
            } => {
                write!(f, "{keyword} {}: ", Clip(value))?;
                if device != value {
                    write!(f, "{device_kind} {} ", Clip(device))?;
                }
                write!(f, "already bound by device-interface {other}")?;
                if other_keyword != keyword {
                    write!(f, " through its {other_keyword}")?;
                }
                write!(
                    f,
                    " at line {}; expected a device that no other device-interface of the node \
                     uses",
                    first.line
                )
            }
            K::Inconsistent { keyword, value, reason } => {
                write!(f, "{keyword} {}: {reason}", Clip(value))
            }
        }
    }
}

/// A setting that works but that the product guide warns about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub span: Span,
    pub kind: ConfigWarningKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarningKind {
    /// `ml-kem` as the only key exchange algorithm.
    MlKemNotFips { keyword: &'static str },
    /// ESKM is enabled and a router has no `peering-common-name`.
    MissingPeeringCommonName { router: String },
    /// ESKM is enabled without any `trusted-ca-certificate`.
    SelfSigned,
    /// A neighborhood pair that could not become a peer path.
    NoGeneratedAdjacency { router: String, peer: String, neighborhood: String, reason: String },
    /// A `peering-common-name` on a peer that differs from the remote router's own.
    PeerCommonNameMismatch { peer: String, configured: String, remote: String },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.span, self.kind)
    }
}

impl fmt::Display for ConfigWarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigWarningKind as W;
        match self {
            W::MlKemNotFips { keyword } => write!(
                f,
                "{keyword} ml-kem: ml-kem alone is not FIPS 140-3 certified; use diffie-hellman \
                 or diffie-hellman-ml-kem where FIPS 140-3 is required"
            ),
            W::MissingPeeringCommonName { router } => write!(
                f,
                "router {router}: enhanced-security-key-management is on but the router has no \
                 peering-common-name, so its router name is sent in clear in BFD"
            ),
            W::SelfSigned => write!(
                f,
                "enhanced-security-key-management true: no trusted-ca-certificate is configured, \
                 so routers use self-signed certificates that no CA vouches for"
            ),
            W::NoGeneratedAdjacency { router, peer, neighborhood, reason } => write!(
                f,
                "neighborhood {neighborhood}: no adjacency generated from router {router} to \
                 {peer}: {reason}"
            ),
            W::PeerCommonNameMismatch { peer, configured, remote } => write!(
                f,
                "peer {peer}: peering-common-name {configured} differs from the remote router's \
                 {remote}, so its certificate check will fail"
            ),
        }
    }
}

/// Every error and warning found in one configuration text, in line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn sort(&mut self) {
        self.errors.sort_by_key(|e| e.span);
        self.errors.dedup();
        self.warnings.sort_by_key(|w| w.span);
        self.warnings.dedup();
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Error for ConfigErrors {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.errors.first().map(|e| e as &(dyn Error + 'static))
    }
}
