// HTTPS reverse proxy that requires a client certificate (mutual TLS), for the
// token-exchange tests: it stands in front of the test IdP's token endpoint the
// way an mTLS-protected identity provider would. Connections without a
// certificate signed by CA_FILE fail the TLS handshake.
//
// Environment:
//   TARGET     origin to forward to, e.g. http://127.0.0.1:41234 (required)
//   CERT_FILE  server certificate (PEM) for 127.0.0.1 (required)
//   KEY_FILE   its private key (PEM) (required)
//   CA_FILE    CA whose client certificates are accepted (PEM); without it no client
//              certificate is asked for (a plain HTTPS front, for server-side TLS tests)
//   PORT       listen port on 127.0.0.1 (default 0 = a free port)
//
// Prints exactly one line `READY https://127.0.0.1:<port>`.
// Test-only endpoint: GET /test/stats {forwarded, client_subjects}.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is required`);
  }
  return value;
}

const TARGET = new URL(required('TARGET'));
const PORT = Number(process.env.PORT || 0);
const stats = { forwarded: 0, client_subjects: [] };

function forward(req, res) {
  const cert = req.socket.getPeerCertificate();
  stats.forwarded += 1;
  if (cert?.subject?.CN && !stats.client_subjects.includes(cert.subject.CN)) {
    stats.client_subjects.push(cert.subject.CN);
  }
  const headers = { ...req.headers, host: TARGET.host };
  const upstream = http.request(
    { host: TARGET.hostname, port: TARGET.port, path: req.url, method: req.method, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'temporarily_unavailable' }));
  });
  req.pipe(upstream);
}

function main() {
  const server = https.createServer(
    {
      cert: fs.readFileSync(required('CERT_FILE')),
      key: fs.readFileSync(required('KEY_FILE')),
      ca: process.env.CA_FILE ? fs.readFileSync(process.env.CA_FILE) : undefined,
      requestCert: Boolean(process.env.CA_FILE),
      rejectUnauthorized: Boolean(process.env.CA_FILE),
    },
    (req, res) => {
      if (req.method === 'GET' && req.url === '/test/stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(stats));
        return;
      }
      forward(req, res);
    },
  );
  server.once('error', (err) => {
    process.stderr.write(`mtls-proxy failed: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(PORT, '127.0.0.1', () => {
    process.stdout.write(`READY https://127.0.0.1:${server.address().port}\n`);
  });
}

main();
