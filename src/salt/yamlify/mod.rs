//! Salt's typing of CLI-style string arguments (`salt.utils.args`): `parse_input` splits
//! `name=value` keywords from positional arguments, and `yamlify_arg` types each string as
//! PyYAML (YAML 1.1, Salt's loader) does. Runner arguments and form bodies go through it.
//! `parser` reads the one-line YAML documents, `resolve` types their scalars.

mod parser;
mod resolve;

use serde_json::{Map, Value as Json};

use parser::Node;

/// Salt's `parse_input(args, condition=False)`: `name=value` strings become kwargs,
/// `{"__kwarg__": true, …}` objects are merged into kwargs, strings are YAML-typed.
pub(crate) fn parse_input(args: Vec<Json>) -> (Vec<Json>, Map<String, Json>) {
    let mut positional = Vec::new();
    let mut kwargs = Map::new();
    for arg in args {
        match arg {
            Json::String(s) => match split_kwarg(&s) {
                Some((name, value)) => {
                    kwargs.insert(name.to_string(), yamlify_arg(value));
                }
                None => positional.push(yamlify_arg(&s)),
            },
            Json::Object(mut m) if m.get("__kwarg__") == Some(&Json::Bool(true)) => {
                m.shift_remove("__kwarg__");
                kwargs.extend(m);
            }
            other => positional.push(other),
        }
    }
    (positional, kwargs)
}

/// Salt's `parse_kwarg`: `^([^\d\W][\w.-]*)=(?!=)(.*)$`, a keyword name, `=`, and a
/// value not starting with `=`. `.` does not match a newline, and `$` matches before a
/// final one: a value with a newline is no keyword argument, except that one trailing
/// newline is dropped.
fn split_kwarg(s: &str) -> Option<(&str, &str)> {
    let (name, value) = s.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if !word(first) || first.is_numeric() || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return None;
    }
    let value = value.strip_suffix('\n').unwrap_or(value);
    (!value.starts_with('=') && !value.contains('\n')).then_some((name, value))
}

/// Salt's `yamlify_arg`: type a CLI-style string argument the way PyYAML (YAML 1.1, with
/// Salt's loader) does. Integers past 64 bits become their decimal text (what Salt's msgpack
/// encoder sends for them); what JSON cannot carry at all (`.inf`, `.nan`, mappings with
/// non-string keys) stays the original string.
pub(crate) fn yamlify_arg(s: &str) -> Json {
    let original = || Json::from(s);
    let stripped = s.trim();
    if matches!(stripped, "" | "---" | "...") || s.contains(['\t', '\r', '\n']) {
        return original();
    }
    if s.contains('_') && stripped.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return original();
    }
    if s == "None" {
        return Json::Null;
    }
    let Ok(node) = parser::load(s) else {
        return original();
    };
    let keep = match &node {
        // With a `#`, only a non-string result replaces the argument (no comment is lost).
        Node::Str(_) | Node::Null if s.contains('#') => false,
        _ if s.contains('#') => true,
        Node::Map(_) => s.starts_with('{'),
        Node::Seq(_) => s.starts_with('['),
        Node::Str(t) if t.is_empty() => s != "|" && s != "!",
        Node::Null => s != "!",
        Node::Other => false,
        _ => true,
    };
    if !keep {
        return original();
    }
    to_json(node).unwrap_or_else(original)
}

/// A YAML value as JSON; `None` where JSON has no equivalent.
fn to_json(node: Node) -> Option<Json> {
    Some(match node {
        Node::Null => Json::Null,
        Node::Bool(b) => Json::Bool(b),
        Node::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
            (Ok(v), _) => Json::from(v),
            (_, Ok(v)) => Json::from(v),
            _ => Json::String(i.to_string()),
        },
        Node::Float(f) => Json::Number(serde_json::Number::from_f64(f)?),
        Node::Str(s) => Json::String(s),
        Node::Seq(items) => Json::Array(items.into_iter().map(to_json).collect::<Option<_>>()?),
        Node::Map(pairs) => Json::Object(
            pairs
                .into_iter()
                .map(|(k, v)| match k {
                    Node::Str(k) => Some((k, to_json(v)?)),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        Node::Other => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_input_splits_kwargs() {
        let (a, k) = parse_input(vec![
            json!("foo"),
            json!("n=5"),
            json!("x==y"),
            json!("1a=b"),
            json!({"__kwarg__": true, "z": 1}),
            json!({"plain": 1}),
            json!(7),
        ]);
        assert_eq!(
            a,
            vec![
                json!("foo"),
                json!("x==y"),
                json!("1a=b"),
                json!({"plain": 1}),
                json!(7)
            ]
        );
        assert_eq!(Json::Object(k), json!({"n": 5, "z": 1}));
    }

    #[test]
    fn yamlify_like_salt() {
        assert_eq!(yamlify_arg("5"), json!(5));
        assert_eq!(yamlify_arg("1.5"), json!(1.5));
        assert_eq!(yamlify_arg("true"), json!(true));
        assert_eq!(yamlify_arg("yes"), json!(true));
        assert_eq!(yamlify_arg("None"), Json::Null);
        assert_eq!(yamlify_arg("[1, 2]"), json!([1, 2]));
        assert_eq!(yamlify_arg("{a: 1}"), json!({"a": 1}));
        assert_eq!(yamlify_arg("a: 1"), json!("a: 1"));
        assert_eq!(yamlify_arg("- a"), json!("- a"));
        assert_eq!(yamlify_arg("1_000"), json!("1_000"));
        assert_eq!(yamlify_arg("x # y"), json!("x # y"));
        assert_eq!(yamlify_arg("héllo"), json!("héllo"));
        assert_eq!(yamlify_arg(""), json!(""));
    }

    /// The expected JSON of a row of `tests/data/yamlify_arg.json`: Salt's value (an integer
    /// past 64 bits as the text Salt's msgpack sends), or the original string where JSON
    /// cannot carry Salt's value (documented difference).
    fn expected(input: &str, out: &Json) -> Json {
        let obj = out.as_object().expect("row");
        if let Some(v) = obj.get("value").or_else(|| obj.get("bigint")) {
            return v.clone();
        }
        if let Some(items) = obj.get("list") {
            let items: Vec<Json> = items
                .as_array()
                .expect("list")
                .iter()
                .map(|i| expected(input, i))
                .collect();
            // One item JSON cannot carry spoils the whole argument.
            return if items.iter().any(|i| i == &Json::from(input)) {
                Json::from(input)
            } else {
                Json::Array(items)
            };
        }
        if let Some(map) = obj.get("map") {
            let map: Map<String, Json> = map
                .as_object()
                .expect("map")
                .iter()
                .map(|(k, v)| (k.clone(), expected(input, v)))
                .collect();
            return Json::Object(map);
        }
        // float (inf/nan), non_string_keys, other
        Json::from(input)
    }

    #[test]
    fn yamlify_matches_salts_table() {
        let table: Json =
            serde_json::from_str(include_str!("../../../tests/data/yamlify_arg.json"))
                .expect("table");
        let rows = table["yamlify_arg"].as_array().expect("rows");
        assert!(rows.len() > 150);
        let mut wrong = Vec::new();
        for row in rows {
            let input = row["in"].as_str().expect("in");
            let want = expected(input, &row["out"]);
            let got = yamlify_arg(input);
            if got != want {
                wrong.push(format!("{input:?}: salt {want}, salt-fcgi {got}"));
            }
        }
        for row in table["parse_kwarg"].as_array().expect("rows") {
            let input = row["in"].as_str().expect("in");
            let got = split_kwarg(input).map(|(n, v)| (n.to_string(), yamlify_arg(v)));
            let want = row["name"]
                .as_str()
                .map(|n| (n.to_string(), expected(input, &row["value"])));
            if got != want {
                wrong.push(format!("kwarg {input:?}: salt {want:?}, salt-fcgi {got:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} differences:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}
