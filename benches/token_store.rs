//! Throughput of the in-memory token store on the request path: `get` (hit), `get_bound`,
//! `put`, and a 90 % get / 10 % put mix, at 1, 2, 4 and 8 threads, on a store pre-filled with
//! 10,000 sessions × 2 issuers.
//!
//! The trait methods are async but finish on their first poll for the memory store, so they are
//! driven by `futures::executor::block_on` (no runtime, no scheduling: it polls once on the
//! calling thread). That measures what a caller pays, including the `async_trait` boxed future.
//! `get_hit_sync` benches the synchronous method behind `get` to show that overhead.
//!
//! Run: `cargo bench --bench token_store`

use divan::Bencher;
use futures::executor::block_on;
use mcp_oauth_operator::store::memory::MemoryTokenStore;
use mcp_oauth_operator::store::{TokenBinding, TokenKey, TokenRecord, TokenStore};
use secrecy::SecretString;
use std::cell::Cell;
use std::hash::BuildHasher as _;
use std::sync::LazyLock;

const SESSIONS: usize = 10_000;
const ISSUERS: [&str; 2] = [
    "https://idp-a.example.com",
    "https://login.example.org/tenant",
];
const THREADS: &[usize] = &[1, 2, 4, 8];
const HOT_KEYS: usize = 64;
/// Far in the future, so `get_bound` never skips an entry.
const EXPIRES_AT: u64 = 4_000_000_000;

fn main() {
    divan::main();
}

struct Fixture {
    store: MemoryTokenStore,
    /// Every stored key, `SESSIONS × ISSUERS`.
    keys: Vec<TokenKey>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let store = MemoryTokenStore::new();
    let mut keys = Vec::with_capacity(SESSIONS * ISSUERS.len());
    for s in 0..SESSIONS {
        // Session ids shaped like the real ones (opaque, ~32 characters).
        let session = format!("sess-{s:08x}-5f2c9a1e7b3d4c6f");
        for issuer in ISSUERS {
            let binding = TokenBinding::new(issuer, "team-a", "https://mcp.example.com/mcp");
            let key = TokenKey::new(session.clone(), binding, "files:read offline_access");
            block_on(store.put(&key, record(issuer, s))).unwrap_or_else(|e| panic!("{e}"));
            keys.push(key);
        }
    }
    Fixture { store, keys }
});

/// The session number of `keys[i]`: a write-back keeps the entry's owner, as a refresh does.
fn session_of(i: usize) -> usize {
    i / ISSUERS.len()
}

/// A record of session number `n`, owned by one of 5,000 users.
fn record(issuer: &str, n: usize) -> TokenRecord {
    TokenRecord {
        access_token: SecretString::from(format!(
            "eyJhbGciOiJSUzI1NiJ9.access-token-body-{n:08}.signature-part-xxxxxxxxxxxx"
        )),
        token_type: "Bearer".into(),
        refresh_token: Some(SecretString::from(format!("refresh-token-{n:08}-yyyyyyyy"))),
        expires_at: Some(EXPIRES_AT),
        granted_scope: Some("files:read offline_access".into()),
        issuer: issuer.into(),
        client_id: "https://gateway.example.com/oauth/client-metadata.json".into(),
        user: format!("user-{}", n % 5_000),
        obtained_at: 1_700_000_000,
    }
}

thread_local! {
    /// Per-thread xorshift state: picking a key costs a few instructions and shares nothing
    /// between threads (a shared atomic counter would itself be contended).
    static RNG: Cell<u64> = Cell::new(
        std::hash::RandomState::new().hash_one(std::thread::current().id()) | 1,
    );
}

fn random_below(n: usize) -> usize {
    RNG.with(|rng| {
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        (x % n as u64) as usize
    })
}

fn random_key(f: &Fixture) -> &TokenKey {
    &f.keys[random_below(f.keys.len())]
}

#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn get_hit(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| block_on(f.store.get(random_key(f))));
}

/// `get` over only 64 keys: the store's data stays in cache, so this isolates the CPU cost from
/// the memory latency that random access over all 20,000 entries pays.
#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn get_hit_hot(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| block_on(f.store.get(&f.keys[random_below(HOT_KEYS)])));
}

#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn get_hit_sync(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| f.store.get_sync(random_key(f)));
}

#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn get_bound(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| {
        let key = random_key(f);
        block_on(f.store.get_bound(&key.session, &key.binding))
    });
}

/// Overwrites existing keys (the refresh write-back), so the store size stays constant. The
/// record is built outside the timed section; dropping the replaced one is timed.
#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn put(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher
        .with_inputs(|| {
            let i = random_below(f.keys.len());
            (i, record(f.keys[i].issuer(), session_of(i)))
        })
        .bench_values(|(i, rec)| block_on(f.store.put(&f.keys[i], rec)));
}

/// 90 % `get` / 10 % `put` on random keys.
#[divan::bench(threads = THREADS, sample_count = 100, sample_size = 1000, max_time = 2)]
fn mixed_90_get_10_put(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher
        .with_inputs(|| {
            let i = random_below(f.keys.len());
            let write = (random_below(10) == 0).then(|| record(f.keys[i].issuer(), session_of(i)));
            (i, write)
        })
        .bench_values(|(i, write)| match write {
            Some(rec) => block_on(f.store.put(&f.keys[i], rec)).map(|()| None),
            None => block_on(f.store.get(&f.keys[i])),
        });
}
