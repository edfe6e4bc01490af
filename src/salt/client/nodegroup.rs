//! Nodegroups: Salt's expansion of `nodegroup` targets and `N@` words into compound
//! expressions (`_prep_pub`, `salt.utils.minions.nodegroup_comp`).

use crate::salt::error::{SaltError, SaltResult};
use crate::settings::NodegroupDef;

const COMPOUND_OPERATORS: [&str; 5] = ["and", "or", "not", "(", ")"];

pub(crate) type Nodegroups = std::collections::BTreeMap<String, NodegroupDef>;

/// A nodegroup named by the caller, as compound words (Salt's `_resolve_nodegroup`): an
/// unknown name is an error here; an unknown group nested inside is dropped, as Salt does.
pub(crate) fn resolve_nodegroup(name: &str, groups: &Nodegroups) -> SaltResult<Vec<String>> {
    if !groups.contains_key(name) {
        return Err(SaltError::Invocation(format!(
            "Node group {name} unavailable in the master config"
        )));
    }
    nodegroup_comp(name, groups, &mut Vec::new(), true)
}

/// Salt's `salt.utils.minions.nodegroup_comp`: the words of a nodegroup with nested `N@`
/// groups expanded (each in parentheses); a group of plain ids becomes one `L@a,b` word
/// (`E@…` if one looks like a regular expression); a top-level group with nothing nested
/// keeps its own words, without parentheses. A group nested in itself is an error.
fn nodegroup_comp(
    name: &str,
    groups: &Nodegroups,
    skip: &mut Vec<String>,
    first_call: bool,
) -> SaltResult<Vec<String>> {
    if skip.iter().any(|s| s == name) {
        return Err(SaltError::Invocation(format!(
            "Node group {name} is nested in itself"
        )));
    }
    let Some(def) = groups.get(name) else {
        // Salt logs "unknown nodegroup" and expands a nested one to nothing.
        return Ok(Vec::new());
    };
    let words: Vec<String> = match def {
        NodegroupDef::Compound(s) => s.split_whitespace().map(str::to_string).collect(),
        NodegroupDef::List(ids) => ids.clone(),
    };
    skip.push(name.to_string());
    let mut ret = Vec::new();
    let mut expanded = false;
    for word in &words {
        match word.strip_prefix("N@") {
            Some(inner) if !COMPOUND_OPERATORS.contains(&word.as_str()) && !inner.is_empty() => {
                expanded = true;
                ret.extend(nodegroup_comp(inner, groups, skip, false)?);
            }
            _ => ret.push(word.clone()),
        }
    }
    skip.pop();
    if (!first_call || !expanded)
        && let Some(joined) = ids_expression(&words)
    {
        return Ok(vec![joined]);
    }
    if !first_call || expanded {
        if !ret.is_empty() {
            ret.insert(0, "(".into());
            ret.push(")".into());
        }
        return Ok(ret);
    }
    Ok(words)
}

/// Salt's `_nodegroup_regex`: words with no operator, no `*` and no `X@` matcher are ids:
/// `L@a,b`, or `E@a,b` when one of them holds a regular-expression character.
fn ids_expression(words: &[String]) -> Option<String> {
    if words
        .iter()
        .any(|w| COMPOUND_OPERATORS.contains(&w.as_str()))
    {
        return None;
    }
    let typed = |w: &String| {
        let b = w.as_bytes();
        b.len() >= 2 && b[0].is_ascii_uppercase() && b[1] == b'@'
    };
    if words.iter().any(|w| w.contains('*') || typed(w)) {
        return None;
    }
    let regex = words
        .iter()
        .any(|w| w.contains(['(', '[', '{', '\\', '?', '}', ']', ')']));
    Some(format!(
        "{}@{}",
        if regex { "E" } else { "L" },
        words.join(",")
    ))
}

/// Replaces each `N@group` word of a compound target by its expansion (Salt's `_prep_pub`).
pub(crate) fn expand_compound(tgt: &str, groups: &Nodegroups) -> SaltResult<String> {
    let mut out = Vec::new();
    for w in tgt.split_whitespace() {
        match w.strip_prefix("N@") {
            Some(g) if !g.is_empty() => out.extend(resolve_nodegroup(g, groups)?),
            _ => out.push(w.to_string()),
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn groups() -> BTreeMap<String, NodegroupDef> {
        let mut g = BTreeMap::new();
        g.insert("web".into(), NodegroupDef::Compound("L@ms-0".into()));
        g.insert(
            "both".into(),
            NodegroupDef::Compound("N@web or ms-1".into()),
        );
        g.insert(
            "ids".into(),
            NodegroupDef::List(vec!["a".into(), "b".into()]),
        );
        g.insert("loop".into(), NodegroupDef::Compound("N@loop".into()));
        g.insert("plain".into(), NodegroupDef::Compound("ms-0 ms-1".into()));
        g.insert(
            "regex".into(),
            NodegroupDef::Compound("web[0-9] db?".into()),
        );
        g.insert(
            "globbed".into(),
            NodegroupDef::Compound("web* or db*".into()),
        );
        g.insert(
            "nested".into(),
            NodegroupDef::Compound("N@plain and G@os:Debian".into()),
        );
        g.insert(
            "unknown".into(),
            NodegroupDef::Compound("N@nosuch or ms-1".into()),
        );
        g
    }

    fn expand(name: &str) -> SaltResult<String> {
        let g = groups();
        let words = resolve_nodegroup(name, &g)?;
        expand_compound(&words.join(" "), &g)
    }

    #[test]
    fn nodegroups_expand_like_salts_nodegroup_comp() {
        let g = groups();
        // Top-level groups with nothing nested keep their own words, without parentheses;
        // nested groups are parenthesised, and so is a top-level group that nests one.
        assert_eq!(expand("web"), Ok("L@ms-0".into()));
        assert_eq!(expand("both"), Ok("( ( L@ms-0 ) or ms-1 )".into()));
        assert_eq!(expand("ids"), Ok("L@a,b".into()));
        assert_eq!(expand("plain"), Ok("L@ms-0,ms-1".into()));
        assert_eq!(expand("regex"), Ok("E@web[0-9],db?".into()));
        assert_eq!(expand("globbed"), Ok("web* or db*".into()));
        // A nested group of plain ids is one L@ word (no parentheses).
        assert_eq!(
            expand("nested"),
            Ok("( L@ms-0,ms-1 and G@os:Debian )".into())
        );
        // An unknown nested group is dropped, as Salt does.
        assert_eq!(expand("unknown"), Ok("( or ms-1 )".into()));
        assert!(expand("loop").is_err());
        assert!(expand("nope").is_err());
        assert_eq!(
            expand_compound("N@web and G@os:Debian", &g),
            Ok("L@ms-0 and G@os:Debian".into())
        );
        assert_eq!(
            expand_compound("N@plain and ms-0", &g),
            Ok("L@ms-0,ms-1 and ms-0".into())
        );
    }
}
