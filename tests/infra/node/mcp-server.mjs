// OAuth-protected MCP server for tests, built with the official TypeScript SDK.
// Streamable HTTP, stateless, JSON responses; every request needs a bearer
// token issued by the test IdP for exactly this server's resource URL.
//
// Environment:
//   ISSUER           the IdP's issuer URL (required)
//   PORT             listen port on 127.0.0.1 (default 0 = a free port)
//   REQUIRED_SCOPES  space-separated scopes every token needs (default "mcp:tools"; "" for none)
//
// Prints exactly one line `READY <resource-url>` (http://127.0.0.1:<port>/mcp).
//
// Tools: `whoami` returns the token's `sub`; `echo {text}` returns "<sub>: <text>".
// Test-only endpoint: GET /test/stats {mcp_requests, authorized_requests}.
// Test-only endpoint: POST /test/revoke-tokens — every token accepted so far is
// refused from now on (401 invalid_token), as after a revocation the server learned of.

import * as http from 'node:http';

import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { getOAuthProtectedResourceMetadataUrl, mcpAuthMetadataRouter } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express from 'express';
import * as jose from 'jose';
import { z } from 'zod';

const PORT = Number(process.env.PORT || 0);
const ISSUER = process.env.ISSUER;
const REQUIRED_SCOPES = (process.env.REQUIRED_SCOPES ?? 'mcp:tools').split(' ').filter(Boolean);

const stats = { mcp_requests: 0, authorized_requests: 0 };
// Tokens accepted so far, and those revoked by POST /test/revoke-tokens (bounded: a test fixture).
const acceptedTokens = new Set();
const revokedTokens = new Set();

async function discover(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) {
    throw new Error(`IdP discovery failed with HTTP ${response.status}`);
  }
  const metadata = await response.json();
  if (metadata.issuer !== issuer) {
    throw new Error('IdP discovery returned a different issuer');
  }
  return metadata;
}

/** Verifies ES256 JWT access tokens from the IdP: signature (JWKS), issuer, audience = this resource, expiry. */
function jwtVerifier(metadata, resource) {
  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
  return {
    async verifyAccessToken(token) {
      let payload;
      try {
        ({ payload } = await jose.jwtVerify(token, jwks, { issuer: metadata.issuer, audience: resource }));
      } catch (err) {
        throw new InvalidTokenError(`token rejected: ${err.code ?? 'ERR_JWT_INVALID'}`);
      }
      if (revokedTokens.has(token)) {
        throw new InvalidTokenError('token rejected: revoked');
      }
      if (acceptedTokens.size < 10000) {
        acceptedTokens.add(token);
      }
      return {
        token,
        clientId: String(payload.client_id ?? ''),
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
        expiresAt: payload.exp,
        resource: new URL(resource),
        extra: { sub: payload.sub },
      };
    },
  };
}

function buildMcpServer() {
  const server = new McpServer({ name: 'test-oauth-mcp', version: '1.0.0' });
  server.registerTool(
    'whoami',
    { description: "Returns the subject of the caller's access token." },
    async (extra) => ({ content: [{ type: 'text', text: String(extra.authInfo?.extra?.sub) }] }),
  );
  server.registerTool(
    'echo',
    { description: 'Echoes text, prefixed with the caller subject.', inputSchema: { text: z.string() } },
    async ({ text }, extra) => ({ content: [{ type: 'text', text: `${extra.authInfo?.extra?.sub}: ${text}` }] }),
  );
  return server;
}

/** Stateless Streamable HTTP: a fresh server and transport per request. */
async function handleMcp(req, res) {
  stats.authorized_requests += 1;
  const server = buildMcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
}

function methodNotAllowed(_req, res) {
  res.status(405).set('Allow', 'POST').json({
    jsonrpc: '2.0',
    error: { code: -32000, message: 'Method not allowed (stateless server).' },
    id: null,
  });
}

async function main() {
  if (!ISSUER) {
    throw new Error('ISSUER is required');
  }
  let app;
  const httpServer = http.createServer((req, res) => app(req, res));
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(PORT, '127.0.0.1', resolve);
  });
  const resource = `http://127.0.0.1:${httpServer.address().port}/mcp`;
  const metadata = await discover(ISSUER);

  app = express();
  app.disable('x-powered-by');
  app.get('/test/stats', (_req, res) => res.json(stats));
  app.post('/test/revoke-tokens', (_req, res) => {
    for (const token of acceptedTokens) {
      revokedTokens.add(token);
    }
    acceptedTokens.clear();
    res.status(204).end();
  });
  app.use(mcpAuthMetadataRouter({
    oauthMetadata: metadata,
    resourceServerUrl: new URL(resource),
    scopesSupported: ['mcp:tools', 'mcp:resources'],
    resourceName: 'Test OAuth MCP server',
  }));
  const auth = requireBearerAuth({
    verifier: jwtVerifier(metadata, resource),
    requiredScopes: REQUIRED_SCOPES,
    resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(new URL(resource)),
    expectedResource: new URL(resource),
  });
  const count = (_req, _res, next) => {
    stats.mcp_requests += 1;
    next();
  };
  app.post('/mcp', count, auth, express.json({ limit: '1mb' }), (req, res, next) => handleMcp(req, res).catch(next));
  app.get('/mcp', count, auth, methodNotAllowed);
  app.delete('/mcp', count, auth, methodNotAllowed);

  process.stdout.write(`READY ${resource}\n`);
}

main().catch((err) => {
  process.stderr.write(`mcp-server failed to start: ${err.message}\n`);
  process.exit(1);
});
