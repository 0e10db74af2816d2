// OpenAuth (@openauthjs/openauth) as a standalone OAuth 2.0 issuer on Node, the way its README
// runs one: issuer() with in-memory storage, served by @hono/node-server. OpenAuth does the OAuth
// work (authorize, token, PKCE, refresh, RFC 8414 metadata, JWKS); this file only supplies what
// OpenAuth leaves to the application: a provider with a plain HTML sign-in form (OpenAuth's own
// providers log in through an upstream IdP or an emailed code), and the success callback that
// names the subject. Everything else is OpenAuth's default configuration (any client_id, any
// loopback redirect URI, its default token lifetimes).
//
// Environment: PORT (default 4300), TEST_PASSWORD (default "alice-bob-test-pw"). Users: alice, bob.
import { serve } from "@hono/node-server";
import { issuer } from "@openauthjs/openauth";
import { MemoryStorage } from "@openauthjs/openauth/storage/memory";

// OpenAuth calls Array.fromAsync (Node 22+) when it detects refresh token reuse; Node 20 lacks
// it. This is the standard behaviour of that built-in, so the library runs as on Node 22.
if (typeof Array.fromAsync !== "function") {
  Array.fromAsync = async (iterable) => {
    const out = [];
    for await (const item of iterable) out.push(item);
    return out;
  };
}

const PORT = Number(process.env.PORT || 4300);
const PASSWORD = process.env.TEST_PASSWORD || "alice-bob-test-pw";
const USERS = new Set(["alice", "bob"]);

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const page = (error) => `<!doctype html><title>Sign in</title>
<form method="post">
<label>Username <input type="text" name="username"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button></form>${error ? `<p>${escape(error)}</p>` : ""}`;

// A provider in OpenAuth's provider interface: routes under /<name>/, ctx.success() on a login.
const formLogin = {
  type: "form",
  init(routes, ctx) {
    routes.get("/authorize", (c) => c.html(page()));
    routes.post("/authorize", async (c) => {
      const form = await c.req.formData();
      const username = String(form.get("username") || "");
      if (!USERS.has(username) || form.get("password") !== PASSWORD) {
        return c.html(page("Wrong username or password"), 401);
      }
      return ctx.success(c, { username });
    });
  },
};

const app = issuer({
  storage: MemoryStorage(),
  providers: { form: formLogin },
  success: async (ctx, value) => ctx.subject("user", { id: value.username }),
});

serve({ fetch: app.fetch, hostname: "127.0.0.1", port: PORT }, () => {
  console.log(`OpenAuth issuer: http://127.0.0.1:${PORT}`);
});
