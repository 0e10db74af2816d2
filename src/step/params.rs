//! Request parameters as ordered pairs of raw strings, encoded one value at a time: what the
//! authorization and token requests are built from.

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
