//! The `browser` login driver: a real headless Chromium driven over the DevTools protocol, for
//! logins whose form is rendered by JavaScript (single-page logins).

use serde::Deserialize;

use super::{Agent, Browser, Drive, Journey, LoginConfig, LoginError};

/// `[login.browser]` in the target profile.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// The Chromium executable (default: `chromium`, `chromium-browser` or `google-chrome` on
    /// `PATH`, or `$AUTHCONFORM_CHROMIUM`).
    pub chromium: Option<std::path::PathBuf>,
}

pub async fn run(
    _agent: &mut Agent<'_>,
    _browser: &mut Browser,
    _cfg: &LoginConfig,
    _d: &Drive<'_>,
) -> Result<Journey, LoginError> {
    Err(LoginError::Unavailable(
        "the browser login driver is not available in this build".into(),
    ))
}
