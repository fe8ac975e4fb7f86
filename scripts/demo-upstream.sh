#!/usr/bin/env bash
# A local OAuth-protected MCP server to try the gateway with, no accounts needed:
#   - a test identity provider (node-oidc-provider) on http://127.0.0.1:5556 that accepts any
#     login name and ignores the password;
#   - an MCP server (official TypeScript SDK) on http://127.0.0.1:5557/mcp that wants a bearer
#     token from that provider, with the tools `whoami` and `echo`.
# The built-in example registration `default/local-oauth` of `mcp-oauth-operator serve` points
# at it. Stop with Ctrl-C. Needs Node.js 20+ (installs the pinned packages on first use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../tests/infra/node"
[ -d node_modules ] || npm ci --no-audit --no-fund
IDP_PORT="${IDP_PORT:-5556}"
MCP_PORT="${MCP_PORT:-5557}"
trap 'kill 0' EXIT INT TERM
PORT="$IDP_PORT" node idp.mjs &
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration" >/dev/null && break
  sleep 0.2
done
ISSUER="http://127.0.0.1:$IDP_PORT" PORT="$MCP_PORT" node mcp-server.mjs &
echo "identity provider: http://127.0.0.1:$IDP_PORT   MCP server: http://127.0.0.1:$MCP_PORT/mcp"
wait
