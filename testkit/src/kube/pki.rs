//! The test cluster's PKI, made with the `openssl` CLI, and the admin kubeconfig.

use std::path::Path;
use std::process::Stdio;

/// Extensions of the apiserver's serving certificate.
const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature
";
/// Extensions of the admin's client certificate.
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature
";
/// A new P-256 key: much faster to generate than RSA, and every component accepts it.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// Writes into `pki`: a CA (`ca.crt`/`ca.key`), the apiserver's serving certificate for
/// 127.0.0.1 and localhost (`apiserver.*`), the admin client certificate in group
/// `system:masters` (`admin.*`) and the service-account signing key pair (`sa.key`/`sa.pub`).
/// Valid for two days: tests are short.
pub(super) fn make_pki(pki: &Path) {
    std::fs::create_dir_all(pki).expect("create pki dir");
    std::fs::write(pki.join("server.ext"), SERVER_EXT).expect("write server.ext");
    std::fs::write(pki.join("client.ext"), CLIENT_EXT).expect("write client.ext");
    openssl(
        pki,
        &format!("req -x509 {NEW_KEY} -keyout ca.key -out ca.crt -days 2 -subj /CN=kube-test-ca"),
    );
    for (name, subject, ext) in [
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=admin", "client.ext"),
    ] {
        openssl(
            pki,
            &format!("req {NEW_KEY} -keyout {name}.key -out {name}.csr -subj {subject}"),
        );
        openssl(
            pki,
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                 -out {name}.crt -days 2 -extfile {ext}"
            ),
        );
    }
    openssl(
        pki,
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key",
    );
    openssl(pki, "pkey -in sa.key -pubout -out sa.pub");
}

/// Runs `openssl` in `dir` with `args` split at spaces (none of ours contains one).
fn openssl(dir: &Path, args: &str) {
    let out = std::process::Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run openssl ({err}); run scripts/setup-test-deps.sh"));
    assert!(
        out.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `dir/kubeconfig` for the admin user (certificates in `dir/pki`) against
/// `https://127.0.0.1:{port}`.
pub(super) fn write_kubeconfig(dir: &Path, port: u16) {
    let pki = dir.join("pki");
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: default
current-context: test
",
        ca = pki.join("ca.crt").display(),
        cert = pki.join("admin.crt").display(),
        key = pki.join("admin.key").display(),
    );
    std::fs::write(dir.join("kubeconfig"), kubeconfig).expect("write kubeconfig");
}
