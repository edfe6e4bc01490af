//! YAML request bodies (`application/x-yaml`, `text/yaml`) read into JSON within a budget.
//!
//! A YAML alias repeats its anchor's whole value, so a few kilobytes of `*a, *a, …` can
//! stand for gigabytes (serde_yaml_ng bounds repetition only relative to the event count,
//! which a flat list of aliases to one anchored list does not trip). Aliases are allowed,
//! as Python's `yaml.safe_load` in rest_cherrypy allows them, but the value is built
//! through a counting visitor: a body may build no more values than it has bytes and no
//! more text than twice its bytes (each with a 4 KiB floor). That is what a JSON body of
//! the same size can build, so no body type costs more than another. Nesting is bounded
//! by `max_json_depth` while the value is built, and YAML tags that `safe_load` would
//! not construct (`!custom`) are refused.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

/// Why a YAML body was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum YamlRefusal {
    /// Not YAML, or a YAML feature request bodies do not carry.
    Invalid(String),
    /// Nested deeper than `max_json_depth`.
    TooDeep,
    /// Aliases made the document larger than its budget.
    Expands,
}

/// Parses one YAML document into JSON, bounded as the module comment says.
pub(crate) fn parse(body: &[u8], max_depth: usize) -> Result<Json, YamlRefusal> {
    let budget = Budget {
        values: Cell::new(body.len().max(4096)),
        text: Cell::new(body.len().saturating_mul(2).max(4096)),
        refusal: Cell::new(None),
        max_depth,
    };
    let seed = ValueSeed {
        budget: &budget,
        depth: 0,
    };
    let de = serde_yaml_ng::Deserializer::from_slice(body);
    match seed.deserialize(de) {
        Ok(value) => Ok(value),
        Err(e) => Err(budget
            .refusal
            .take()
            .unwrap_or_else(|| YamlRefusal::Invalid(e.to_string()))),
    }
}

/// What a document may still build; the first refusal is kept for the caller.
struct Budget {
    values: Cell<usize>,
    text: Cell<usize>,
    refusal: Cell<Option<YamlRefusal>>,
    max_depth: usize,
}

impl Budget {
    /// Takes one value and `text` bytes from the budget.
    fn take<E: de::Error>(&self, text: usize) -> Result<(), E> {
        let values = self.values.get().checked_sub(1);
        let bytes = self.text.get().checked_sub(text);
        match (values, bytes) {
            (Some(v), Some(t)) => {
                self.values.set(v);
                self.text.set(t);
                Ok(())
            }
            _ => Err(self.refuse(YamlRefusal::Expands)),
        }
    }

    /// Records why the document is refused and stops the deserializer.
    fn refuse<E: de::Error>(&self, why: YamlRefusal) -> E {
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

impl ValueSeed<'_> {
    /// The seed for a value inside this collection.
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.budget.max_depth {
            return Err(self.budget.refuse(YamlRefusal::TooDeep));
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
        f.write_str("a YAML value")
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

    /// `.inf` and `.nan` have no JSON form, and serde_yaml_ng hands an integer past 128
    /// bits over as a float (indistinguishable from a float of 2^127 or more): refused
    /// rather than sent as something else.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        match Number::from_f64(v) {
            Some(n) if v.abs() < 2f64.powi(127) => self.scalar(Json::Number(n)),
            _ => Err(self.budget.refuse(YamlRefusal::Invalid(
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
        Err(self.budget.refuse(YamlRefusal::Invalid(
            "YAML tags (`!name`) are not supported in request bodies".into(),
        )))
    }
}

/// A mapping key as JSON text, the way Python's `json.dumps` writes scalar keys.
fn key_text(key: Json) -> Result<String, YamlRefusal> {
    match key {
        Json::String(s) => Ok(s),
        Json::Null => Ok("null".into()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Array(_) | Json::Object(_) => {
            Err(YamlRefusal::Invalid("mapping keys must be scalars".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_documents_read_as_before() {
        assert_eq!(
            parse(
                b"- client: local\n  tgt: '*'\n  arg: [1, 2.5, true, ~]\n",
                64
            ),
            Ok(json!([{"client": "local", "tgt": "*", "arg": [1, 2.5, true, null]}]))
        );
        assert_eq!(
            parse(b"{1: a, true: b, ~: c}", 64),
            Ok(json!({"1": "a", "true": "b", "null": "c"}))
        );
        let creds = b"- &c {eauth: pam, username: u}\n- *c\n";
        assert_eq!(
            parse(creds, 64),
            Ok(json!([{"eauth": "pam", "username": "u"}, {"eauth": "pam", "username": "u"}]))
        );
    }

    #[test]
    fn alias_bombs_are_refused_early() {
        // Issue 17 item 1: N items x M aliases in 10 KB.
        let zeros = vec!["0"; 2_000].join(",");
        let aliases = vec!["*a"; 2_000].join(",");
        let bomb = format!("a: &a [{zeros}]\nb: [{aliases}]\n");
        assert_eq!(parse(bomb.as_bytes(), 64), Err(YamlRefusal::Expands));
        // One long string repeated.
        let text = format!(
            "a: &a '{}'\nb: [{}]\n",
            "x".repeat(5_000),
            ["*a"; 10].join(",")
        );
        assert_eq!(parse(text.as_bytes(), 64), Err(YamlRefusal::Expands));
    }

    #[test]
    fn depth_tags_and_keys() {
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(parse(deep.as_bytes(), 64), Err(YamlRefusal::TooDeep));
        let fine = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(fine.as_bytes(), 64).is_ok());
        assert!(matches!(
            parse(b"a: !custom x", 64),
            Err(YamlRefusal::Invalid(_))
        ));
        assert!(matches!(
            parse(b"? [a]\n: b\n", 64),
            Err(YamlRefusal::Invalid(_))
        ));
        assert!(matches!(parse(b"a: [b", 64), Err(YamlRefusal::Invalid(_))));
    }
}
