//! The target under test and the TOML target profile (`--config FILE`).
//!
//! A profile grows with the suite (clients, login, features); unknown keys are errors so a typo
//! never silently disables a setting.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::case::{FileError, line_col, read_text, span_of, toml_error};
use crate::http::HttpConfig;

/// What the run points at. Either may be absent: no resource → RS cases are skipped.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The MCP endpoint URL.
    pub resource: Option<String>,
    /// The authorization server's issuer identifier (else discovered from the PRM).
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub target: ProfileTarget,
    #[serde(default)]
    pub http: ProfileHttp,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileTarget {
    pub resource: Option<String>,
    pub issuer: Option<String>,
    /// Optional display name.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileHttp {
    /// Bytes of a response body read at most.
    pub max_body: Option<usize>,
    pub connect_timeout_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    /// PEM file of extra trusted CA certificates (a private CA or a test server's).
    pub ca_file: Option<String>,
}

impl ProfileHttp {
    pub fn apply(&self, base_dir: &Path, cfg: &mut HttpConfig) -> Result<(), String> {
        if let Some(n) = self.max_body {
            cfg.max_body = n;
        }
        if let Some(s) = self.connect_timeout_secs {
            cfg.connect_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.timeout_secs {
            cfg.timeout = Duration::from_secs(s);
        }
        if let Some(f) = &self.ca_file {
            let p = base_dir.join(f);
            let pem = std::fs::read(&p).map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            cfg.extra_roots_pem.push(pem);
        }
        Ok(())
    }
}

/// Reads and validates a profile; errors are located like case-file errors.
pub fn load_profile(path: &Path) -> Result<Profile, FileError> {
    let (display, text) = read_text(path)?;
    let profile: Profile = toml::from_str(&text).map_err(|e| toml_error(&display, &text, &e))?;
    let at = |path: &[&str], message: String| {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let (line, column) = span_of(&text, &p)
            .map(|s| line_col(&text, s.start))
            .unwrap_or((1, 1));
        FileError {
            file: display.clone(),
            line,
            column,
            field: Some(path.join(".")),
            message,
        }
    };
    for (key, val) in [
        ("resource", &profile.target.resource),
        ("issuer", &profile.target.issuer),
    ] {
        if let Some(v) = val {
            check_url(v).map_err(|m| at(&["target", key], m))?;
        }
    }
    if profile.target.resource.is_none() && profile.target.issuer.is_none() {
        return Err(at(
            &["target"],
            "a profile names `target.resource` (an MCP endpoint) or `target.issuer` (an authorization server)".into(),
        ));
    }
    if profile.http.max_body == Some(0) {
        return Err(at(&["http", "max_body"], "must be at least 1 byte".into()));
    }
    Ok(profile)
}

/// A target URL must be absolute http(s) with a host.
pub fn check_url(v: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Ok(()),
        Ok(u) => Err(format!(
            "{v:?} is not an http(s) URL with a host (scheme {:?})",
            u.scheme()
        )),
        Err(e) => Err(format!("{v:?} is not a URL: {e}")),
    }
}
