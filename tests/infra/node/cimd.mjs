// Loopback Client ID Metadata Documents for the test IdP.
//
// oidc-provider 9 implements CIMD (features.clientIdMetadataDocument, draft-02),
// but its fetcher accepts only https:// client_id URLs and refuses loopback
// addresses. In tests the gateway's public URL is http://127.0.0.1:<port>, so
// the IdP resolves such client_ids itself. Client.find() consults the storage
// adapter before its own CIMD fetch, so this module is a Client adapter that,
// for a loopback http client_id URL, really fetches the document from the
// gateway over HTTP and applies the CIMD rules before handing the metadata to
// oidc-provider (which then validates it like any other client metadata).
//
// The document is fetched on every lookup (no cache) so that tests observe
// each fetch and a changed document takes effect at once.

import { errors } from 'oidc-provider';

import { MemoryStore } from './memory-store.mjs';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const FETCH_TIMEOUT_MS = 5_000;
const MAX_DOCUMENT_BYTES = 64 * 1024;

/** Counters exposed on GET /test/cimd-fetches. */
export const cimdStats = { count: 0, last_url: null, last_error: null };

/** True when `id` is an http(s) URL on a loopback host with a path, i.e. a loopback CIMD client_id. */
export function isLoopbackClientIdUrl(id) {
  if (typeof id !== 'string' || !/^https?:\/\//u.test(id)) {
    return false;
  }
  const url = URL.parse(id);
  return url !== null
    && LOOPBACK_HOSTS.has(url.hostname)
    && url.pathname !== '/'
    && url.hash === ''
    && url.username === ''
    && url.password === '';
}

function invalid(description) {
  return new errors.InvalidClient(`client_id metadata document rejected: ${description}`);
}

/** Applies the CIMD rules (draft-ietf-oauth-client-id-metadata-document §4) to a fetched document. */
export function checkDocument(id, document) {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw invalid('not a JSON object');
  }
  if (document.client_id !== id) {
    throw invalid('client_id does not equal the document URL');
  }
  if ('client_secret' in document || 'client_secret_expires_at' in document) {
    throw invalid('must not contain client_secret or client_secret_expires_at');
  }
  if (document.token_endpoint_auth_method !== 'none') {
    throw invalid('token_endpoint_auth_method must be "none"');
  }
  return document;
}

async function fetchDocument(id) {
  cimdStats.count += 1;
  cimdStats.last_url = id;
  cimdStats.last_error = null;
  let response;
  try {
    response = await fetch(id, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (cause) {
    throw invalid(`fetch failed (${cause.name})`);
  }
  if (response.status !== 200) {
    throw invalid(`unexpected HTTP status ${response.status}`);
  }
  const text = await response.text();
  if (text.length > MAX_DOCUMENT_BYTES) {
    throw invalid('document too large');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw invalid('body is not JSON');
  }
}

/** Client storage adapter: loopback CIMD URLs are fetched, everything else is stored in memory (e.g. DCR clients). */
export class LoopbackCimdClientStore extends MemoryStore {
  constructor() {
    super('Client');
  }

  async find(id) {
    if (!isLoopbackClientIdUrl(id)) {
      return super.find(id);
    }
    try {
      return checkDocument(id, await fetchDocument(id));
    } catch (err) {
      cimdStats.last_error = err.error_description ?? err.message;
      throw err;
    }
  }
}
