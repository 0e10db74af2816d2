"""An OAuth 2.0 authorization server built from Authlib's Flask integration, the way Authlib's
documentation and its example-oauth2-server assemble one: Authlib's grants, endpoints and
SQLAlchemy mixins do the OAuth work; this file only stores their records (SQLite in memory),
registers them and supplies the pages Authlib leaves to the application (a login form and a
consent form). Records live in a SQLite file (DB, made fresh by start.sh): a file rather than
SQLite in memory, since one in-memory connection shared by the server's threads breaks under
concurrent requests.

Registered with the server: the authorization code grant with PKCE required (RFC 7636), refresh
tokens rotated on use, client credentials, revocation (RFC 7009), introspection (RFC 7662),
open Dynamic Client Registration (RFC 7591), the `iss` authorization response parameter
(RFC 9207), and RFC 8414 metadata at /.well-known/oauth-authorization-server.

Environment: PORT (default 4100), DB (SQLite file), TEST_PASSWORD (the users' password, default "alice-bob-test-pw").
Users: alice, bob. Pre-registered clients: static-public (no secret) and static-confidential
(secret "static-secret", client_secret_basic), redirect URI http://127.0.0.1:8765/callback.
"""

import os
import time

from flask import Flask, jsonify, redirect, render_template_string, request, session, url_for
from flask_sqlalchemy import SQLAlchemy
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import (
    OAuth2AuthorizationCodeMixin,
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_query_token_func,
    create_revocation_endpoint,
    create_save_token_func,
)
from authlib.oauth2 import OAuth2Error, rfc8414, rfc9207
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

PORT = int(os.environ.get("PORT", "4100"))
ISSUER = f"http://127.0.0.1:{PORT}"
PASSWORD = os.environ.get("TEST_PASSWORD", "alice-bob-test-pw")
REDIRECT_URI = "http://127.0.0.1:8765/callback"
SCOPES = ["mcp:read", "mcp:write"]

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.urandom(24),
    SQLALCHEMY_DATABASE_URI="sqlite:///" + os.environ["DB"],
    # Concurrent requests wait for SQLite's write lock instead of failing at once.
    SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30, "check_same_thread": False}},
    OAUTH2_REFRESH_TOKEN_GENERATOR=True,
    OAUTH2_SCOPES_SUPPORTED=SCOPES,
    # One hour, as MCP asks of access tokens (Authlib's default is ten days).
    OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": 3600, "refresh_token": 3600, "client_credentials": 3600},
)
db = SQLAlchemy(app)


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True)

    def get_user_id(self):
        return self.id


class Client(db.Model, OAuth2ClientMixin):
    id = db.Column(db.Integer, primary_key=True)


class AuthorizationCode(db.Model, OAuth2AuthorizationCodeMixin):
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer)


class Token(db.Model, OAuth2TokenMixin):
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer)

    def is_refresh_token_active(self):
        return not self.refresh_token_revoked_at and not self.is_expired_refresh()

    def is_expired_refresh(self):
        return False


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    # Public clients (PKCE, no secret) as well as confidential ones.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code, request):
        item = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.payload.scope,
            user_id=request.user.id,
            code_challenge=request.payload.data.get("code_challenge"),
            code_challenge_method=request.payload.data.get("code_challenge_method"),
        )
        db.session.add(item)
        db.session.commit()
        return item

    def query_authorization_code(self, code, client):
        item = AuthorizationCode.query.filter_by(code=code, client_id=client.client_id).first()
        if item and not item.is_expired():
            return item

    def delete_authorization_code(self, authorization_code):
        db.session.delete(authorization_code)
        db.session.commit()

    def authenticate_user(self, authorization_code):
        return db.session.get(User, authorization_code.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token):
        item = Token.query.filter_by(refresh_token=refresh_token).first()
        if item and item.is_refresh_token_active():
            return item

    def authenticate_user(self, credential):
        return db.session.get(User, credential.user_id)

    def revoke_old_credential(self, credential):
        now = int(time.time())
        credential.access_token_revoked_at = now
        credential.refresh_token_revoked_at = now
        db.session.add(credential)
        db.session.commit()


class S256Only(CodeChallenge):
    # OAuth 2.1 deployments offer S256 alone (Authlib also accepts plain by default); the
    # metadata below advertises the same list.
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]


class Revocation(create_revocation_endpoint(db.session, Token)):
    # The client authentication methods the metadata advertises for this endpoint (Authlib's
    # default is client_secret_basic alone; public clients revoke with their client_id).
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


query_token = create_query_token_func(db.session, Token)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        return query_token(token_string, token_type_hint)

    def introspect_token(self, token):
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": token.token_type,
            "scope": token.get_scope(),
            "iss": ISSUER,
            "exp": token.issued_at + token.expires_in,
            "iat": token.issued_at,
        }

    def check_permission(self, token, client, request):
        # A client may introspect its own tokens only.
        return token.client_id == client.client_id


class Registration(ClientRegistrationEndpoint):
    def authenticate_token(self, request):
        return True  # open registration, as MCP clients expect

    def resolve_public_key(self, request):
        return None

    def get_server_metadata(self):
        return metadata()

    def save_client(self, client_info, client_metadata, request):
        client = Client(**client_info)
        client.set_client_metadata(client_metadata)
        db.session.add(client)
        db.session.commit()
        return client


class Issuer(rfc9207.IssuerParameter):
    def get_issuer(self):
        return ISSUER


server = AuthorizationServer(app, create_query_client_func(db.session, Client), create_save_token_func(db.session, Token))
server.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
server.register_grant(RefreshTokenGrant)
server.register_grant(grants.ClientCredentialsGrant)

# Enterprise-managed authorization (ID-JAG), only when the environment names the enterprise IdP
# to trust: Authlib's draft grant (authlib.oauth2.drafts.IDJAGGrant, draft-ietf-oauth-identity-
# assertion-authz-grant) does the work; this supplies the hooks it leaves to the application,
# as its documentation asks. IDJAG_ISSUER is the IdP issuer, IDJAG_KEY_FILE a PEM file with
# its P-256 key (the public half is what is trusted).
IDJAG_ISSUER = os.environ.get("IDJAG_ISSUER")
IDJAG_KEY_FILE = os.environ.get("IDJAG_KEY_FILE")
if IDJAG_ISSUER and IDJAG_KEY_FILE:
    from joserfc.jwk import ECKey
    from authlib.oauth2.drafts import IDJAGGrant
    from authlib.oauth2.rfc6749 import InvalidGrantError

    with open(IDJAG_KEY_FILE, "rb") as f:
        _idp_key = ECKey.import_key(f.read())
    IDJAG_PUBLIC_KEY = ECKey.import_key(_idp_key.as_dict(private=False))
    _seen_jtis = set()

    class EnterpriseGrant(IDJAGGrant):
        def get_audiences(self):
            return [ISSUER]

        def resolve_issuer_key(self, issuer, headers):
            # The one IdP this server trusts for single sign-on.
            if issuer != IDJAG_ISSUER:
                raise InvalidGrantError(description="untrusted issuer")
            return IDJAG_PUBLIC_KEY

        def authenticate_user(self, subject):
            # Just-in-time: every enterprise subject acts as the test user alice.
            return User.query.filter_by(username="alice").first()

        def check_jti(self, claims, jti):
            key = (claims["iss"], jti)
            if key in _seen_jtis:
                return False
            _seen_jtis.add(key)
            return True

        def check_id_jag_permission(self, client, user, scopes):
            return True

    server.register_grant(EnterpriseGrant)
server.register_endpoint(Revocation)
server.register_endpoint(Introspection)
server.register_endpoint(Registration)
server.register_extension(Issuer())


def metadata():
    data = rfc8414.AuthorizationServerMetadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        registration_endpoint=f"{ISSUER}/register",
        revocation_endpoint=f"{ISSUER}/revoke",
        introspection_endpoint=f"{ISSUER}/introspect",
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token", "client_credentials"]
        + (["urn:ietf:params:oauth:grant-type:jwt-bearer"] if IDJAG_ISSUER else []),
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        revocation_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported=["S256"],
        authorization_response_iss_parameter_supported=True,
    )
    data.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
    if IDJAG_ISSUER:
        # Draft-ietf-oauth-identity-assertion-authz-grant §7.2 (Authlib has no member for it).
        data["authorization_grant_profiles_supported"] = ["urn:ietf:params:oauth:grant-profile:id-jag"]
    return data


@app.route("/.well-known/oauth-authorization-server")
def well_known():
    return jsonify(metadata())


@app.route("/")
def home():
    return "Authlib authorization server; metadata at /.well-known/oauth-authorization-server\n"


def current_user():
    uid = session.get("uid")
    return db.session.get(User, uid) if uid else None


LOGIN = """<!doctype html><title>Sign in</title>
<form method="post"><input type="hidden" name="next" value="{{ next }}">
<label>Username <input type="text" name="username"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button></form>{% if error %}<p>{{ error }}</p>{% endif %}"""

CONSENT = """<!doctype html><title>Authorize {{ client.client_name or client.client_id }}</title>
<p>Signed in as {{ user.username }}.</p>
<p><strong>{{ client.client_name or client.client_id }}</strong>
{% if client.client_uri %}({{ client.client_uri }}){% endif %} asks for: {{ scope or "(no scope)" }}.</p>
<p>After you decide, you go to {{ redirect_uri }}.</p>
<form method="post">
<button type="submit" name="confirm" value="yes">Allow</button>
<button type="submit" name="confirm" value="">Deny</button></form>"""


@app.route("/login", methods=["GET", "POST"])
def login():
    nxt = request.values.get("next", "/")
    if not nxt.startswith("/"):
        nxt = "/"
    if request.method == "POST":
        user = User.query.filter_by(username=request.form.get("username", "")).first()
        if user and request.form.get("password") == PASSWORD:
            session["uid"] = user.id
            return redirect(nxt)
        return render_template_string(LOGIN, next=nxt, error="Wrong username or password"), 401
    return render_template_string(LOGIN, next=nxt, error=None)


@app.route("/authorize", methods=["GET", "POST"])
def authorize():
    user = current_user()
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return server.handle_error_response(request, error)
    if user is None:
        return redirect(url_for("login", next=request.full_path))
    if request.method == "GET":
        return render_template_string(
            CONSENT,
            user=user,
            client=grant.client,
            scope=grant.request.payload.scope,
            redirect_uri=grant.redirect_uri,
        )
    grant_user = user if request.form.get("confirm") else None
    return server.create_authorization_response(grant_user=grant_user, grant=grant)


@app.route("/token", methods=["POST"])
def issue_token():
    return server.create_token_response()


@app.route("/revoke", methods=["POST"])
def revoke_token():
    return server.create_endpoint_response("revocation")


@app.route("/introspect", methods=["POST"])
def introspect_token():
    return server.create_endpoint_response("introspection")


@app.route("/register", methods=["POST"])
def register_client():
    return server.create_endpoint_response("client_registration")


def seed():
    db.create_all()
    db.session.add_all([User(username="alice"), User(username="bob")])
    for client_id, secret, method in [
        ("static-public", "", "none"),
        ("static-confidential", "static-secret", "client_secret_basic"),
    ]:
        c = Client(client_id=client_id, client_secret=secret, client_id_issued_at=int(time.time()))
        c.set_client_metadata({
            "client_name": client_id,
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"] + (["client_credentials"] if secret else [])
            + (["urn:ietf:params:oauth:grant-type:jwt-bearer"] if secret and IDJAG_ISSUER else []),
            "response_types": ["code"],
            "scope": " ".join(SCOPES),
            "token_endpoint_auth_method": method,
        })
        db.session.add(c)
    db.session.commit()


with app.app_context():
    seed()

if __name__ == "__main__":
    print(f"Authlib authorization server: issuer {ISSUER}", flush=True)
    app.run(host="127.0.0.1", port=PORT, threaded=True)
