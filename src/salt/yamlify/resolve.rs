//! PyYAML's YAML 1.1 typing of scalars with Salt's loader: the implicit resolvers of plain
//! scalars (null, bool, int in every base and base 60, float) and the constructors of
//! tagged ones.

use super::parser::{Invalid, Node, Parsed};

/// PyYAML's implicit resolvers (YAML 1.1) for an untagged plain scalar.
pub(super) fn resolve_plain(text: String) -> Parsed<Node> {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Node::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Node::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Node::Bool(false));
        }
        // The merge and value tags have no constructor in a safe loader.
        "<<" | "=" | "!" | "&" | "*" => return Err(Invalid),
        _ => {}
    }
    if is_float(&text) {
        return construct_float(&text).map(Node::Float);
    }
    if is_int(&text) {
        return construct_int(&text).map(Node::Int);
    }
    Ok(Node::Str(text))
}

fn all_in(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(allowed)
}

fn digit_or_underscore(c: char) -> bool {
    c.is_ascii_digit() || c == '_'
}

/// `[0-9][0-9_]*`
fn is_digits_head(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(digit_or_underscore)
}

/// `(?::[0-5]?[0-9])+` (the text after the first group, starting with ':')
fn is_base60_tail(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(':') else {
        return false;
    };
    rest.split(':').all(|g| {
        let b = g.as_bytes();
        match b {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        }
    })
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// `[eE][-+][0-9]+` or nothing.
fn is_exponent(s: &str) -> bool {
    s.is_empty()
        || s.strip_prefix(['e', 'E'])
            .and_then(|e| e.strip_prefix(['-', '+']))
            .is_some_and(|d| all_in(d, |c| c.is_ascii_digit()))
}

/// PyYAML's float resolver.
fn is_float(s: &str) -> bool {
    let body = strip_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // \.[0-9][0-9_]*(exp)?  (no sign)
    if let Some(rest) = s.strip_prefix('.') {
        let end = rest.find(['e', 'E']).unwrap_or(rest.len());
        return is_digits_head(&rest[..end]) && is_exponent(&rest[end..]);
    }
    let Some(dot) = body.find('.') else {
        return false;
    };
    let (head, frac) = (&body[..dot], &body[dot + 1..]);
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some(colon) = head.find(':') {
        return is_digits_head(&head[..colon])
            && is_base60_tail(&head[colon..])
            && frac.chars().all(digit_or_underscore);
    }
    // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?
    let end = frac.find(['e', 'E']).unwrap_or(frac.len());
    is_digits_head(head)
        && frac[..end].chars().all(digit_or_underscore)
        && is_exponent(&frac[end..])
}

/// PyYAML's int resolver.
fn is_int(s: &str) -> bool {
    let body = strip_sign(s);
    if let Some(bin) = body.strip_prefix("0b") {
        return all_in(bin, |c| c == '0' || c == '1' || c == '_');
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return all_in(hex, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if let Some(oct) = body.strip_prefix('0') {
        return oct.is_empty() || all_in(oct, |c| ('0'..='7').contains(&c) || c == '_');
    }
    if !body.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return false;
    }
    match body.find(':') {
        Some(colon) => {
            body[..colon].chars().all(digit_or_underscore) && is_base60_tail(&body[colon..])
        }
        None => body.chars().all(digit_or_underscore),
    }
}

/// Salt's `construct_scalar` for ints (leading zeros dropped unless `0b`/`0x`), then
/// PyYAML's `construct_yaml_int`.
pub(super) fn construct_int(text: &str) -> Parsed<i128> {
    let mut value = text.to_string();
    if value != "0"
        && value.starts_with('0')
        && !value.starts_with("0b")
        && !value.starts_with("0x")
    {
        value = value.trim_start_matches('0').to_string();
        if value.is_empty() {
            value = "0".into();
        }
    }
    let value = value.replace('_', "");
    let sign: i128 = if value.starts_with('-') { -1 } else { 1 };
    let value = strip_sign(&value);
    let parse = |digits: &str, radix: u32| i128::from_str_radix(digits, radix).map_err(|_| Invalid);
    let magnitude = if value == "0" {
        0
    } else if let Some(bin) = value.strip_prefix("0b") {
        parse(bin, 2)?
    } else if let Some(hex) = value.strip_prefix("0x") {
        parse(hex, 16)?
    } else if value.starts_with('0') {
        parse(value, 8)?
    } else if value.contains(':') {
        let mut total: i128 = 0;
        for part in value.split(':') {
            total = total
                .checked_mul(60)
                .and_then(|t| t.checked_add(parse(part, 10).ok()?))
                .ok_or(Invalid)?;
        }
        total
    } else {
        parse(value, 10)?
    };
    // from_str_radix takes its own sign; Python's int() would refuse a second one.
    if value.starts_with(['-', '+']) {
        return Err(Invalid);
    }
    Ok(sign * magnitude)
}

/// PyYAML's `construct_yaml_float`.
pub(super) fn construct_float(text: &str) -> Parsed<f64> {
    let value = text.replace('_', "").to_lowercase();
    let sign = if value.starts_with('-') { -1.0 } else { 1.0 };
    let value = strip_sign(&value);
    let number = |s: &str| -> Parsed<f64> {
        if s.is_empty() || s.starts_with(['-', '+']) && s.len() == 1 {
            return Err(Invalid);
        }
        s.parse::<f64>().map_err(|_| Invalid)
    };
    Ok(match value {
        ".inf" => sign * f64::INFINITY,
        ".nan" => f64::NAN,
        v if v.contains(':') => {
            // In Python's order: the last group first, each times its power of 60.
            let (mut total, mut base) = (0.0, 1.0);
            for part in v.rsplit(':') {
                total += number(part)? * base;
                base *= 60.0;
            }
            sign * total
        }
        v => sign * number(v)?,
    })
}

/// PyYAML's `construct_yaml_bool`.
pub(super) fn construct_bool(text: &str) -> Parsed<bool> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(Invalid),
    }
}
