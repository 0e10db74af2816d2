// better-auth 1.7.29 with its OAuth 2.1 provider plugin (@better-auth/oauth-provider 1.7.29), set
// up as its MCP plugin sets it up, as an authorization server alone for authconform's real-server
// runs. Loopback only; state in memory (better-auth's memory adapter): it forgets everything at
// restart, so the test users and the pre-registered clients are created here at start.
//
// Why not `mcp()` from @better-auth/mcp itself: its latest release (1.7.5) declares an exact peer
// better-call@1.4.0 while better-auth 1.7.29 depends on better-call 1.4.6, so npm cannot install
// the two together. mcp() is a thin wrapper (its dist/index.mjs): oauthProvider() with the MCP
// resource added to `resources` and to `clientRegistrationDefaultResources`,
// refreshTokenReuseInterval 30 s, and the RFC 9728 protected-resource metadata of that resource.
// This server passes oauthProvider() the same options and serves the same metadata document.
//
// The login is what a better-auth application's pages do in JavaScript (no HTML form posts):
//   GET  /api/auth/oauth2/authorize?...        -> 302 /login?<the request, signed: sig, exp, ...>
//   GET  /login?...                            a page whose script does:
//   POST /api/auth/sign-in/email  {"email","password","oauth_query":"<the page's query>"}
//        -> 200 {"redirect":true,"url":"/consent?..."} (or straight back to the client)
//   GET  /consent?...                          a page whose script does:
//   POST /api/auth/oauth2/consent {"accept":true|false,"oauth_query":"<the page's query>"}
//        -> 200 {"redirect":true,"url":"<redirect_uri>?code=...&state=...&iss=..."}
//
// Environment: PORT (default 4400), TEST_PASSWORD (alice's and bob's password), STATIC_SECRET (the
// pre-registered confidential client's secret).
import http from "node:http";
import { randomBytes } from "node:crypto";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { jwt } from "better-auth/plugins";
import { toNodeHandler } from "better-auth/node";
import { getAuthTables } from "better-auth/db";
import {
  oauthProvider,
  oauthProviderAuthServerMetadata,
  oauthProviderOpenIdConfigMetadata,
} from "@better-auth/oauth-provider";
import { cimd } from "@better-auth/cimd";
import { fetchClientMetadataResource } from "@better-auth/cimd/node";

const PORT = Number(process.env.PORT || 4400);
const HOST = "127.0.0.1";
const ORIGIN = `http://${HOST}:${PORT}`;
const PASSWORD = process.env.TEST_PASSWORD;
const STATIC_SECRET = process.env.STATIC_SECRET || "static-secret";
if (!PASSWORD || PASSWORD.length < 8) {
  console.error("TEST_PASSWORD must be set (8 characters or more: better-auth's minimum)");
  process.exit(2);
}
// The MCP resource the tokens are for (as mcp({ resource }) names it). Nothing serves it: this is
// an authorization server alone.
const RESOURCE = `${ORIGIN}/mcp`;

// The pre-registered clients get fixed ids and secret: the ids (and secret) handed out next.
const fixedIds = [];
const fixedSecrets = [];
const random = () => randomBytes(24).toString("base64url");

const db = {};
const provider = oauthProvider({
  loginPage: "/login",
  consentPage: "/consent",
  scopes: ["openid", "profile", "email", "offline_access", "mcp:read", "mcp:write"],
  // As mcp() does:
  refreshTokenReuseInterval: 30,
  resources: [RESOURCE],
  clientRegistrationDefaultResources: [RESOURCE],
  // Dynamic Client Registration, open (MCP clients register themselves); mcp() leaves it off
  // unless asked, and MCP deployments without CIMD turn it on like this.
  allowDynamicClientRegistration: true,
  allowUnauthenticatedClientRegistration: true,
  generateClientId: () => fixedIds.shift() ?? random(),
  generateClientSecret: () => fixedSecrets.shift() ?? random(),
  // The plugin's own rate limits (5 registrations, 20 token and 30 authorization requests a
  // minute) are lifted: the suite makes hundreds from one address. A 429 would only error cases.
  rateLimit: {
    token: false,
    authorize: false,
    introspect: false,
    revoke: false,
    register: false,
    rotateClientKeys: false,
    userinfo: false,
  },
});

const options = {
  baseURL: ORIGIN,
  basePath: "/api/auth",
  // A test deployment's fixed secret (it signs sessions and the login page's query).
  secret: "authconform-better-auth-test-secret-0123456789",
  database: memoryAdapter(db),
  emailAndPassword: { enabled: true },
  // better-auth's own rate limiter (on by default outside development), lifted for the same reason.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [
    jwt(),
    provider,
    // Client ID Metadata Documents as mcp()'s documentation composes them: the stock Node
    // transport (resolve once, public-routable addresses only, no redirects followed) and the
    // MCP 2026-07-28 metadata profile. It refuses loopback, where authconform's document host
    // listens: in this run the AS fetches no document.
    cimd({ fetchClientMetadataResource, metadataProfile: "mcp-2026-07-28" }),
  ],
};
// The memory adapter needs every table to exist before it is first used.
for (const t of Object.values(getAuthTables(options))) db[t.modelName] = [];
const auth = betterAuth(options);

const nodeHandler = toNodeHandler(auth);
const asMetadata = oauthProviderAuthServerMetadata(auth);
const oidcMetadata = oauthProviderOpenIdConfigMetadata(auth);

// The protected-resource metadata mcp() serves for its resource.
function resourceMetadata() {
  return {
    resource: RESOURCE,
    authorization_servers: [`${ORIGIN}/api/auth`],
    bearer_methods_supported: ["header"],
    scopes_supported: ["mcp:read", "mcp:write"],
  };
}

// The login and consent pages: no form, only a script calling the JSON API (as a better-auth
// application's pages do with its client library).
const page = (title, body, script) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>${body}
<script>
const oauthQuery = location.search.slice(1);
async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, oauth_query: oauthQuery }), credentials: "include" });
  const j = await r.json().catch(() => ({}));
  if (j.url) location.href = j.url; else document.getElementById("err").textContent = j.message || r.status;
}
${script}
</script></body></html>`;

const loginPage = () =>
  page(
    "Sign in",
    `<div id="app"><input id="email" type="email" autocomplete="username">
<input id="password" type="password" autocomplete="current-password">
<button id="go">Sign in</button><p id="err"></p></div>`,
    `document.getElementById("go").onclick = () => post("/api/auth/sign-in/email",
  { email: document.getElementById("email").value, password: document.getElementById("password").value });`,
  );

const consentPage = (q) => {
  const client = (q.get("client_id") || "").replace(/[<>&"]/g, "");
  const scope = (q.get("scope") || "").replace(/[<>&"]/g, "");
  return page(
    "Authorize access",
    `<p>The application <b>${client}</b> asks for: ${scope || "(no scope)"}</p>
<button id="allow">Allow</button> <button id="deny">Deny</button><p id="err"></p>`,
    `document.getElementById("allow").onclick = () => post("/api/auth/oauth2/consent", { accept: true });
document.getElementById("deny").onclick = () => post("/api/auth/oauth2/consent", { accept: false });`,
  );
};

function toRequest(req) {
  return new Request(`${ORIGIN}${req.url}`, { method: req.method, headers: req.headers });
}

async function sendFetchResponse(res, response) {
  res.statusCode = response.status;
  response.headers.forEach((v, k) => res.setHeader(k, v));
  res.end(Buffer.from(await response.arrayBuffer()));
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, ORIGIN);
    const p = url.pathname;
    if (p.startsWith("/api/auth/") && !p.startsWith("/api/auth/.well-known/")) {
      return await nodeHandler(req, res);
    }
    // RFC 8414 metadata of the issuer http://127.0.0.1:PORT/api/auth: path inserted after the
    // well-known prefix, and (as OIDC discovery) appended to the issuer.
    if (p === "/.well-known/oauth-authorization-server/api/auth") {
      return await sendFetchResponse(res, await asMetadata(toRequest(req)));
    }
    if (p === "/.well-known/openid-configuration/api/auth" || p === "/api/auth/.well-known/openid-configuration") {
      return await sendFetchResponse(res, await oidcMetadata(toRequest(req)));
    }
    if (p === "/.well-known/oauth-protected-resource" || p === "/.well-known/oauth-protected-resource/mcp") {
      res.writeHead(200, { "Content-Type": "application/json" });
      return res.end(JSON.stringify(resourceMetadata()));
    }
    if (p === "/login" && req.method === "GET") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(loginPage());
    }
    if (p === "/consent" && req.method === "GET") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(consentPage(url.searchParams));
    }
    if (p === "/") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      return res.end("better-auth OAuth provider (authconform target)\n");
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found\n");
  } catch (e) {
    console.error(e);
    if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
    res.end("internal error\n");
  }
});

// The test users and the pre-registered clients (the memory adapter starts empty).
for (const [name, email] of [["Alice", "alice@example.test"], ["Bob", "bob@example.test"]]) {
  await auth.api.signUpEmail({ body: { name, email, password: PASSWORD } });
}
// Clients are created by a signed-in user (alice, by the server's own API).
const signedIn = await auth.api.signInEmail({
  body: { email: "alice@example.test", password: PASSWORD },
  returnHeaders: true,
});
const cookie = signedIn.headers
  .getSetCookie()
  .map((c) => c.split(";")[0])
  .join("; ");
for (const c of [
  { id: "static-public", body: { token_endpoint_auth_method: "none" } },
  {
    id: "static-confidential",
    secret: STATIC_SECRET,
    body: { token_endpoint_auth_method: "client_secret_basic" },
  },
]) {
  fixedIds.push(c.id);
  if (c.secret) fixedSecrets.push(c.secret);
  const made = await auth.api.adminCreateOAuthClient({
    headers: new Headers({ cookie }),
    body: {
      client_name: c.id,
      redirect_uris: ["http://127.0.0.1:8765/callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      // A loopback redirect URI is a native client's (web clients must use https, not loopback).
      application_type: "native",
      scope: "openid profile email offline_access mcp:read mcp:write",
      resources: [RESOURCE],
      ...c.body,
    },
  });
  if (made.client_id !== c.id) throw new Error(`client ${c.id} was created as ${made.client_id}`);
}

server.listen(PORT, HOST, () => {
  console.log(`better-auth OAuth provider ready: issuer ${ORIGIN}/api/auth (login /login, consent /consent)`);
});
