//! Request parameters as ordered pairs of raw strings, encoded one value at a time: what the
//! authorization and token requests are built from.

use std::collections::BTreeMap;

use super::context::{CaseCtx, Stop};

/// One value, form-urlencoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Serialises ordered pairs as `a=b&c=d`, each value percent-encoded on its own.
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Adds the parameter, or replaces its value where the request already has it.
pub fn set(pairs: &mut Vec<(String, String)>, k: &str, v: String) {
    match pairs.iter_mut().find(|(n, _)| n == k) {
        Some(p) => p.1 = v,
        None => pairs.push((k.to_string(), v)),
    }
}

/// A step's changes to the default parameters: `params` added or replaced, `omit` removed (names
/// and values are templates).
pub fn adjust(
    ctx: &CaseCtx<'_>,
    pairs: &mut Vec<(String, String)>,
    params: &BTreeMap<String, String>,
    omit: &[String],
) -> Result<(), Stop> {
    for (k, t) in params {
        let (k, v) = (
            ctx.expand(k).map_err(Stop::Error)?,
            ctx.expand(t).map_err(Stop::Error)?,
        );
        set(pairs, &k, v);
    }
    let omit: Vec<String> = omit
        .iter()
        .map(|o| ctx.expand(o).map_err(Stop::Error))
        .collect::<Result<_, _>>()?;
    pairs.retain(|(k, _)| !omit.contains(k));
    Ok(())
}
