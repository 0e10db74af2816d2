//! The `script` login driver: a declared sequence of HTTP requests with captures, for logins
//! that are JSON APIs behind a JavaScript page (no HTML form to fill).
//!
//! ```toml
//! [[login.steps]]
//! method = "POST"
//! url = "${origin}/api/login"
//! json = { username = "${username}", password = "${password}", tx = "${query.tx}" }
//! capture = { next = "json:/redirect_to" }
//!
//! [[login.steps]]
//! url = "${next}"          # its redirect back to the client is the authorization response
//! ```
//! Values available: `authorize_url`, `origin` (of the authorization endpoint), `username`,
//! `password`, `location` (the last `Location` seen), `query.<name>` (parameters of the last
//! location), and every capture. A capture is `json:<pointer>`, `header:<name>` or
//! `regex:<pattern with one group>` over the body.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Agent, Browser, Drive, Journey, LoginConfig, Outcome, resolve};
use crate::http::Request;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Form fields (`application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// A JSON object body (string values are templates).
    #[serde(default)]
    pub json: Option<toml::Value>,
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

fn get() -> String {
    "GET".into()
}

impl ScriptStep {
    pub fn validate(&self) -> Result<(), String> {
        if !self.form.is_empty() && self.json.is_some() {
            return Err("a step sends `form` or `json`, not both".into());
        }
        for (name, c) in &self.capture {
            let ok = c.starts_with("json:") || c.starts_with("header:") || c.starts_with("regex:");
            if !ok {
                return Err(format!(
                    "capture {name}: {c:?} is not json:<pointer>, header:<name> or regex:<pattern>"
                ));
            }
            if let Some(p) = c.strip_prefix("regex:")
                && let Err(e) = regex_lite::Regex::new(p)
            {
                return Err(format!("capture {name}: bad pattern: {e}"));
            }
        }
        Ok(())
    }
}

fn fill(t: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {t:?}"))?;
        let name = &after[..end];
        out.push_str(
            vars.get(name)
                .ok_or_else(|| format!("`${{{name}}}` has no value in the login script"))?,
        );
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fill_json(
    v: &toml::Value,
    vars: &BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    Ok(match v {
        toml::Value::String(s) => serde_json::Value::String(fill(s, vars)?),
        toml::Value::Table(t) => {
            let mut m = serde_json::Map::new();
            for (k, v) in t {
                m.insert(k.clone(), fill_json(v, vars)?);
            }
            serde_json::Value::Object(m)
        }
        toml::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| fill_json(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        other => crate::case::model::toml_to_json(other),
    })
}

fn remember_location(vars: &mut BTreeMap<String, String>, loc: &str) {
    vars.insert("location".into(), loc.to_string());
    if let Some((_, q)) = loc.split_once('?') {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            vars.insert(format!("query.{k}"), v.into_owned());
        }
    }
}

pub async fn run(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    cfg: &LoginConfig,
    d: &Drive<'_>,
) -> Result<Journey, String> {
    let mut vars = BTreeMap::new();
    vars.insert("authorize_url".to_string(), d.url.clone());
    if let Ok(u) = url::Url::parse(&d.url) {
        vars.insert("origin".into(), u.origin().ascii_serialization());
    }
    vars.insert("username".into(), cfg.username.clone().unwrap_or_default());
    vars.insert("password".into(), cfg.password.clone().unwrap_or_default());
    let mut journey = Journey {
        outcome: Outcome::Page {
            url: d.url.clone(),
            status: 0,
            excerpt: String::new(),
        },
        pages: Vec::new(),
        interactions: Vec::new(),
        trace: Vec::new(),
    };
    for (i, step) in cfg.steps.iter().enumerate() {
        let url = fill(&step.url, &vars)?;
        let mut req = Request::new(&step.method, url.clone(), format!("login script step {i}"));
        for (k, v) in &step.headers {
            req = req.header(k, fill(v, &vars)?);
        }
        if !step.form.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &step.form {
                ser.append_pair(k, &fill(v, &vars)?);
            }
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(ser.finish());
        } else if let Some(j) = &step.json {
            req = req
                .header("Content-Type", "application/json")
                .body(fill_json(j, &vars)?.to_string());
        }
        let r = browser.send(&mut agent.wire, req).await?;
        journey.interactions.push("script");
        journey.pages.extend(super::script_page(&url, &r));
        let loc = r.header("location").map(str::to_string);
        if let Some(l) = &loc {
            remember_location(&mut vars, &resolve(&url, l).unwrap_or_else(|| l.clone()));
            if let Ok(out) = super::leaves(browser, d, &url, l) {
                journey.outcome = out;
                return Ok(journey);
            }
        }
        for (name, c) in &step.capture {
            let v = if let Some(p) = c.strip_prefix("json:") {
                r.json().and_then(|j| {
                    j.pointer(p).map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                })
            } else if let Some(h) = c.strip_prefix("header:") {
                r.header(h).map(str::to_string)
            } else if let Some(p) = c.strip_prefix("regex:") {
                regex_lite::Regex::new(p).ok().and_then(|re| {
                    re.captures(&r.text())
                        .and_then(|m| m.get(1).map(|g| g.as_str().to_string()))
                })
            } else {
                None
            };
            let v = v.ok_or_else(|| {
                format!(
                    "login script step {i}: capture {name} ({c}) found nothing in the {} response",
                    r.status
                )
            })?;
            vars.insert(name.clone(), v);
        }
        journey.outcome = Outcome::Page {
            url,
            status: r.status,
            excerpt: r.text().chars().take(200).collect(),
        };
    }
    // The script ended on the AS; a final redirect chain is followed like a browser would.
    if let Some(next) = vars.get("location").cloned()
        && browser.allows(&next)
    {
        return super::browse(
            agent,
            browser,
            cfg,
            &Drive {
                url: next,
                redirect_uri: d.redirect_uri,
                consent: d.consent,
                login: false,
            },
            false,
        )
        .await
        .map(|mut j| {
            j.interactions.splice(0..0, journey.interactions);
            j
        });
    }
    Err("the login script ended without a redirect back to the client".into())
}
