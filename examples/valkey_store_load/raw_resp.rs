//! The ceiling reference: what an atomic put can reach on this server with no client library
//! in the way. One connection per caller, each operation one `write` and the replies read back,
//! nothing else — the cheapest a client can be (it does less than `valkey-benchmark`, which
//! also parses every reply). Three operations, each at the same concurrency as the store runs:
//!
//! * `HSET` of a value as large as our sealed one — the target's reference command;
//! * our put's four commands (`HSET`, `PEXPIRE`, `SADD`, `PEXPIRE`) in `MULTI`…`EXEC`, sent as
//!   one write — the cheapest atomic form, which fred cannot send (it flushes per command);
//! * the same four commands as our put script (`EVALSHA`) — what the store sends.
//!
//! The replies of these commands are all one line each (`:n`, `+OK`, `+QUEUED`, `*4`), so a
//! reply is counted per CRLF; any error reply (`-…`) or an `EXEC` that did not run (`*-1`, a
//! `-EXECABORT`) ends the run with an error, so a number is never reported for work not done.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One of the ceiling operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawOp {
    Hset,
    MultiPut,
    ScriptPut,
}

impl RawOp {
    pub const ALL: [RawOp; 3] = [RawOp::Hset, RawOp::MultiPut, RawOp::ScriptPut];

    pub fn name(self) -> &'static str {
        match self {
            RawOp::Hset => "HSET",
            RawOp::MultiPut => "MULTI/EXEC put",
            RawOp::ScriptPut => "EVALSHA put",
        }
    }

    /// Reply lines per operation: `MULTI` +OK, four +QUEUED, `EXEC`'s `*4` and four integers.
    fn reply_lines(self) -> usize {
        match self {
            RawOp::Hset | RawOp::ScriptPut => 1,
            RawOp::MultiPut => 10,
        }
    }
}

/// What every operation writes: keys under `prefix`, sessions `s` + 12 digits as elsewhere.
#[derive(Clone)]
pub struct Spec {
    pub addr: SocketAddr,
    pub prefix: String,
    pub field: String,
    pub value_len: usize,
    pub ttl_ms: i64,
    pub script_sha: String,
    pub sessions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("raw client I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("raw client: server closed the connection")]
    Closed,
    #[error("raw client: unexpected reply to {op}: {reply:.120}")]
    Reply { op: &'static str, reply: String },
}

/// Run `total` operations of `op` over `connections` connections: the elapsed time and each
/// operation's latency in ns.
pub async fn run(
    spec: &Spec,
    op: RawOp,
    connections: usize,
    total: usize,
) -> Result<(Vec<u32>, Duration), RawError> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(spec.addr).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, stream) in streams.into_iter().enumerate() {
        let spec = spec.clone();
        let ops = total / connections + usize::from(c < total % connections);
        tasks.spawn(async move { connection(stream, &spec, op, c, ops).await });
    }
    let mut latencies = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        let done = done.map_err(|e| RawError::Io(std::io::Error::other(e)))?;
        latencies.extend(done?);
    }
    Ok((latencies, started.elapsed()))
}

async fn connection(
    mut stream: TcpStream,
    spec: &Spec,
    op: RawOp,
    c: usize,
    ops: usize,
) -> Result<Vec<u32>, RawError> {
    let value = vec![b'x'; spec.value_len];
    let ttl = spec.ttl_ms.to_string();
    let mut out = Vec::with_capacity(spec.value_len + 512);
    let mut buf = vec![0u8; 16 * 1024];
    let mut latencies = Vec::with_capacity(ops);
    let mut rng = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..ops {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let n = (rng % spec.sessions as u64) as usize;
        let session = format!("s{n:012}");
        let hash = format!("{}oauth:token:{session}", spec.prefix);
        let index = format!("{}oauth:user:user-{}", spec.prefix, n % 5_000);
        out.clear();
        match op {
            RawOp::Hset => command(
                &mut out,
                &[b"HSET", hash.as_bytes(), spec.field.as_bytes(), &value],
            ),
            RawOp::MultiPut => {
                command(&mut out, &[b"MULTI"]);
                command(
                    &mut out,
                    &[b"HSET", hash.as_bytes(), spec.field.as_bytes(), &value],
                );
                command(&mut out, &[b"PEXPIRE", hash.as_bytes(), ttl.as_bytes()]);
                command(&mut out, &[b"SADD", index.as_bytes(), session.as_bytes()]);
                command(&mut out, &[b"PEXPIRE", index.as_bytes(), ttl.as_bytes()]);
                command(&mut out, &[b"EXEC"]);
            }
            RawOp::ScriptPut => command(
                &mut out,
                &[
                    b"EVALSHA",
                    spec.script_sha.as_bytes(),
                    b"2",
                    hash.as_bytes(),
                    index.as_bytes(),
                    spec.field.as_bytes(),
                    &value,
                    ttl.as_bytes(),
                    session.as_bytes(),
                ],
            ),
        }
        let sent = Instant::now();
        stream.write_all(&out).await?;
        read_replies(&mut stream, &mut buf, op).await?;
        latencies.push(u32::try_from(sent.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    Ok(latencies)
}

/// Read until `op`'s reply lines have arrived, checking that none is an error.
async fn read_replies(stream: &mut TcpStream, buf: &mut [u8], op: RawOp) -> Result<(), RawError> {
    let want = op.reply_lines();
    let mut lines = 0;
    let mut filled = 0;
    while lines < want {
        if filled == buf.len() {
            return Err(reply_error(op, buf));
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(RawError::Closed);
        }
        // A CRLF split across two reads is counted when its LF arrives.
        let from = filled.saturating_sub(1);
        filled += n;
        lines += buf[from..filled]
            .windows(2)
            .filter(|w| w == b"\r\n")
            .count();
    }
    let replies = &buf[..filled];
    let failed = replies.split(|b| *b == b'\n').any(|line| {
        line.first() == Some(&b'-') || line.starts_with(b"*-1") || line.starts_with(b"_")
    });
    if failed || lines != want {
        return Err(reply_error(op, replies));
    }
    Ok(())
}

fn reply_error(op: RawOp, replies: &[u8]) -> RawError {
    RawError::Reply {
        op: op.name(),
        reply: String::from_utf8_lossy(replies).into_owned(),
    }
}

/// Append one RESP array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}
