// In-memory storage adapter for the test IdP.
//
// oidc-provider's bundled memory adapter is an LRU capped at 1000 entries, so a
// load test that issues many tokens would silently evict sessions and grants.
// This store never evicts live entries; expired ones are dropped lazily and by a
// periodic sweep. It implements the adapter interface oidc-provider documents
// (upsert, find, findByUid, findByUserCode, consume, destroy, revokeByGrantId).

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** One shared backing store: model-prefixed keys, value = { payload, expiresAt }. */
const entries = new Map();
/** grantId -> Set of entry keys, so a whole grant can be revoked at once. */
const grants = new Map();
/** Session uid -> Session id. */
const sessionUids = new Map();
/** Device-flow user code -> id. */
const userCodes = new Map();

function isLive(entry) {
  return entry !== undefined && (entry.expiresAt === undefined || entry.expiresAt > Date.now());
}

function sweep() {
  for (const [key, entry] of entries) {
    if (!isLive(entry)) {
      entries.delete(key);
    }
  }
}

setInterval(sweep, 30_000).unref();

export class MemoryStore {
  /** @param {string} model oidc-provider model name, e.g. "Session" or "AccessToken". */
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    entries.set(key, { payload, expiresAt });

    if (this.model === 'Session' && payload.uid) {
      sessionUids.set(payload.uid, id);
    }
    if (payload.userCode) {
      userCodes.set(payload.userCode, id);
    }
    if (GRANTABLE.has(this.model) && payload.grantId) {
      let members = grants.get(payload.grantId);
      if (!members) {
        members = new Set();
        grants.set(payload.grantId, members);
      }
      members.add(key);
    }
  }

  async find(id) {
    if (id === undefined) {
      return undefined;
    }
    const entry = entries.get(this.key(id));
    return isLive(entry) ? entry.payload : undefined;
  }

  async findByUid(uid) {
    return this.find(sessionUids.get(uid));
  }

  async findByUserCode(userCode) {
    return this.find(userCodes.get(userCode));
  }

  async consume(id) {
    const entry = entries.get(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const members = grants.get(grantId);
    if (members) {
      for (const key of members) {
        entries.delete(key);
      }
      grants.delete(grantId);
    }
  }
}
