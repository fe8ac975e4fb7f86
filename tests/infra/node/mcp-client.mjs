// A real MCP client for end-to-end tests: the official TypeScript SDK `Client` over
// `StreamableHTTPClientTransport`, driven by command-line arguments.
//
// Environment:
//   MCP_URL               the MCP endpoint (required)
//   MCP_BEARER            optional bearer token sent as `Authorization` on every request
//   MCP_URL_ELICITATION   "1" to declare `capabilities.elicitation = { url: {} }`
//   MCP_PROTOCOL_VERSION  optional version to request in `initialize` instead of the SDK's latest
//                         (the SDK cannot choose it, so the outgoing initialize body is rewritten;
//                         the server's answer must still be a version the SDK supports)
//   MCP_TIMEOUT_MS        per-request timeout (default 15000)
//
// Arguments: a sequence of commands, run in order after connecting:
//   list-tools                 tools/list
//   call <tool> [<json-args>]  tools/call (args default to {})
//   ping                       ping
//
// Output: one JSON line per step on stdout, e.g.
//   {"op":"connect","ok":true,"protocolVersion":"2025-11-25","serverInfo":{…},"instructions":"…"}
//   {"op":"call","ok":true,"result":{…}}
//   {"op":"call","ok":false,"error":{"code":-32042,"message":"…","data":{…}}}
// and {"op":"elicitation","params":{…}} when the server sends an elicitation/create request
// (answered with "decline"). Exit status 0 unless connecting or the arguments failed.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

const url = process.env.MCP_URL;
const bearer = process.env.MCP_BEARER;
const urlElicitation = process.env.MCP_URL_ELICITATION === '1';
const requestedVersion = process.env.MCP_PROTOCOL_VERSION;
const timeout = Number(process.env.MCP_TIMEOUT_MS || 15000);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function errorJson(err) {
  if (err instanceof McpError) {
    return { code: err.code, message: err.message, data: err.data ?? null };
  }
  // Transport errors carry an HTTP status as `code` in the SDK.
  return { code: typeof err?.code === 'number' ? err.code : null, message: String(err?.message ?? err), data: null };
}

function parseCommands(argv) {
  const commands = [];
  for (let i = 0; i < argv.length; i++) {
    const op = argv[i];
    if (op === 'list-tools' || op === 'ping') {
      commands.push({ op });
    } else if (op === 'call') {
      const name = argv[++i];
      if (!name) throw new Error('call needs a tool name');
      let args = {};
      if (i + 1 < argv.length && argv[i + 1].trimStart().startsWith('{')) {
        args = JSON.parse(argv[++i]);
      }
      commands.push({ op, name, args });
    } else {
      throw new Error(`unknown command ${JSON.stringify(op)}`);
    }
  }
  return commands;
}

/** Rewrites `params.protocolVersion` of the initialize request; everything else passes as is. */
function versionOverridingFetch(version) {
  return async (input, init) => {
    if (init?.method === 'POST' && typeof init.body === 'string') {
      try {
        const message = JSON.parse(init.body);
        if (message?.method === 'initialize' && message.params) {
          message.params.protocolVersion = version;
          init = { ...init, body: JSON.stringify(message) };
        }
      } catch {
        // Not JSON: leave it alone.
      }
    }
    return fetch(input, init);
  };
}

async function main() {
  if (!url) throw new Error('MCP_URL is required');
  const commands = parseCommands(process.argv.slice(2));

  const capabilities = urlElicitation ? { elicitation: { url: {} } } : {};
  const client = new Client({ name: 'mcp-oauth-operator-test-client', version: '0.0.0' }, { capabilities });
  if (urlElicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      emit({ op: 'elicitation', params: request.params });
      return { action: 'decline' };
    });
  }

  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: bearer ? { headers: { Authorization: `Bearer ${bearer}` } } : undefined,
    fetch: requestedVersion ? versionOverridingFetch(requestedVersion) : undefined,
  });

  try {
    await client.connect(transport, { timeout });
  } catch (err) {
    emit({ op: 'connect', ok: false, error: errorJson(err) });
    process.exitCode = 1;
    return;
  }
  emit({
    op: 'connect',
    ok: true,
    protocolVersion: transport.protocolVersion ?? null,
    serverInfo: client.getServerVersion() ?? null,
    capabilities: client.getServerCapabilities() ?? null,
    instructions: client.getInstructions() ?? null,
    sessionId: transport.sessionId ?? null,
  });

  for (const command of commands) {
    try {
      let result;
      if (command.op === 'list-tools') {
        result = await client.listTools(undefined, { timeout });
      } else if (command.op === 'ping') {
        result = await client.ping({ timeout });
      } else {
        result = await client.callTool({ name: command.name, arguments: command.args }, undefined, { timeout });
      }
      emit({ op: command.op, ok: true, result });
    } catch (err) {
      emit({ op: command.op, ok: false, error: errorJson(err) });
    }
  }
  await client.close().catch(() => {});
}

main()
  .catch((err) => {
    emit({ op: 'args', ok: false, error: errorJson(err) });
    process.exitCode = 2;
  })
  // Do not wait for lingering sockets (e.g. a standalone SSE stream); stdout pipes are synchronous.
  .finally(() => process.exit(process.exitCode ?? 0));
