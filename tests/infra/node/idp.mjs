// Test identity provider: a real node-oidc-provider (OpenID-certified) on
// loopback, configured for the gateway's integration tests. Test-only: the
// dev interactions accept any login name and ignore the password.
//
// Environment:
//   PORT               listen port on 127.0.0.1 (default 0 = a free port)
//   ISSUER_PATH        optional issuer path, e.g. "/tenant-a"; the provider is
//                      mounted there and RFC 8414 path-inserted metadata is
//                      served at /.well-known/oauth-authorization-server/tenant-a
//   ACCESS_TOKEN_TTL   access-token lifetime in seconds (default 600)
//   REFRESH_TOKEN_TTL  refresh-token lifetime in seconds (default 86400)
//   REDIRECT_URIS      extra comma-separated redirect URIs for the
//                      pre-registered clients (loopback ones need none: see below)
//   ENABLE_CIMD        "0" disables Client ID Metadata Documents (default on)
//   ENABLE_DCR         "0" disables dynamic client registration (default on)
//   EXCHANGE_TOKEN_TTL lifetime in seconds of tokens issued by the RFC 8693
//                      token-exchange grant (default: ACCESS_TOKEN_TTL)
//
// Prints exactly one line `READY <issuer>` on stdout once it accepts requests.
//
// Pre-registered clients are `application_type: 'native'` with redirect URI
// http://127.0.0.1/oauth/callback (and the localhost twin). oidc-provider
// applies RFC 8252 §7.3 to native clients: a loopback redirect URI matches on
// any port, so the gateway may listen on whatever port a test picked.
//
// Test-only endpoints (outside the issuer path):
//   GET  /test/cimd-fetches  {count, last_url, last_error}
//   GET  /test/stats         {token_requests, authorize_requests, revocation_requests, introspection_requests, jwks_requests}
//   POST /test/reset         zeroes both sets of counters

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import express from 'express';
import { errors, Provider } from 'oidc-provider';

import { cimdStats, LoopbackCimdClientStore } from './cimd.mjs';
import { MemoryStore } from './memory-store.mjs';
import { registerTokenExchange, TOKEN_EXCHANGE_GRANT } from './token-exchange.mjs';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const RESOURCE_SCOPE = 'mcp:tools mcp:resources';
const SCOPES = ['openid', 'offline_access', 'email', 'mcp:tools', 'mcp:resources'];

function envSeconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer number of seconds`);
  }
  return value;
}

function issuerPath() {
  const raw = process.env.ISSUER_PATH ?? '';
  if (raw === '' || raw === '/') {
    return '';
  }
  if (!/^(\/[A-Za-z0-9._~-]+)+$/u.test(raw)) {
    throw new Error('ISSUER_PATH must look like /segment[/segment...] without a trailing slash');
  }
  return raw;
}

const PORT = Number(process.env.PORT || 0);
const ISSUER_PATH = issuerPath();
const ACCESS_TOKEN_TTL = envSeconds('ACCESS_TOKEN_TTL', 600);
const REFRESH_TOKEN_TTL = envSeconds('REFRESH_TOKEN_TTL', 86400);
const EXTRA_REDIRECT_URIS = (process.env.REDIRECT_URIS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const ENABLE_CIMD = process.env.ENABLE_CIMD !== '0';
const ENABLE_DCR = process.env.ENABLE_DCR !== '0';
const EXCHANGE_TOKEN_TTL = process.env.EXCHANGE_TOKEN_TTL ? envSeconds('EXCHANGE_TOKEN_TTL', undefined) : undefined;
// ROTATE_REFRESH_TOKENS=0: the refresh grant returns no new refresh token (the old one stays valid).
const ROTATE_REFRESH_TOKENS = process.env.ROTATE_REFRESH_TOKENS !== '0';

/** RFC 8707: any loopback URL is a valid resource; its tokens are ES256 JWTs with aud = the resource. */
function resourceServerInfo(resource) {
  const url = URL.parse(resource);
  if (!url || !['http:', 'https:'].includes(url.protocol) || !LOOPBACK_HOSTS.has(url.hostname) || url.hash) {
    return undefined;
  }
  return {
    scope: RESOURCE_SCOPE,
    audience: resource,
    accessTokenFormat: 'jwt',
    accessTokenTTL: ACCESS_TOKEN_TTL,
    jwt: { sign: { alg: 'ES256' } },
  };
}

function gatewayClient(clientId, secret, authMethod) {
  return {
    client_id: clientId,
    client_secret: secret,
    token_endpoint_auth_method: authMethod,
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/oauth/callback', 'http://localhost/oauth/callback', ...EXTRA_REDIRECT_URIS],
  };
}

function publicClient() {
  const { client_secret: _unused, ...rest } = gatewayClient('gateway-public', undefined, 'none');
  return rest;
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'test-es256', use: 'sig', alg: 'ES256' };
}

function configuration(jwk) {
  return {
    adapter: (model) => (model === 'Client' ? new LoopbackCimdClientStore() : new MemoryStore(model)),
    clients: [
      gatewayClient('gateway-confidential', 'gateway-secret', 'client_secret_basic'),
      gatewayClient('gateway-post', 'post-secret', 'client_secret_post'),
      publicClient(),
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    pkce: { required: () => true },
    // OAuth 2.1: authorization code only (no implicit or hybrid flows).
    responseTypes: ['code'],
    scopes: SCOPES,
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@example.test`, email_verified: true }),
    }),
    // The test IdP is a fixture: every client allowed the refresh_token grant gets one.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: ROTATE_REFRESH_TOKENS,
    ttl: { AccessToken: ACCESS_TOKEN_TTL, RefreshToken: REFRESH_TOKEN_TTL },
    extraTokenClaims: async (_ctx, token) => {
      const extra = {};
      if (token.gty === 'token_exchange') {
        extra.act = { sub: token.clientId };
      }
      // `sid`: the login session, like Keycloak's access tokens carry (the gateway's session key).
      const sid = token.sid ?? token.sessionUid;
      if (sid) {
        extra.sid = sid;
      }
      return Object.keys(extra).length > 0 ? extra : undefined;
    },
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: ENABLE_DCR },
      clientIdMetadataDocument: { enabled: ENABLE_CIMD, ack: 'draft-02' },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          const info = resourceServerInfo(resource);
          if (!info) {
            throw new errors.InvalidTarget('resource must be a loopback URL');
          }
          return info;
        },
      },
    },
  };
}

const requestStats = {
  token_requests: 0,
  authorize_requests: 0,
  revocation_requests: 0,
  introspection_requests: 0,
  jwks_requests: 0,
};

/** Counts protocol requests by endpoint path (relative to the issuer mount). */
function countRequests(req, _res, next) {
  switch (req.path) {
    case '/token': requestStats.token_requests += 1; break;
    case '/auth': requestStats.authorize_requests += 1; break;
    case '/token/revocation': requestStats.revocation_requests += 1; break;
    case '/token/introspection': requestStats.introspection_requests += 1; break;
    case '/jwks': requestStats.jwks_requests += 1; break;
    default: break;
  }
  next();
}

function testRoutes() {
  const router = express.Router();
  router.get('/test/cimd-fetches', (_req, res) => res.json(cimdStats));
  router.get('/test/stats', (_req, res) => res.json(requestStats));
  router.post('/test/reset', (_req, res) => {
    for (const key of Object.keys(requestStats)) {
      requestStats[key] = 0;
    }
    Object.assign(cimdStats, { count: 0, last_url: null, last_error: null });
    res.status(204).end();
  });
  return router;
}

/** RFC 8414 §3: for an issuer with a path, metadata lives at /.well-known/oauth-authorization-server<path>. */
function pathInsertedMetadata(issuer) {
  return async (_req, res) => {
    const upstream = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
    res.status(upstream.status).type('application/json').send(await upstream.text());
  };
}

async function main() {
  let app;
  const server = http.createServer((req, res) => app(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}${ISSUER_PATH}`;

  const jwk = signingKey();
  const provider = new Provider(issuer, configuration(jwk));
  const { d: _private, ...publicJwk } = jwk;
  registerTokenExchange(provider, {
    issuer,
    publicJwks: { keys: [publicJwk] },
    resourceServerInfo,
    exchangeTokenTTL: EXCHANGE_TOKEN_TTL,
  });

  app = express();
  app.disable('x-powered-by');
  app.use(testRoutes());
  if (ISSUER_PATH) {
    app.get(`/.well-known/oauth-authorization-server${ISSUER_PATH}`, pathInsertedMetadata(issuer));
  }
  app.use(ISSUER_PATH || '/', countRequests, provider.callback());

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  process.stderr.write(`idp failed to start: ${err.message}\n`);
  process.exit(1);
});
