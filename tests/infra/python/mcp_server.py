"""OAuth-protected MCP server for tests, built with the official MCP Python SDK (`mcp` 2.x).

Streamable HTTP, stateless, JSON responses; every request needs a bearer token issued by the
test IdP for exactly this server's resource URL. The SDK's bearer middleware answers a request
without a valid token with 401 and `WWW-Authenticate: Bearer ... resource_metadata="..."`, and
serves the RFC 9728 metadata naming the IdP.

Environment:
  ISSUER           the IdP's issuer URL (required)
  PORT             listen port on 127.0.0.1 (default 0 = a free port)
  REQUIRED_SCOPES  space-separated scopes every token needs (default "mcp:tools"; "" for none)

Prints exactly one line `READY <resource-url>` (http://127.0.0.1:<port>/mcp) once it serves.
Exits when its stdin closes, so it never outlives the test process that started it.

Tools: `whoami` returns the token's `sub`; `echo {text}` returns "<sub>: <text>".
Run with the project venv: ~/.cache/mcp-oauth-operator/venv/bin/python (scripts/setup-test-deps.sh).
"""

import asyncio
import json
import os
import socket
import sys
import threading
import urllib.request

import anyio
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

ISSUER = os.environ.get("ISSUER", "")
PORT = int(os.environ.get("PORT") or 0)
REQUIRED_SCOPES = os.environ.get("REQUIRED_SCOPES", "mcp:tools").split()


def discover(issuer: str) -> dict:
    """The IdP's OpenID configuration, refusing one that names another issuer."""
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=10) as resp:
        metadata = json.load(resp)
    if metadata.get("issuer") != issuer:
        raise RuntimeError("IdP discovery returned a different issuer")
    return metadata


class JwtVerifier:
    """Verifies the IdP's ES256 JWT access tokens: signature (JWKS), issuer, audience = this
    resource, expiry. Implements the SDK's `TokenVerifier` protocol."""

    def __init__(self, metadata: dict, resource: str):
        self._jwks = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=True)
        self._issuer = metadata["issuer"]
        self._resource = resource

    def _decode(self, token: str) -> dict:
        key = self._jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=self._resource,
            issuer=self._issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # PyJWKClient fetches keys with blocking I/O: keep it off the event loop.
            claims = await anyio.to_thread.run_sync(self._decode, token)
        except (jwt.PyJWTError, OSError):
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=claims.get("exp"),
            resource=self._resource,
            subject=str(claims["sub"]),
            claims={"iss": claims.get("iss")},
        )


def build_server(metadata: dict, resource: str) -> MCPServer:
    server = MCPServer(
        name="test-oauth-mcp-python",
        version="1.0.0",
        token_verifier=JwtVerifier(metadata, resource),
        auth=AuthSettings(
            issuer_url=ISSUER,
            resource_server_url=resource,
            required_scopes=REQUIRED_SCOPES or None,
            # The verifier checks `aud` itself.
            validate_token_resource=False,
        ),
    )

    def subject() -> str:
        token = get_access_token()
        return str(token.subject) if token else "None"

    @server.tool(description="Returns the subject of the caller's access token.")
    def whoami() -> str:
        return subject()

    @server.tool(description="Echoes text, prefixed with the caller subject.")
    def echo(text: str) -> str:
        return f"{subject()}: {text}"

    return server


def exit_when_stdin_closes() -> None:
    """The parent holds our stdin open; EOF means it is gone."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


async def main() -> None:
    if not ISSUER:
        raise RuntimeError("ISSUER is required")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", PORT))
    resource = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    metadata = discover(ISSUER)
    app = build_server(metadata, resource).streamable_http_app(
        stateless_http=True, json_response=True, host="127.0.0.1"
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the server stopped before it started")
        await asyncio.sleep(0.02)
    print(f"READY {resource}", flush=True)
    await serving


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    try:
        asyncio.run(main())
    except Exception as err:  # noqa: BLE001 - report any start-up failure in one line
        print(f"mcp_server.py failed to start: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
