//! Lua scripts: every multi-step change runs as one script, so it is atomic (Valkey runs a
//! script to completion before any other command) and nothing half-written can remain.
//!
//! Scripts are sent with EVALSHA; the SHA comes from one SCRIPT LOAD, and a `NOSCRIPT` reply
//! (server restarted, failover, another cluster node) falls back to EVAL, which also caches
//! the script on that node. Every script touches only the keys it is given in `KEYS`, so in a
//! cluster the ones called with a single key are valid there too.

use super::client::ValkeyClient;
use crate::store::StoreError;
use fred::prelude::*;
use fred::types::Key;
use std::sync::OnceLock;

/// One Lua script and its SHA once known.
pub struct Script {
    name: &'static str,
    source: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    const fn new(name: &'static str, source: &'static str) -> Self {
        Self {
            name,
            source,
            sha: OnceLock::new(),
        }
    }

    /// Run the script with `keys` and `args`.
    pub async fn run<R: FromValue>(
        &self,
        client: &ValkeyClient,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        let pool = client.pool();
        let sha = match self.sha.get() {
            Some(sha) => sha.clone(),
            None => {
                let sha: String = pool
                    .script_load(self.source)
                    .await
                    .map_err(|e| client.error(self.name, &e))?;
                self.sha.get_or_init(|| sha).clone()
            }
        };
        let result = pool.evalsha(sha, keys.clone(), args.clone()).await;
        match result {
            Err(e) if e.details().starts_with("NOSCRIPT") => pool
                .eval(self.source, keys, args)
                .await
                .map_err(|e| client.error(self.name, &e)),
            other => other.map_err(|e| client.error(self.name, &e)),
        }
    }
}

/// Store one token and index its owner.
/// KEYS[1] token hash, KEYS[2] (optional) user index; ARGV: field, value, ttl ms, session.
pub static TOKEN_PUT: Script = Script::new(
    "token put",
    r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if #KEYS > 1 then
  redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"#,
);

/// Add a session to a user index (cluster: the index lives in another slot than the tokens).
/// KEYS[1] user index; ARGV: session, ttl ms.
pub static INDEX_ADD: Script = Script::new(
    "user index add",
    r#"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#,
);

/// Replace hash fields only where they still hold the value read (re-encryption must not
/// overwrite a concurrent update). KEYS[1] hash; ARGV: (field, expected, new)*. Returns the
/// number replaced.
pub static HASH_REPLACE_IF_UNCHANGED: Script = Script::new(
    "compare-and-set",
    r#"
local n = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
"#,
);

/// Delete hash fields only where they still hold the value read (a concurrent put wins).
/// KEYS[1] hash; ARGV: (field, expected)*. Returns the number deleted.
pub static HASH_DELETE_IF_UNCHANGED: Script = Script::new(
    "compare-and-delete",
    r#"
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
"#,
);

/// Delete one user's entries from a session, if the session is exactly as read.
/// KEYS[1] token hash, KEYS[2] (optional) user index.
/// ARGV[1] session, ARGV[2] number of fields read, ARGV[3] how many of them to delete (they
/// come first), ARGV[4] "1" if the user index may drop the session, then (field, value)* for
/// every field read. Returns the number deleted, or -1 if the session changed (read again).
/// The index entry is removed only when the user provably has nothing left in the session, so
/// `delete_by_user` never loses track of an entry.
pub static DELETE_USER_ENTRIES: Script = Script::new(
    "delete by user",
    r#"
local total = tonumber(ARGV[2])
if redis.call('HLEN', KEYS[1]) ~= total then return -1 end
for i = 5, 4 + 2 * total, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return -1 end
end
local n = tonumber(ARGV[3])
for i = 5, 3 + 2 * n, 2 do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
if #KEYS > 1 and ARGV[4] == '1' then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return n
"#,
);

/// Delete a whole session and drop it from the given owners' indexes.
/// KEYS[1] token hash, KEYS[2..] user indexes; ARGV[1] session. Returns the entries deleted.
pub static DELETE_SESSION: Script = Script::new(
    "delete by session",
    r#"
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
return n
"#,
);

/// Insert or replace a flow: value `v`, browser binding `b` (if any), expiry.
/// KEYS[1] flow hash; ARGV: value, binding hex or "", expiry as Unix ms.
pub static FLOW_INSERT: Script = Script::new(
    "flow insert",
    r#"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'b', ARGV[2])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"#,
);

/// Bind a flow to a browser: unbound or bound to this browser, and the value is as read.
/// KEYS[1] flow hash; ARGV: binding hex, value read, new value.
/// Returns 0 not found, 1 bound, 2 bound to another browser, 3 changed meanwhile (read again).
/// The TTL set at insert is kept (HSET does not touch it).
pub static FLOW_BIND: Script = Script::new(
    "flow bind",
    r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'b')
if not cur[1] then return 0 end
if cur[2] and cur[2] ~= ARGV[1] then return 2 end
if cur[1] ~= ARGV[2] then return 3 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[1])
return 1
"#,
);

/// Consume a flow bound to this browser: check and delete in one step.
/// KEYS[1] flow hash; ARGV[1] binding hex.
/// Returns {0} not found, {2} unbound or bound to another browser, {1, value} consumed.
pub static FLOW_CONSUME: Script = Script::new(
    "flow consume",
    r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'b')
if not cur[1] then return {0} end
if cur[2] ~= ARGV[1] then return {2} end
redis.call('DEL', KEYS[1])
return {1, cur[1]}
"#,
);

/// Release a lock only if this holder still has it. KEYS[1] lock; ARGV[1] holder token.
pub static LOCK_RELEASE: Script = Script::new(
    "lock release",
    r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
);
