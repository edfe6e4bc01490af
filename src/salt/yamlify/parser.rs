//! The YAML 1.1 reader for one-line CLI arguments, as PyYAML with Salt's loader reads them
//! (the typing of plain scalars is `resolve.rs`).
//!
//! Salt's `yamlify_arg` runs `yaml.safe_load` on every string argument of a runner
//! (`salt.utils.yaml`, PyYAML's YAML 1.1 resolver plus Salt's constructors). YAML 1.2
//! parsers type plain scalars differently (`12:30`, `-0644`, `on`, `1e3`, `0o17`), so this
//! small reader does what PyYAML does for the documents `yamlify_arg` ever parses: one line
//! (strings with a tab, CR or LF are never parsed), plain and quoted scalars, flow
//! sequences and mappings, one-pair block mappings and block sequences, tags, anchors,
//! aliases and comments. Anything it does not understand is an error, and `yamlify_arg`
//! then keeps the original string, as Salt does when PyYAML raises.
//! `tests/data/yamlify_arg.json` (made by `scripts/yamlify-table` from Salt's own parser)
//! pins the results.

use std::collections::HashMap;

use super::resolve::{construct_bool, construct_float, construct_int, resolve_plain};

/// A parsed YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `~`, `null`, an empty value.
    Null,
    /// YAML 1.1 booleans (`yes`, `On`, `FALSE`, …).
    Bool(bool),
    /// Integers (decimal, octal, hex, binary, base 60).
    Int(i128),
    /// Floats, including `.inf` and `.nan`.
    Float(f64),
    /// Strings (timestamps too: Salt's loader keeps them as text).
    Str(String),
    /// Sequences.
    Seq(Vec<Node>),
    /// Mappings in document order.
    Map(Vec<(Node, Node)>),
    /// A value of a type Salt does not pass on (`!!binary`, sets, …).
    Other,
}

/// Why a document could not be read (the caller keeps the original string).
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid;

/// A reader step: a value, or [`Invalid`].
pub(crate) type Parsed<T> = Result<T, Invalid>;

/// Reads one single-line YAML document; `Node::Null` for an empty one.
pub(crate) fn load(text: &str) -> Parsed<Node> {
    let mut p = Parser {
        c: text.chars().collect(),
        pos: 0,
        anchors: HashMap::new(),
        depth: 0,
        alias_budget: text.len().saturating_mul(8).saturating_add(4096),
    };
    p.document()
}

struct Parser {
    c: Vec<char>,
    pos: usize,
    anchors: HashMap<String, Node>,
    /// Collections open around the current position.
    depth: usize,
    /// Bytes of text aliases may still copy: 8 times the document plus 4 KiB, so no
    /// document reads into much more than its own size (`[&a "…", *a, *a, …]` would
    /// otherwise copy a long string once per alias). Past it, the string is kept.
    alias_budget: usize,
}

/// Deepest nesting read (Python's recursion limit stops PyYAML near 1000; a bound keeps
/// a hostile argument from exhausting the stack here). Deeper input keeps its string.
const MAX_DEPTH: usize = 64;

/// A tag on a node.
#[derive(Debug, Clone, PartialEq)]
enum Tag {
    /// `!`: the scalar is a string.
    NonSpecific,
    /// `!!suffix`.
    Core(String),
}

const FLOW_INDICATORS: [char; 5] = [',', '[', ']', '{', '}'];

impl Parser {
    fn peek(&self) -> Option<char> {
        self.c.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.c.get(self.pos + offset).copied()
    }

    fn blank_at(&self, offset: usize) -> bool {
        self.peek_at(offset).is_none_or(|c| c == ' ')
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, ch)| self.peek_at(i) == Some(ch))
    }

    /// Skips spaces and a comment (a `#` at a token boundary runs to the end).
    fn skip_blank(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
        if self.peek() == Some('#') {
            self.pos = self.c.len();
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.c.len()
    }

    fn document(&mut self) -> Parsed<Node> {
        self.skip_blank();
        if self.starts_with("---") && self.blank_at(3) {
            self.pos += 3;
            self.skip_blank();
        } else if (self.starts_with("...") && self.blank_at(3)) || self.peek() == Some('%') {
            return Err(Invalid);
        }
        if self.at_end() {
            return Ok(Node::Null);
        }
        let node = self.block_node()?;
        self.skip_blank();
        if self.at_end() {
            Ok(node)
        } else {
            Err(Invalid)
        }
    }

    /// A node at the top level or as a block-sequence entry: a block sequence, a one-pair
    /// block mapping, or a flow node / scalar.
    fn block_node(&mut self) -> Parsed<Node> {
        let (tag, anchor) = self.properties(false)?;
        let node = match self.peek() {
            Some('-') if self.blank_at(1) && tag.is_none() && anchor.is_none() => {
                return self.block_sequence();
            }
            Some('?' | ':') if self.blank_at(1) => return Err(Invalid),
            Some('|' | '>') => self.block_scalar(tag.as_ref())?,
            None => self.tagged_scalar(tag.as_ref(), String::new(), true)?,
            Some(_) => {
                let key = self.flow_node_with(tag, false)?;
                let save = self.pos;
                while self.peek() == Some(' ') {
                    self.pos += 1;
                }
                if self.peek() == Some(':') && self.blank_at(1) {
                    self.pos += 1;
                    return self.block_mapping(key, anchor);
                }
                self.pos = save;
                key
            }
        };
        self.remember(anchor, &node);
        Ok(node)
    }

    fn block_sequence(&mut self) -> Parsed<Node> {
        self.enter()?;
        self.pos += 1;
        self.skip_blank();
        let item = if self.at_end() {
            Node::Null
        } else {
            self.block_node()?
        };
        self.depth -= 1;
        Ok(Node::Seq(vec![item]))
    }

    /// One more level of nesting, refused past `MAX_DEPTH`.
    fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        Ok(())
    }

    /// `key: value` on one line; the value may not be another mapping or a sequence.
    fn block_mapping(&mut self, key: Node, anchor: Option<String>) -> Parsed<Node> {
        hashable(&key)?;
        self.skip_blank();
        let value = if self.at_end() {
            Node::Null
        } else {
            let (tag, value_anchor) = self.properties(false)?;
            let value = match self.peek() {
                Some('-' | '?' | ':') if self.blank_at(1) => return Err(Invalid),
                Some('|' | '>') => self.block_scalar(tag.as_ref())?,
                None => self.tagged_scalar(tag.as_ref(), String::new(), true)?,
                Some(_) => self.flow_node_with(tag, false)?,
            };
            self.remember(value_anchor, &value);
            value
        };
        let node = Node::Map(vec![(key, value)]);
        self.remember(anchor, &node);
        Ok(node)
    }

    /// `|`, `>` with their indicators and nothing after them on the line: an empty string.
    fn block_scalar(&mut self, tag: Option<&Tag>) -> Parsed<Node> {
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c == '+' || c == '-' || c.is_ascii_digit())
        {
            self.pos += 1;
        }
        if !self.blank_at(0) {
            return Err(Invalid);
        }
        self.skip_blank();
        if !self.at_end() {
            return Err(Invalid);
        }
        self.tagged_scalar(tag, String::new(), false)
    }

    /// `!tag` and `&anchor`, in any order, each followed by a space or the end.
    fn properties(&mut self, flow: bool) -> Parsed<(Option<Tag>, Option<String>)> {
        let (mut tag, mut anchor) = (None, None);
        loop {
            match self.peek() {
                Some('!') if tag.is_none() => {
                    let word = self.word(flow);
                    tag = Some(match word.strip_prefix("!!") {
                        Some(suffix) if !suffix.is_empty() => Tag::Core(suffix.to_string()),
                        _ if word == "!" => Tag::NonSpecific,
                        _ => return Err(Invalid),
                    });
                }
                Some('&') if anchor.is_none() => {
                    let word = self.word(flow);
                    if word.len() < 2 {
                        return Err(Invalid);
                    }
                    anchor = Some(word[1..].to_string());
                }
                _ => return Ok((tag, anchor)),
            }
            let flow_end = flow && self.peek().is_some_and(|c| FLOW_INDICATORS.contains(&c));
            if !(self.blank_at(0) || flow_end) {
                return Err(Invalid);
            }
            while self.peek() == Some(' ') {
                self.pos += 1;
            }
        }
    }

    /// Characters up to a space (or a flow indicator in flow context).
    fn word(&mut self, flow: bool) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ' ' || (flow && FLOW_INDICATORS.contains(&c)) {
                break;
            }
            self.pos += 1;
        }
        self.c[start..self.pos].iter().collect()
    }

    fn remember(&mut self, anchor: Option<String>, node: &Node) {
        if let Some(name) = anchor {
            self.anchors.insert(name, node.clone());
        }
    }

    /// A node inside a flow collection (properties included).
    fn flow_node(&mut self) -> Parsed<Node> {
        let (tag, anchor) = self.properties(true)?;
        let node = match self.peek() {
            None | Some(',' | ']' | '}') => {
                self.tagged_scalar(tag.as_ref(), String::new(), true)?
            }
            Some(':')
                if !self
                    .peek_at(1)
                    .is_some_and(|c| c != ' ' && !FLOW_INDICATORS.contains(&c)) =>
            {
                self.tagged_scalar(tag.as_ref(), String::new(), true)?
            }
            Some(_) => self.flow_node_with(tag, true)?,
        };
        self.remember(anchor, &node);
        Ok(node)
    }

    /// A collection, quoted scalar, alias or plain scalar, after its properties.
    fn flow_node_with(&mut self, tag: Option<Tag>, flow: bool) -> Parsed<Node> {
        match self.peek() {
            Some('[') => {
                let node = self.flow_sequence()?;
                collection_tag(tag.as_ref(), "seq", node)
            }
            Some('{') => {
                let node = self.flow_mapping()?;
                collection_tag(tag.as_ref(), "map", node)
            }
            Some('\'') => {
                let text = self.single_quoted()?;
                self.tagged_scalar(tag.as_ref(), text, false)
            }
            Some('"') => {
                let text = self.double_quoted()?;
                self.tagged_scalar(tag.as_ref(), text, false)
            }
            Some('*') => {
                if tag.is_some() {
                    return Err(Invalid);
                }
                let word = self.word(flow);
                // Aliases of collections are refused: copies of copies would grow
                // exponentially ("billion laughs"); PyYAML shares one object instead.
                let scalar = match self.anchors.get(&word[1..]) {
                    Some(Node::Seq(_) | Node::Map(_)) | None => return Err(Invalid),
                    Some(scalar) => scalar.clone(),
                };
                let cost = match &scalar {
                    Node::Str(s) => s.len().max(1),
                    _ => 1,
                };
                self.alias_budget = self.alias_budget.checked_sub(cost).ok_or(Invalid)?;
                Ok(scalar)
            }
            _ => {
                let text = self.plain(flow)?;
                self.tagged_scalar(tag.as_ref(), text, true)
            }
        }
    }

    fn flow_sequence(&mut self) -> Parsed<Node> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                Some(']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Node::Seq(items));
                }
                None | Some(',' | '}') => return Err(Invalid),
                Some('?') if self.blank_at(1) => return Err(Invalid),
                _ => {}
            }
            let node = self.flow_node()?;
            self.skip_blank();
            let item = if self.peek() == Some(':') {
                // A single-pair mapping: `[a: 1]`.
                self.pos += 1;
                self.skip_blank();
                let value = match self.peek() {
                    Some(',' | ']') => Node::Null,
                    _ => self.flow_node()?,
                };
                hashable(&node)?;
                self.skip_blank();
                Node::Map(vec![(node, value)])
            } else {
                node
            };
            items.push(item);
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {}
                _ => return Err(Invalid),
            }
        }
    }

    fn flow_mapping(&mut self) -> Parsed<Node> {
        self.enter()?;
        self.pos += 1;
        let mut pairs: Vec<(Node, Node)> = Vec::new();
        let mut keys = std::collections::HashSet::new();
        loop {
            self.skip_blank();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Node::Map(pairs));
                }
                None | Some(',' | ']') => return Err(Invalid),
                Some('?') if self.blank_at(1) => return Err(Invalid),
                _ => {}
            }
            let key = if self.peek() == Some(':') {
                Node::Null
            } else {
                self.flow_node()?
            };
            self.skip_blank();
            let value = if self.peek() == Some(':') {
                self.pos += 1;
                self.skip_blank();
                match self.peek() {
                    Some(',' | '}') => Node::Null,
                    _ => self.flow_node()?,
                }
            } else {
                Node::Null
            };
            hashable(&key)?;
            // Keys are scalars (see `hashable`); their debug text tells them apart.
            if !keys.insert(format!("{key:?}")) {
                // Salt's loader refuses duplicate keys.
                return Err(Invalid);
            }
            pairs.push((key, value));
            self.skip_blank();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(Invalid),
            }
        }
    }

    fn single_quoted(&mut self) -> Parsed<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(Invalid),
                Some('\'') if self.peek_at(1) == Some('\'') => {
                    out.push('\'');
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Parsed<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(Invalid),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or(Invalid)?;
                    self.pos += 1;
                    let simple = match esc {
                        '0' => Some('\0'),
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        't' | '\t' => Some('\t'),
                        'n' => Some('\n'),
                        'v' => Some('\u{b}'),
                        'f' => Some('\u{c}'),
                        'r' => Some('\r'),
                        'e' => Some('\u{1b}'),
                        ' ' => Some(' '),
                        '"' => Some('"'),
                        '/' => Some('/'),
                        '\\' => Some('\\'),
                        'N' => Some('\u{85}'),
                        '_' => Some('\u{a0}'),
                        'L' => Some('\u{2028}'),
                        'P' => Some('\u{2029}'),
                        _ => None,
                    };
                    match (simple, esc) {
                        (Some(c), _) => out.push(c),
                        (None, 'x') => out.push(self.hex_escape(2)?),
                        (None, 'u') => out.push(self.hex_escape(4)?),
                        (None, 'U') => out.push(self.hex_escape(8)?),
                        _ => return Err(Invalid),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Parsed<char> {
        let text: String = self
            .c
            .get(self.pos..self.pos + digits)
            .ok_or(Invalid)?
            .iter()
            .collect();
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Invalid);
        }
        self.pos += digits;
        let code = u32::from_str_radix(&text, 16).map_err(|_| Invalid)?;
        char::from_u32(code).ok_or(Invalid)
    }

    /// A plain scalar (PyYAML's `scan_plain`, on one line).
    fn plain(&mut self, flow: bool) -> Parsed<String> {
        let first = self.peek().ok_or(Invalid)?;
        let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first);
        // `-`, `?` and `:` start a plain scalar when a non-space follows them.
        let dash_like = "-?:".contains(first) && !self.blank_at(1);
        if indicator && !dash_like {
            return Err(Invalid);
        }
        let start = self.pos;
        let mut end = self.pos;
        loop {
            let chunk = self.pos;
            while let Some(c) = self.peek() {
                let next = self.peek_at(1);
                if c == ' '
                    || (c == ':'
                        && next.is_none_or(|n| n == ' ' || (flow && FLOW_INDICATORS.contains(&n))))
                    || (flow && (c == '?' || FLOW_INDICATORS.contains(&c)))
                {
                    break;
                }
                self.pos += 1;
            }
            if self.pos == chunk {
                break;
            }
            end = self.pos;
            if self.peek() != Some(' ') {
                break;
            }
            while self.peek() == Some(' ') {
                self.pos += 1;
            }
            if self.at_end() || self.peek() == Some('#') {
                break;
            }
        }
        self.pos = end;
        Ok(self.c[start..end].iter().collect())
    }

    /// A scalar's value: implicit typing for untagged plain scalars, else by its tag.
    fn tagged_scalar(&self, tag: Option<&Tag>, text: String, plain: bool) -> Parsed<Node> {
        match tag {
            None if plain => resolve_plain(text),
            None | Some(Tag::NonSpecific) => Ok(Node::Str(text)),
            Some(Tag::Core(name)) => match name.as_str() {
                "str" | "timestamp" => Ok(Node::Str(text)),
                "int" => construct_int(&text).map(Node::Int),
                "float" => construct_float(&text).map(Node::Float),
                "bool" => construct_bool(&text).map(Node::Bool),
                "null" => Ok(Node::Null),
                "binary" => Ok(Node::Other),
                _ => Err(Invalid),
            },
        }
    }
}

fn collection_tag(tag: Option<&Tag>, kind: &str, node: Node) -> Parsed<Node> {
    match tag {
        None => Ok(node),
        Some(Tag::Core(name)) if name == kind => Ok(node),
        Some(_) => Err(Invalid),
    }
}

/// Salt's loader refuses unhashable (collection) keys.
fn hashable(key: &Node) -> Parsed<()> {
    match key {
        Node::Seq(_) | Node::Map(_) => Err(Invalid),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_line_reads_without_panicking() {
        // A deterministic walk over strings of YAML's significant characters.
        let alphabet: Vec<char> = "[]{},:-?#&*!|>'\"%@` \\0x1e.+_aéyn~".chars().collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            for i in 0..len {
                let pick = (seed >> (i * 5)) as usize % alphabet.len();
                text.push(alphabet[pick]);
            }
            let _ = load(&text);
        }
    }

    #[test]
    fn scalars_and_collections() {
        assert_eq!(load("12:30"), Ok(Node::Int(750)));
        assert_eq!(load("-0644"), Ok(Node::Int(-420)));
        assert_eq!(load("0644"), Ok(Node::Int(644)));
        assert_eq!(load("1e3"), Ok(Node::Str("1e3".into())));
        assert_eq!(
            load("a: 1 # c"),
            Ok(Node::Map(vec![(Node::Str("a".into()), Node::Int(1))]))
        );
        assert_eq!(
            load("[a, 'b', {c: ~}]"),
            Ok(Node::Seq(vec![
                Node::Str("a".into()),
                Node::Str("b".into()),
                Node::Map(vec![(Node::Str("c".into()), Node::Null)])
            ]))
        );
        assert_eq!(load("[1] 2"), Err(Invalid));
        assert_eq!(load("{a: 1, a: 2}"), Err(Invalid));
        assert_eq!(
            load("[&x a, *x]"),
            Ok(Node::Seq(vec![
                Node::Str("a".into()),
                Node::Str("a".into())
            ]))
        );
        // Hostile shapes: deep nesting and aliases of collections keep the string.
        assert_eq!(load(&"[".repeat(100_000)), Err(Invalid));
        assert_eq!(load(&"- ".repeat(100_000)), Err(Invalid));
        let nested = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(load(&nested).is_ok());
        assert_eq!(load("[&a [1, 1], *a]"), Err(Invalid));
    }

    #[test]
    fn aliases_copy_no_more_than_the_document_holds() {
        // Issue 17 item 1's class: a long anchored string and many aliases of it.
        let long = "x".repeat(10_000);
        let bomb = format!("[&a '{long}'{}]", ", *a".repeat(2_000));
        assert_eq!(load(&bomb), Err(Invalid));
        // A few copies of a short string are fine.
        let few = format!("[&a '{}'{}]", "y".repeat(100), ", *a".repeat(40));
        assert!(matches!(load(&few), Ok(Node::Seq(items)) if items.len() == 41));
    }
}
