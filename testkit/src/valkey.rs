//! A real `valkey-server` for tests (Debian bookworm-backports `valkey-server` 8, installed by
//! `scripts/setup-test-deps.sh`), plain or TLS, plus raw access to what it stores.
//!
//! The server runs under a small `sh` wrapper holding our end of a pipe on its stdin: when the
//! test process ends in any way (even killed), the pipe closes and the wrapper stops the
//! server, so nothing lingers on its port. [`Valkey::shared`] is one server per test binary;
//! tests sharing it isolate themselves with a random key prefix ([`random_prefix`]).

use super::net::free_port;
use bytes::Bytes;
use fred::prelude::*;
use rand::RngCore as _;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server from `$1` (a config file) until stdin closes, then stops it.
const WRAPPER: &str = r#"valkey-server "$1" & pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0"#;

/// A running `valkey-server` on 127.0.0.1; stopped when dropped.
pub struct Valkey {
    port: u16,
    dir: tempfile::TempDir,
    tls: bool,
    cluster: bool,
    running: Option<(Child, ChildStdin)>,
}

impl Valkey {
    /// A plain-TCP server on a free port, without persistence.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// A TLS-only server whose certificate (for IP 127.0.0.1) is signed by a fresh test CA, see
    /// [`Valkey::ca_file`].
    pub fn start_tls() -> Self {
        Self::launch(true)
    }

    /// A plain-TCP server on `port` (e.g. one a client was already pointed at).
    pub fn start_on(port: u16) -> Self {
        let mut valkey = Self {
            port,
            dir: tempfile::tempdir().expect("tempdir for valkey"),
            tls: false,
            cluster: false,
            running: None,
        };
        valkey.write_config();
        valkey.spawn();
        valkey
    }

    /// One plain server per test binary, started on first use.
    pub fn shared() -> &'static Valkey {
        static SHARED: OnceLock<Valkey> = OnceLock::new();
        SHARED.get_or_init(Valkey::start)
    }

    fn launch(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for valkey");
        if tls {
            make_certificates(dir.path());
        }
        let mut valkey = Self {
            port: free_port(),
            dir,
            tls,
            cluster: false,
            running: None,
        };
        valkey.write_config();
        valkey.spawn();
        valkey
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut conf = format!(
            "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\nlogfile {}\n",
            d.display(),
            d.join("valkey.log").display()
        );
        if self.cluster {
            conf.push_str(&format!(
                "cluster-enabled yes\ncluster-config-file {}\ncluster-node-timeout 5000\n",
                d.join("nodes.conf").display()
            ));
        }
        if self.tls {
            conf.push_str(&format!(
                "port 0\ntls-port {}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-auth-clients no\n",
                self.port,
                d.join("server.pem").display(),
                d.join("server.key").display(),
                d.join("ca.pem").display()
            ));
        } else {
            conf.push_str(&format!("port {}\n", self.port));
        }
        std::fs::write(d.join("valkey.conf"), conf).expect("write valkey.conf");
    }

    fn spawn(&mut self) {
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "sh"])
            .arg(self.dir.path().join("valkey.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for valkey-server");
        let stdin = child.stdin.take().expect("wrapper stdin");
        self.running = Some((child, stdin));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "valkey-server on port {} not ready within {READY_TIMEOUT:?} (is valkey-server \
                 installed? run scripts/setup-test-deps.sh); log:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("valkey.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Plain: answers PING. TLS: accepts connections (the handshake needs a TLS client).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// Stop the server (and wait until it has exited).
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.running.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Stop and start again on the same port (nothing persists: the data is gone).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "ca_file() of a server started without TLS");
        self.dir.path().join("ca.pem")
    }

    /// A raw client (plain servers only) for reading and writing stored bytes directly.
    pub async fn raw(&self) -> RawValkey {
        assert!(!self.tls, "raw() is for plain servers");
        let config = Config::from_url(&self.url()).expect("valkey url");
        let client = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
            .build()
            .expect("raw valkey client");
        client.init().await.expect("raw valkey client connects");
        RawValkey { client }
    }
}

/// A Valkey cluster of primaries only (no replicas), all slots assigned; stopped when dropped.
pub struct ValkeyCluster {
    nodes: Vec<Valkey>,
}

impl ValkeyCluster {
    /// `n` (≥ 3, Valkey's minimum) primaries on free ports, joined with `valkey-cli --cluster
    /// create`, ready when every node reports `cluster_state:ok`.
    pub fn start(n: usize) -> Self {
        let nodes: Vec<Valkey> = (0..n)
            .map(|_| {
                let mut node = Valkey {
                    port: free_port(),
                    dir: tempfile::tempdir().expect("tempdir for valkey"),
                    tls: false,
                    cluster: true,
                    running: None,
                };
                node.write_config();
                node.spawn();
                node
            })
            .collect();
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend([
            "--cluster-replicas".into(),
            "0".into(),
            "--cluster-yes".into(),
        ]);
        let out = Command::new("valkey-cli")
            .args(&args)
            .output()
            .expect("run valkey-cli --cluster create");
        assert!(
            out.status.success(),
            "valkey-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &nodes {
            loop {
                let info = Command::new("valkey-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run valkey-cli cluster info");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ok within {READY_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// One URL per node (any one is enough for a client to discover the rest).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Valkey::url).collect()
    }
}

impl Drop for Valkey {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raw access to stored keys and bytes, bypassing the stores.
pub struct RawValkey {
    client: Client,
}

impl RawValkey {
    /// Every key matching the glob `pattern` (SCAN).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut cursor = "0".to_owned();
        let mut out = Vec::new();
        loop {
            let (next, keys): (String, Vec<String>) = self
                .client
                .scan_page(cursor, pattern, Some(1000), None)
                .await
                .expect("SCAN");
            out.extend(keys);
            if next == "0" {
                return out;
            }
            cursor = next;
        }
    }

    pub async fn hgetall(&self, key: &str) -> HashMap<String, Vec<u8>> {
        let all: HashMap<String, Bytes> = self.client.hgetall(key).await.expect("HGETALL");
        all.into_iter().map(|(k, v)| (k, v.to_vec())).collect()
    }

    pub async fn hget(&self, key: &str, field: &str) -> Option<Vec<u8>> {
        let v: Option<Bytes> = self.client.hget(key, field).await.expect("HGET");
        v.map(|b| b.to_vec())
    }

    pub async fn hset(&self, key: &str, field: &str, value: &[u8]) {
        let _: i64 = self
            .client
            .hset(key, (field, Bytes::copy_from_slice(value)))
            .await
            .expect("HSET");
    }

    pub async fn smembers(&self, key: &str) -> Vec<String> {
        self.client.smembers(key).await.expect("SMEMBERS")
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let v: Option<Bytes> = self.client.get(key).await.expect("GET");
        v.map(|b| b.to_vec())
    }

    pub async fn pttl(&self, key: &str) -> i64 {
        self.client.pttl(key).await.expect("PTTL")
    }
}

/// A fresh key prefix, so tests sharing a server never see each other's keys.
pub fn random_prefix() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}:")
}

/// A CA (`ca.pem`) and a server certificate for IP 127.0.0.1 (`server.pem`, `server.key`).
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mcp-oauth test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}
