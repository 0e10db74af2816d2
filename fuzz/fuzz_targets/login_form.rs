//! HTML login and consent pages (`login::form::parse`), as the form driver reads the pages an
//! authorization server serves, with the button/link classifiers and the `action`/`href`
//! resolution the driver applies next.
//!
//! Input: the page, decoded lossily as the driver does (`Response::text`).
//!
//! Properties, besides nothing panicking (hostile markup included):
//! - a form's method is upper case ASCII; its password field is one of its fields; its text
//!   inputs are fields too (username candidates are fields the driver will overwrite);
//! - no button or link both approves and denies (the driver must never click "Deny" to log in);
//! - resolving an `action` or `href` against the page URL gives an absolute URL or nothing;
//! - a meta refresh target comes from a `url=` in the page.
#![no_main]

use authconform_core::login_form::{self as form, resolve};
use libfuzzer_sys::fuzz_target;

const PAGE: &str = "https://auth.example.com/login?state=xyz";

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let page = form::parse(&html);
    for f in &page.forms {
        assert!(
            !f.method.bytes().any(|b| b.is_ascii_lowercase()),
            "{:?}",
            f.method
        );
        if let Some(pw) = &f.password {
            assert!(
                f.fields.iter().any(|(n, _)| n == pw),
                "password {pw:?} not a field"
            );
        }
        for t in &f.text_inputs {
            assert!(
                f.fields.iter().any(|(n, _)| n == t),
                "text input {t:?} not a field"
            );
        }
        for b in &f.buttons {
            assert!(
                !(b.approves() && b.denies()),
                "{b:?} both approves and denies"
            );
        }
        if let Some(u) = resolve(PAGE, &f.action) {
            assert!(url::Url::parse(&u).is_ok(), "{u:?}");
        }
    }
    for l in &page.links {
        let _ = l.denies();
        if let Some(u) = resolve(PAGE, &l.href) {
            assert!(url::Url::parse(&u).is_ok(), "{u:?}");
        }
    }
    if page.refresh.is_some() {
        assert!(html.to_ascii_lowercase().contains("url="));
    }
});
