// Preloaded into oidc-provider (NODE_OPTIONS=--import=<this file>) for authconform's
// "oidc-provider-cimd-dev" run: it lets the server fetch Client ID Metadata Documents from
// loopback, where authconform's document host listens.
//
// oidc-provider 9 passes every outgoing fetch an undici dispatcher that destroys connections to
// special-use addresses (127.0.0.0/8 included): right for production, and recorded by the
// stock run, where the CIMD cases cannot see a single document fetched. A development
// deployment lifts that protection; this does the same by dropping the dispatcher option, so
// every other CIMD behaviour of the server (URL rules, validation, caching, limits) can be
// observed. Nothing else changes; cimd-ssrf-special-ip is expected to fail in this run.
const originalFetch = globalThis.fetch;
globalThis.fetch = (url, options = {}) => {
  const { dispatcher: _ssrfGuard, ...rest } = options;
  return originalFetch(url, rest);
};
