//! Reading HTML login and consent forms (with `scraper`): which fields a form posts, and which
//! of its buttons approves or denies. `authconform::login::form` re-exports this module; the
//! login driver that submits the forms stays there.

use scraper::{ElementRef, Html, Selector};

/// A form as a browser would submit it.
#[derive(Debug, Clone)]
pub struct Form {
    /// `action` as written (empty = the page's own URL).
    pub action: String,
    /// `GET` or `POST`.
    pub method: String,
    /// Successful controls with their current values, in document order.
    pub fields: Vec<(String, String)>,
    /// The name of the password input, if the form has one (a login form).
    pub password: Option<String>,
    /// Text-like inputs (`text`, `email`, no type) by name: username candidates.
    pub text_inputs: Vec<String>,
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone)]
pub struct Button {
    /// `name=value` the button adds when it submits the form.
    pub pair: Option<(String, String)>,
    /// Visible text or value, lowercased.
    pub label: String,
}

/// A link on the page (`<a href>`), for "cancel" links.
#[derive(Debug, Clone)]
pub struct Link {
    pub href: String,
    pub label: String,
}

pub struct Page {
    pub forms: Vec<Form>,
    pub links: Vec<Link>,
    /// `<meta name="referrer" content="...">`, if any.
    pub meta_referrer: Option<String>,
    /// The target of `<meta http-equiv="refresh" content="0;url=...">`: some servers send the
    /// browser back to the client with an HTML page instead of a 302.
    pub refresh: Option<String>,
}

fn sel(s: &str) -> Selector {
    // The selectors are literals below; a parse failure is a programming error caught by tests.
    Selector::parse(s).unwrap_or_else(|_| Selector::parse("*").expect("universal selector"))
}

fn text_of(e: &ElementRef<'_>) -> String {
    e.text()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub fn parse(html: &str) -> Page {
    let doc = Html::parse_document(html);
    let mut forms = Vec::new();
    for f in doc.select(&sel("form")) {
        let a = f.value();
        let mut form = Form {
            action: a.attr("action").unwrap_or("").to_string(),
            method: a.attr("method").unwrap_or("GET").to_ascii_uppercase(),
            fields: Vec::new(),
            password: None,
            text_inputs: Vec::new(),
            buttons: Vec::new(),
        };
        for c in f.select(&sel("input, button, select, textarea")) {
            let v = c.value();
            let name = v.attr("name").map(str::to_string);
            let disabled = v.attr("disabled").is_some();
            match v.name() {
                "input" => {
                    let ty = v.attr("type").unwrap_or("text").to_ascii_lowercase();
                    let value = v.attr("value").unwrap_or("").to_string();
                    match ty.as_str() {
                        "submit" | "image" => form.buttons.push(Button {
                            pair: name.map(|n| (n, value.clone())),
                            label: value.to_lowercase(),
                        }),
                        "button" | "reset" | "file" => {}
                        "checkbox" | "radio" => {
                            if let (Some(n), false, true) =
                                (name, disabled, v.attr("checked").is_some())
                            {
                                form.fields
                                    .push((n, if value.is_empty() { "on".into() } else { value }));
                            }
                        }
                        "password" => {
                            if let Some(n) = name {
                                form.password = Some(n.clone());
                                form.fields.push((n, value));
                            }
                        }
                        _ => {
                            if let (Some(n), false) = (name, disabled) {
                                if matches!(ty.as_str(), "text" | "email" | "tel") {
                                    form.text_inputs.push(n.clone());
                                }
                                form.fields.push((n, value));
                            }
                        }
                    }
                }
                "button" => {
                    let ty = v.attr("type").unwrap_or("submit").to_ascii_lowercase();
                    if ty == "submit" {
                        let label = format!("{} {}", text_of(&c), v.attr("value").unwrap_or(""))
                            .trim()
                            .to_lowercase();
                        form.buttons.push(Button {
                            pair: name.map(|n| (n, v.attr("value").unwrap_or("").to_string())),
                            label,
                        });
                    }
                }
                "select" => {
                    if let Some(n) = name {
                        let chosen = c
                            .select(&sel("option[selected]"))
                            .next()
                            .or_else(|| c.select(&sel("option")).next());
                        if let Some(o) = chosen {
                            let val = o
                                .value()
                                .attr("value")
                                .map(str::to_string)
                                .unwrap_or_else(|| text_of(&o));
                            form.fields.push((n, val));
                        }
                    }
                }
                "textarea" => {
                    if let Some(n) = name {
                        form.fields.push((n, c.text().collect()));
                    }
                }
                _ => {}
            }
        }
        forms.push(form);
    }
    let links = doc
        .select(&sel("a[href]"))
        .map(|a| Link {
            href: a.value().attr("href").unwrap_or("").to_string(),
            label: text_of(&a),
        })
        .collect();
    let meta_referrer = doc
        .select(&sel("meta[name=referrer]"))
        .next()
        .and_then(|m| m.value().attr("content").map(str::to_string));
    let refresh = doc
        .select(&sel("meta[http-equiv]"))
        .find(|m| {
            m.value()
                .attr("http-equiv")
                .is_some_and(|v| v.eq_ignore_ascii_case("refresh"))
        })
        .and_then(|m| m.value().attr("content"))
        .and_then(|c| {
            // `5; url=https://...` (the URL part is optional; quotes are tolerated).
            let (_, rest) = c.split_once(';')?;
            let rest = rest.trim();
            let url = rest
                .get(..4)
                .filter(|p| p.eq_ignore_ascii_case("url="))
                .map(|_| &rest[4..])?;
            Some(url.trim_matches(['\'', '"']).to_string())
        });
    Page {
        forms,
        links,
        meta_referrer,
        refresh,
    }
}

const APPROVE: &[&str] = &[
    "allow",
    "approve",
    "accept",
    "authorize",
    "authorise",
    "consent",
    "continue",
    "confirm",
    "grant",
    "yes",
    "ok",
    "sign in",
    "log in",
    "login",
    "submit",
];
const DENY: &[&str] = &[
    "deny", "cancel", "reject", "decline", "abort", "no", "refuse",
];

fn says(label: &str, words: &[&str]) -> bool {
    // "Sign-in", "sign_in" and "Sign in" are the same words.
    let spaced: String = label
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let spaced = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    spaced.split(' ').any(|w| words.contains(&w))
        || words
            .iter()
            .filter(|w| w.contains(' '))
            .any(|w| spaced.contains(w))
}

impl Button {
    pub fn approves(&self) -> bool {
        !self.denies() && (says(&self.label, APPROVE) || self.label.is_empty())
    }
    pub fn denies(&self) -> bool {
        says(&self.label, DENY)
            || self.pair.as_ref().is_some_and(|(n, v)| {
                says(&n.to_lowercase(), DENY) || says(&v.to_lowercase(), DENY)
            })
    }
}

impl Link {
    pub fn denies(&self) -> bool {
        says(&self.label, DENY) || says(&self.href.to_lowercase(), DENY)
    }
}

/// Resolves a `Location` (or a form's `action`, a link's `href`) against the URL it came from.
pub fn resolve(base: &str, location: &str) -> Option<String> {
    let b = url::Url::parse(base).ok()?;
    b.join(location).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_login_form() {
        let p = parse(
            r#"<form method="post" action="/interaction/x/login">
            <input type="hidden" name="prompt" value="login"/>
            <input required type="text" name="login" placeholder="Enter any login"/>
            <input type="password" name="password"/>
            <button type="submit" class="login">Sign-in</button></form>
            <a href="/interaction/x/abort">[ Cancel ]</a>"#,
        );
        let f = &p.forms[0];
        assert_eq!(f.method, "POST");
        assert_eq!(f.password.as_deref(), Some("password"));
        assert_eq!(f.text_inputs, vec!["login".to_string()]);
        assert!(f.fields.contains(&("prompt".into(), "login".into())));
        assert!(f.buttons[0].approves());
        assert!(p.links[0].denies());
        assert_eq!(p.refresh, None);
    }

    #[test]
    fn reads_a_meta_refresh() {
        let p = parse(
            r#"<html><head><meta http-equiv="Refresh" content="0; URL='https://client.test/cb?code=x'"></head></html>"#,
        );
        assert_eq!(p.refresh.as_deref(), Some("https://client.test/cb?code=x"));
    }

    #[test]
    fn tells_approve_from_deny() {
        let p = parse(
            r#"<form method="post"><input type="hidden" name="t" value="1">
            <button name="decision" value="deny">Deny</button>
            <button name="decision" value="allow">Allow access</button></form>"#,
        );
        let b = &p.forms[0].buttons;
        assert!(b[0].denies() && !b[0].approves());
        assert!(b[1].approves() && !b[1].denies());
    }
}
