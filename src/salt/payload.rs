//! msgpack ⇄ JSON, the way Salt's `salt.payload` writes and reads it.
//!
//! Outgoing loads are JSON values encoded with strings in msgpack's str family (what
//! `use_bin_type=False` produces). Incoming replies and events are decoded tolerantly:
//! str and bin that hold UTF-8 become JSON strings, other bytes are replaced lossily;
//! ext 78 (datetime) becomes its text; ext 79 (a Salt constant) becomes its name;
//! non-string map keys become JSON strings the way Python's `json.dumps` writes them.

use rmpv::Value as Msgpack;
use serde_json::{Map, Number, Value as Json};

/// Nesting accepted in a master reply or event; deeper input is refused, never recursed into.
const MAX_DEPTH: usize = 256;

/// A msgpack document that could not be decoded.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "undecodable msgpack from the master: {}", self.0)
    }
}

/// Encodes a JSON value as msgpack with str-family strings.
pub fn encode(value: &Json) -> Vec<u8> {
    // Serialising a serde_json::Value into a Vec cannot fail: every variant has a msgpack form.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

/// Decodes exactly one msgpack document into JSON (trailing bytes are an error).
pub fn decode(bytes: &[u8]) -> Result<Json, DecodeError> {
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| DecodeError(e.to_string()))?;
    if !rd.is_empty() {
        return Err(DecodeError(format!("{} trailing bytes", rd.len())));
    }
    Ok(to_json(value))
}

/// Converts a decoded msgpack value to JSON.
pub(crate) fn to_json(value: Msgpack) -> Json {
    convert(value, true)
}

/// `allow_ext79`: a Salt constant may be decoded once, never inside another one (each
/// level would start a fresh document: unbounded recursion on hostile input).
fn convert(value: Msgpack, allow_ext79: bool) -> Json {
    match value {
        Msgpack::Nil => Json::Null,
        Msgpack::Boolean(b) => Json::Bool(b),
        Msgpack::Integer(i) => i
            .as_u64()
            .map(Number::from)
            .or_else(|| i.as_i64().map(Number::from))
            .map_or(Json::Null, Json::Number),
        Msgpack::F32(f) => float(f64::from(f)),
        Msgpack::F64(f) => float(f),
        Msgpack::String(s) => Json::String(bytes_to_string(s.into_bytes())),
        Msgpack::Binary(b) => Json::String(bytes_to_string(b)),
        Msgpack::Array(items) => {
            Json::Array(items.into_iter().map(|v| convert(v, allow_ext79)).collect())
        }
        Msgpack::Map(pairs) => {
            let mut map = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                map.insert(key_string(k), convert(v, allow_ext79));
            }
            Json::Object(map)
        }
        Msgpack::Ext(tag, data) => ext_to_json(tag, data, allow_ext79),
    }
}

/// JSON has no NaN or infinities; Python would print bare `NaN`, which is not JSON. Use null.
fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// UTF-8 bytes become the string; anything else is kept readable with U+FFFD replacements.
fn bytes_to_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Longest text kept for a map key that is itself a container (Salt never sends one).
const MAX_ODD_KEY: usize = 128;

/// Map keys as Python's `json.dumps` turns them into strings. Container keys (which no
/// Python peer can produce) are cut short, so nesting them cannot blow the output up.
fn key_string(key: Msgpack) -> String {
    match key {
        Msgpack::String(s) => bytes_to_string(s.into_bytes()),
        Msgpack::Binary(b) => bytes_to_string(b),
        Msgpack::Nil => "null".into(),
        Msgpack::Boolean(b) => b.to_string(),
        Msgpack::Integer(i) => i.to_string(),
        other => match convert(other, false) {
            Json::String(s) => s,
            v => v.to_string().chars().take(MAX_ODD_KEY).collect(),
        },
    }
}

/// Salt's ext types: 78 = datetime as `%Y%m%dT%H:%M:%S.%f`, 79 = `[name, value]` constant.
fn ext_to_json(tag: i8, data: Vec<u8>, allow_ext79: bool) -> Json {
    match tag {
        78 => Json::String(bytes_to_string(data)),
        79 if allow_ext79 => {
            let mut rd = data.as_slice();
            match rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH) {
                Ok(Msgpack::Array(mut parts)) if !parts.is_empty() => {
                    convert(parts.swap_remove(0), false)
                }
                _ => Json::Null,
            }
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ping_envelope_matches_salts_bytes() {
        let env = json!({"enc": "clear", "load": {"cmd": "ping"}, "version": 3});
        let expected: &[u8] = b"\x83\xa3enc\xa5clear\xa4load\x81\xa3cmd\xa4ping\xa7version\x03";
        assert_eq!(encode(&env), expected);
    }

    #[test]
    fn roundtrip_of_json_shapes() {
        let v = json!({"a": [1, -2, 3.5, null, true, "é☃"], "b": {"c": u64::MAX}});
        assert_eq!(decode(&encode(&v)).expect("decode"), v);
    }

    #[test]
    fn bin_and_odd_keys_and_exts() {
        let mut buf = Vec::new();
        let v = Msgpack::Map(vec![
            (Msgpack::from(1), Msgpack::Binary(b"ok".to_vec())),
            (Msgpack::Nil, Msgpack::Binary(vec![0xff, b'a'])),
            (
                Msgpack::Boolean(true),
                Msgpack::Ext(78, b"20240101T00:00:00.000001".to_vec()),
            ),
            (Msgpack::from("f"), Msgpack::F64(f64::NAN)),
        ]);
        rmpv::encode::write_value(&mut buf, &v).expect("encode");
        assert_eq!(
            decode(&buf).expect("decode"),
            json!({"1": "ok", "null": "\u{fffd}a", "true": "20240101T00:00:00.000001", "f": null})
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(decode(b"\x01\x02").is_err());
        assert!(decode(b"\xdb\xff\xff\xff\xff").is_err());
        // Map keys that are maps, nested: bounded output, not exponential.
        let mut nested = vec![0x81u8; 24];
        nested.extend([0x81, 0xa1, 0x22, 0x00]);
        nested.extend([0x00; 24]);
        assert!(decode(&nested).map_or(0, |v| v.to_string().len()) < 100_000);
        // A chain of ext 79 constants: decoded one level deep, no recursion.
        let mut chain = vec![0xc0u8];
        for _ in 0..5000 {
            let mut inner = vec![0x91];
            inner.extend(&chain);
            let mut ext = vec![0xc9];
            ext.extend((inner.len() as u32).to_be_bytes());
            ext.push(79);
            ext.extend(inner);
            chain = ext;
        }
        assert!(decode(&chain).is_ok());
        // 300 nested arrays: refused without recursing that deep.
        assert!(decode(&[0x91; 300]).is_err());
    }
}
