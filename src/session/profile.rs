//! The built-in reference's facts as a target profile. The reference builds no harness types
//! (it must not bend to the harness it is checked against); this is where its plain facts meet
//! the harness's [`Profile`].

use crate::reference::Facts;
use crate::target::{ClientConfig, Profile, StateHandlesConfig};

/// The profile a run against the reference uses: its clients, its test users, the form login,
/// its tools, and its short code lifetime (so code-lifetime can be observed in a test run).
pub fn reference_profile(f: &Facts) -> Profile {
    let mut p = Profile::default();
    p.target.resource = Some(f.resource.clone());
    p.clients = f
        .clients
        .iter()
        .map(|c| ClientConfig {
            client_id: c.client_id.clone(),
            auth_method: c.auth_method.clone(),
            secret_env: None,
            redirect_uris: c.redirect_uris.clone(),
            secret: c.secret.clone(),
            key_file: None,
            key_id: None,
            key: None,
        })
        .collect();
    p.authorization.scope = Some(f.baseline_scope.into());
    p.scopes.elevated_tool = Some(f.elevated_tool.into());
    p.tokens.upstream = f.upstream_token.clone();
    p.passthrough.tool = Some(f.fetch_tool.into());
    p.passthrough.argument = Some(f.fetch_argument.into());
    p.scopes.multi_scope_tool = Some(f.multi_scope_tool.into());
    p.scopes.narrow_tool = Some(f.narrow_tool.into());
    p.scopes.broad_scope = Some(f.broad_scope.into());
    p.login.driver = match f.login_style {
        crate::reference::LoginStyle::Form => crate::login::Driver::Form,
        crate::reference::LoginStyle::Json => {
            p.login.steps = json_login_steps();
            crate::login::Driver::Script
        }
        crate::reference::LoginStyle::Spa => crate::login::Driver::Browser,
    };
    p.login.username = Some(f.user.username.clone());
    p.login.password = Some(f.user.password.clone());
    p.login.second_username = Some(f.second_user.username.clone());
    p.login.second_password = Some(f.second_user.password.clone());
    // The rest of its users make a pool as large as a run's default concurrency: cases
    // running at once each log in as their own user.
    p.login.users = f
        .more_users
        .iter()
        .map(|u| crate::login::users::UserConfig {
            name: None,
            username: u.username.clone(),
            password_env: None,
            password: Some(u.password.clone()),
        })
        .collect();
    p.state_handles = StateHandlesConfig {
        create_tool: Some(f.state_handles.create_tool.into()),
        create_arguments: Default::default(),
        use_tool: Some(f.state_handles.use_tool.into()),
        argument: Some(f.state_handles.argument.into()),
        handle: Some(f.state_handles.handle_pointer.clone()),
    };
    p.grant_revocation.url = Some(f.account_revoke_url.clone());
    p.operator.rotate_keys_url = Some(f.rotate_keys_url.clone());
    p.cimd.trust_policy = Some(f.cimd_trust_policy.into());
    p.token_exchange.offered = f.offer.token_exchange;
    // It trusts the suite's IdP when it offers ID-JAG (the session hands it the IdP's keys);
    // its confidential client redeems them.
    if f.offer.id_jag {
        p.enterprise = Some(crate::target::EnterpriseConfig {
            client: "ref-confidential".into(),
            ..Default::default()
        });
    }
    p.timing.code_lifetime_secs = Some(f.code_lifetime.as_secs());
    p.timing.refresh_idle_secs = Some(f.refresh_idle.as_secs());
    // Long enough to outwait a code: the waiting cases run instead of being skipped.
    p.timing.max_wait_secs = Some(f.code_lifetime.as_secs() + 5);
    p
}

/// The login script for the reference's json login style, written as a user would write it in
/// a profile (README, "The script driver", shows the same steps).
pub const JSON_LOGIN_SCRIPT: &str = r#"
# 1. The authorization request. The AS sends the browser to its sign-in page, whose
#    transaction id the next steps send back. (A refusal here, an error page, is the AS's
#    answer to the request: the login ends and the case judges it.)
[[login.steps]]
url = "${authorize_url}"
capture = { txn = "location:query.txn" }

# 2. The sign-in page: no form, only a script (recorded as the login page the user sees).
[[login.steps]]
url = "${location}"
page = "login"

# 3. The credentials, as JSON. When this client needs no consent the answer already holds the
#    redirect back to the client, and the login ends there.
[[login.steps]]
method = "POST"
url = "${origin}/as/api/login"
json = { txn = "${txn}", username = "${username}", password = "${password}" }
does = "login"
follow = "json:/redirect_to"
capture = { next = "json:/next" }
end = [{ status = 401, outcome = "failed", why = "the AS refused the credentials" }]

# 4. The consent view the user would see.
[[login.steps]]
url = "${origin}${next}"
page = "consent"

# 5. The decision (`${consent}` is approve or deny, as the case asks); the answer names the
#    redirect back to the client. A 4xx without one is where the AS left the user.
[[login.steps]]
method = "POST"
url = "${origin}/as/api/consent"
json = { txn = "${txn}", decision = "${consent}" }
does = "consent"
follow = "json:/redirect_to"
end = [{ status = "4xx", outcome = "refused" }]
"#;

fn json_login_steps() -> Vec<crate::login::script::ScriptStep> {
    #[derive(serde::Deserialize)]
    struct Doc {
        login: crate::login::LoginConfig,
    }
    // A constant, checked by a test: it cannot fail at run time.
    toml::from_str::<Doc>(JSON_LOGIN_SCRIPT)
        .map(|d| d.login.steps)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_json_login_script_parses_and_validates() {
        let steps = super::json_login_steps();
        assert_eq!(steps.len(), 5);
        for s in &steps {
            s.validate().unwrap();
        }
    }
}
