//! Request bodies in JSON and YAML built into JSON values within a budget.
//!
//! Every body is built through one counting visitor: at most `max_body_values` values
//! (413 past it), nesting bounded by `max_json_depth` while the value is built (400).
//! A JSON value costs its bytes at least, but a YAML alias repeats its anchor's whole
//! value, so a few kilobytes of `*a, *a, …` can stand for gigabytes (serde_yaml_ng bounds
//! repetition only relative to the event count, which a flat list of aliases to one
//! anchored list does not trip). Aliases stay allowed, as Python's `yaml.safe_load` in
//! rest_cherrypy allows them, but a YAML document may also build no more values than it
//! has bytes and no more text than twice its bytes (each with a 4 KiB floor): what a JSON
//! body of its size can build. YAML tags that `safe_load` would not construct (`!custom`)
//! are refused. JSON numbers are read as Salt reads them (see [`exact_integers`]).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// Not JSON / YAML, or a YAML feature request bodies do not carry.
    Invalid(String),
    /// Nested deeper than `max_json_depth`.
    TooDeep,
    /// More values than `max_body_values`.
    TooMany,
    /// YAML aliases made the document larger than its own size allows.
    Expands,
}

/// The limits a body is built within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// `max_json_depth`.
    pub max_depth: usize,
    /// `max_body_values`.
    pub max_values: usize,
}

/// Parses one JSON document, bounded as the module comment says.
pub(crate) fn from_json(body: &[u8], bounds: Bounds) -> Result<Json, Refusal> {
    let budget = Budget::new(bounds, None);
    let quoted = exact_integers(body);
    let mut de = serde_json::Deserializer::from_slice(quoted.as_deref().unwrap_or(body));
    let value = ValueSeed::new(&budget).deserialize(&mut de);
    budget.result(value.and_then(|v| de.end().map(|()| v)))
}

/// Parses one YAML document, bounded as the module comment says.
pub(crate) fn from_yaml(body: &[u8], bounds: Bounds) -> Result<Json, Refusal> {
    let budget = Budget::new(bounds, Some(body.len()));
    let de = serde_yaml_ng::Deserializer::from_slice(body);
    budget.result(ValueSeed::new(&budget).deserialize(de))
}

/// What a document may still build; the first refusal is kept for the caller.
struct Budget {
    values: Cell<usize>,
    text: Cell<usize>,
    /// What running out of values means: `TooMany`, or for YAML whose own size allows
    /// fewer values than `max_body_values`, `Expands`.
    out_of_values: Refusal,
    refusal: Cell<Option<Refusal>>,
    max_depth: usize,
    /// YAML's own rules apply (tags, numbers JSON cannot carry).
    yaml: bool,
}

impl Budget {
    /// The budget of a JSON body (`yaml_len` None) or a YAML one of `yaml_len` bytes.
    fn new(bounds: Bounds, yaml_len: Option<usize>) -> Budget {
        let own = yaml_len.map_or(usize::MAX, |n| n.max(4096));
        Budget {
            values: Cell::new(own.min(bounds.max_values)),
            text: Cell::new(yaml_len.map_or(usize::MAX, |n| n.saturating_mul(2).max(4096))),
            out_of_values: if own < bounds.max_values {
                Refusal::Expands
            } else {
                Refusal::TooMany
            },
            refusal: Cell::new(None),
            max_depth: bounds.max_depth,
            yaml: yaml_len.is_some(),
        }
    }

    /// The built value, or the first refusal (the parser's own error otherwise).
    fn result<E: fmt::Display>(&self, built: Result<Json, E>) -> Result<Json, Refusal> {
        built.map_err(|e| {
            self.refusal
                .take()
                .unwrap_or_else(|| Refusal::Invalid(e.to_string()))
        })
    }

    /// Takes one value and `text` bytes from the budget.
    fn take<E: de::Error>(&self, text: usize) -> Result<(), E> {
        let Some(values) = self.values.get().checked_sub(1) else {
            return Err(self.refuse(self.out_of_values.clone()));
        };
        let Some(bytes) = self.text.get().checked_sub(text) else {
            return Err(self.refuse(Refusal::Expands));
        };
        self.values.set(values);
        self.text.set(bytes);
        Ok(())
    }

    /// Records why the document is refused and stops the deserializer.
    fn refuse<E: de::Error>(&self, why: Refusal) -> E {
        let message = format!("{why:?}");
        self.refusal.set(Some(why));
        E::custom(message)
    }
}

/// Builds one JSON value at nesting `depth`.
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl<'a> ValueSeed<'a> {
    /// The seed of a whole document.
    fn new(budget: &'a Budget) -> ValueSeed<'a> {
        ValueSeed { budget, depth: 0 }
    }

    /// The seed for a value inside this collection.
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.budget.max_depth {
            return Err(self.budget.refuse(Refusal::TooDeep));
        }
        Ok(ValueSeed {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }

    fn scalar<E: de::Error>(self, value: Json) -> Result<Json, E> {
        self.budget.take(0)?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Json, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        self.scalar(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        self.scalar(Json::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        self.scalar(Json::from(v))
    }

    /// Integers past 64 bits (serde_yaml_ng reads up to 128) become their decimal text:
    /// what Salt's msgpack encoder sends for them.
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Json, E> {
        match (i64::try_from(v), u64::try_from(v)) {
            (Ok(n), _) => self.scalar(Json::from(n)),
            (_, Ok(n)) => self.scalar(Json::from(n)),
            _ => self.visit_str(&v.to_string()),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Json, E> {
        match u64::try_from(v) {
            Ok(n) => self.scalar(Json::from(n)),
            Err(_) => self.visit_str(&v.to_string()),
        }
    }

    /// In YAML, `.inf` and `.nan` have no JSON form, and serde_yaml_ng hands an integer
    /// past 128 bits over as a float (indistinguishable from a float of 2^127 or more):
    /// refused rather than sent as something else. (JSON has no such numbers.)
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        match Number::from_f64(v) {
            Some(n) if !self.budget.yaml || v.abs() < 2f64.powi(127) => {
                self.scalar(Json::Number(n))
            }
            _ => Err(self.budget.refuse(Refusal::Invalid(
                "`.inf`, `.nan` and numbers of 2^127 or more are not supported in YAML \
                 request bodies (send JSON, or quote the number)"
                    .into(),
            ))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        self.budget.take(v.len())?;
        Ok(Json::String(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        self.scalar(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        self.scalar(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Json, D::Error> {
        self.deserialize(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let inner = self.inner()?;
        self.budget.take(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let inner = self.inner()?;
        self.budget.take(0)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(inner)? {
            let key = key_text(key).map_err(|why| self.budget.refuse(why))?;
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Json::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Json, A::Error> {
        Err(self.budget.refuse(Refusal::Invalid(
            "YAML tags (`!name`) are not supported in request bodies".into(),
        )))
    }
}

/// A mapping key as JSON text, the way Python's `json.dumps` writes scalar keys.
fn key_text(key: Json) -> Result<String, Refusal> {
    match key {
        Json::String(s) => Ok(s),
        Json::Null => Ok("null".into()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Array(_) | Json::Object(_) => {
            Err(Refusal::Invalid("mapping keys must be scalars".into()))
        }
    }
}

/// JSON numbers as Salt reads them: `body` with every integer outside
/// `i64::MIN..=u64::MAX` in a value position put in quotes (serde_json would read it as a
/// float; Salt's msgpack encoder sends such an integer as its decimal text, `salt.payload`:
/// "msgpack can't handle the very long Python longs") and the sign of every `-0` dropped
/// (the integer 0, not the float -0.0, as in Python), or `None` when there is nothing to change
/// (the common case: nothing is copied). Only a valid JSON integer in a value position is
/// changed, so no invalid body becomes valid.
fn exact_integers(body: &[u8]) -> Option<Vec<u8>> {
    if !may_change(body) {
        return None;
    }
    let mut big: Vec<(usize, usize)> = Vec::new();
    // Per open container: is it an object? And does a key come next?
    let mut objects: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i = string_end(body, i + 1);
                continue;
            }
            b'{' => {
                objects.push(true);
                expect_key = true;
            }
            b'[' => {
                objects.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                objects.pop();
                expect_key = false;
            }
            b',' => expect_key = objects.last() == Some(&true),
            b':' => expect_key = false,
            b'-' | b'0'..=b'9' => {
                let end = body[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(body.len(), |n| i + n);
                let token = &body[i..end];
                if !expect_key && (token == b"-0" || is_big_integer(token)) {
                    big.push((i, end));
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if big.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 2 * big.len());
    let mut at = 0;
    for (start, end) in big {
        out.extend_from_slice(&body[at..start]);
        if &body[start..end] == b"-0" {
            out.push(b'0');
        } else {
            out.push(b'"');
            out.extend_from_slice(&body[start..end]);
            out.push(b'"');
        }
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Some(out)
}

/// A quick first pass: whether `body` holds a run of 19 digits or a `-0` at all (else no
/// integer in it can need a change, and the structural scan is skipped).
fn may_change(body: &[u8]) -> bool {
    let mut digits = 0;
    for (i, &b) in body.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= 19 {
                return true;
            }
        } else {
            digits = 0;
            if b == b'-' && body.get(i + 1) == Some(&b'0') {
                return true;
            }
        }
    }
    false
}

/// The index just past the closing quote of a string whose text starts at `i`.
fn string_end(body: &[u8], mut i: usize) -> usize {
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

/// A JSON integer token (`-?(0|[1-9][0-9]*)`) that fits neither i64 nor u64.
fn is_big_integer(token: &[u8]) -> bool {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.len() < 19 {
        return false;
    }
    let valid = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    // Only ASCII digits and '-' reach here.
    let text = std::str::from_utf8(token).unwrap_or_default();
    valid && text.parse::<i64>().is_err() && text.parse::<u64>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUNDS: Bounds = Bounds {
        max_depth: 64,
        max_values: 1 << 17,
    };

    #[test]
    fn json_values_are_counted_and_numbers_kept() {
        let few = Bounds {
            max_depth: 64,
            max_values: 10,
        };
        assert!(from_json(b"[1,2,3,4,5,6,7,8,9]", few).is_ok());
        assert_eq!(
            from_json(b"[1,2,3,4,5,6,7,8,9,10]", few),
            Err(Refusal::TooMany)
        );
        assert_eq!(
            from_json(
                br#"{"jid": 20261203072555932498, "n": -0, "f": 1e300}"#,
                BOUNDS
            ),
            Ok(json!({"jid": "20261203072555932498", "n": 0, "f": 1e300}))
        );
        assert!(matches!(
            from_json(b"[1] x", BOUNDS),
            Err(Refusal::Invalid(_))
        ));
        // No big integer: nothing copied.
        assert!(
            exact_integers(br#"[{"a": [1, -2.5e10, -0.0, "99999999999999999999"]}]"#).is_none()
        );
    }

    #[test]
    fn plain_documents_read_as_before() {
        assert_eq!(
            from_yaml(
                b"- client: local\n  tgt: '*'\n  arg: [1, 2.5, true, ~]\n",
                BOUNDS
            ),
            Ok(json!([{"client": "local", "tgt": "*", "arg": [1, 2.5, true, null]}]))
        );
        assert_eq!(
            from_yaml(b"{1: a, true: b, ~: c}", BOUNDS),
            Ok(json!({"1": "a", "true": "b", "null": "c"}))
        );
        let creds = b"- &c {eauth: pam, username: u}\n- *c\n";
        assert_eq!(
            from_yaml(creds, BOUNDS),
            Ok(json!([{"eauth": "pam", "username": "u"}, {"eauth": "pam", "username": "u"}]))
        );
    }

    #[test]
    fn alias_bombs_are_refused_early() {
        // Issue 17 item 1: N items x M aliases in 10 KB.
        let zeros = vec!["0"; 2_000].join(",");
        let aliases = vec!["*a"; 2_000].join(",");
        let bomb = format!("a: &a [{zeros}]\nb: [{aliases}]\n");
        assert_eq!(from_yaml(bomb.as_bytes(), BOUNDS), Err(Refusal::Expands));
        // One long string repeated.
        let text = format!(
            "a: &a '{}'\nb: [{}]\n",
            "x".repeat(5_000),
            ["*a"; 10].join(",")
        );
        assert_eq!(from_yaml(text.as_bytes(), BOUNDS), Err(Refusal::Expands));
    }

    #[test]
    fn depth_tags_and_keys() {
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(from_yaml(deep.as_bytes(), BOUNDS), Err(Refusal::TooDeep));
        let fine = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(from_yaml(fine.as_bytes(), BOUNDS).is_ok());
        assert!(matches!(
            from_yaml(b"a: !custom x", BOUNDS),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            from_yaml(b"? [a]\n: b\n", BOUNDS),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            from_yaml(b"a: [b", BOUNDS),
            Err(Refusal::Invalid(_))
        ));
    }
}
