//! The `serve --manifests` source: what a folder of manifests turns into, and how the
//! registry follows changes to the folder.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_operator::manifests::{
    LoadReport, ManifestsSource, ResourceKind, Severity, embedded_examples, load_dir, load_str,
};
use mcp_oauth_operator::registry::{AuthSettings, Registry, ServerKey};
use tokio_util::sync::CancellationToken;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

fn server_yaml(ns: Option<&str>, name: &str, url: &str, auth: &str) -> String {
    let ns = ns
        .map(|n| format!("\n  namespace: {n}"))
        .unwrap_or_default();
    format!(
        "apiVersion: mcpoauth.dev/v1alpha1\nkind: RemoteMCPServer\nmetadata:\n  name: {name}{ns}\nspec:\n  url: {url}\n  auth:\n{auth}\n"
    )
}

fn keys<'a, V: 'a>(m: impl Iterator<Item = (&'a ServerKey, V)>) -> BTreeSet<String> {
    m.map(|(k, _)| k.to_string()).collect()
}

fn server_keys(report: &LoadReport) -> BTreeSet<String> {
    keys(report.snapshot.servers.iter())
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// (file, document, resource, severity) of every problem, plus its message.
fn problems(report: &LoadReport) -> Vec<(String, usize, String, Severity, String)> {
    report
        .problems
        .iter()
        .map(|p| {
            let resource = p
                .resource
                .as_ref()
                .map(|(k, key)| format!("{k} {key}"))
                .unwrap_or_default();
            (
                p.file.clone(),
                p.document,
                resource,
                p.severity,
                p.message.clone(),
            )
        })
        .collect()
}

fn mixed_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "00-secrets.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gh-client\n  namespace: team-a\nstringData:\n  clientSecret: s3cret-value\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: elsewhere\n  namespace: other-ns\ndata:\n  clientSecret: c2VjcmV0\n",
    );
    let oauth_client = |secret: &str| {
        format!(
            "    mode: oauth\n    oauth:\n      client:\n        id: my-client\n        secretRef:\n          name: {secret}"
        )
    };
    write(
        d,
        "10-servers.yaml",
        &[
            server_yaml(
                Some("team-a"),
                "good",
                "https://mcp.example.com/mcp",
                &oauth_client("gh-client"),
            ),
            server_yaml(Some("team-a"), "bad-url", "not-a-url", "    mode: none"),
            server_yaml(
                Some("team-a"),
                "no-policy",
                "https://mcp.example.com/mcp",
                "    mode: exchange",
            ),
            server_yaml(
                Some("team-a"),
                "cross-ns",
                "https://mcp.example.com/mcp",
                &oauth_client("elsewhere"),
            ),
        ]
        .join("---\n"),
    );
    write(
        d,
        "20-broken.yaml",
        &format!(
            "{}---\napiVersion: mcpoauth.dev/v1alpha1\nkind: RemoteMCPServer\nmetadata: {{name: broken\n",
            server_yaml(
                Some("team-a"),
                "before-break",
                "https://mcp.example.com/a",
                "    mode: none"
            )
        ),
    );
    write(
        d,
        "30-misc.yml",
        &[
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n".to_owned(),
            server_yaml(Some("team-a"), "good", "https://duplicate.example.com/mcp", "    mode: none"),
            "apiVersion: mcpoauth.dev/v1alpha1\nkind: TokenExchangePolicy\nmetadata:\n  name: pol\n  namespace: team-a\nspec:\n  tokenEndpoint: https://dex.b.example.com/token\n".to_owned(),
            server_yaml(Some("team-a"), "ex", "https://mcp.b.example.com/mcp", "    mode: exchange\n    exchange:\n      policyRef:\n        name: pol"),
            server_yaml(None, "everything", "http://127.0.0.1:3001/mcp", "    mode: none\n    oauht: {}"),
        ]
        .join("---\n"),
    );
    write(d, ".hidden.yaml", "{{{{ not yaml");
    write(d, "notes.txt", "{{{{ not yaml");
    dir
}

#[test]
fn a_folder_loads_what_is_valid_and_reports_the_rest() {
    let dir = mixed_folder();
    let report = load_dir(dir.path());

    assert_eq!(
        server_keys(&report),
        set(&[
            "default/everything",
            "team-a/before-break",
            "team-a/ex",
            "team-a/good"
        ])
    );
    assert_eq!(keys(report.snapshot.policies.iter()), set(&["team-a/pol"]));
    // The first definition of a duplicate wins.
    let good = &report.snapshot.servers[&ServerKey::new("team-a", "good")];
    assert_eq!(good.url.as_str(), "https://mcp.example.com/mcp");
    assert!(matches!(good.auth, AuthSettings::OAuth(_)));

    let got = problems(&report);
    let summary: Vec<_> = got
        .iter()
        .map(|(f, d, r, s, _)| (f.as_str(), *d, r.as_str(), *s))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "10-servers.yaml",
                2,
                "RemoteMCPServer team-a/bad-url",
                Severity::Error
            ),
            (
                "10-servers.yaml",
                3,
                "RemoteMCPServer team-a/no-policy",
                Severity::Error
            ),
            (
                "10-servers.yaml",
                4,
                "RemoteMCPServer team-a/cross-ns",
                Severity::Error
            ),
            ("20-broken.yaml", 2, "", Severity::Error),
            ("30-misc.yml", 1, "", Severity::Warning),
            (
                "30-misc.yml",
                2,
                "RemoteMCPServer team-a/good",
                Severity::Error
            ),
            (
                "30-misc.yml",
                5,
                "RemoteMCPServer default/everything",
                Severity::Warning
            ),
        ]
    );
    let message = |i: usize| got[i].4.as_str();
    assert!(message(0).starts_with("spec.url:"), "{}", message(0));
    assert!(
        message(1).contains("auth.exchange.policyRef is required"),
        "{}",
        message(1)
    );
    assert!(
        message(2).contains("Secret `elsewhere` not found in namespace `team-a`"),
        "{}",
        message(2)
    );
    assert!(message(3).contains("not valid YAML"), "{}", message(3));
    assert!(message(4).contains("ConfigMap"), "{}", message(4));
    assert!(
        message(5).contains("duplicate RemoteMCPServer team-a/good"),
        "{}",
        message(5)
    );
    assert!(message(6).contains("spec.auth.oauht"), "{}", message(6));
    // No secret value ever reaches a message.
    assert!(
        got.iter()
            .all(|p| !p.4.contains("s3cret-value") && !p.4.contains("secret\n"))
    );
}

#[test]
fn statuses_say_why_a_resource_is_not_ready() {
    let report = load_dir(mixed_folder().path());
    let status = |name: &str| {
        report
            .status(
                ResourceKind::RemoteMCPServer,
                &ServerKey::new("team-a", name),
            )
            .map(|s| (s.ready, s.reason))
    };
    assert_eq!(status("good"), Some((true, "Registered")));
    assert_eq!(status("bad-url"), Some((false, "InvalidURL")));
    assert_eq!(status("no-policy"), Some((false, "MissingPolicyRef")));
    assert_eq!(status("cross-ns"), Some((false, "SecretNotFound")));
    assert_eq!(status("ex"), Some((true, "Registered")));
    let policy = report.status(
        ResourceKind::TokenExchangePolicy,
        &ServerKey::new("team-a", "pol"),
    );
    assert_eq!(policy.map(|s| s.ready), Some(true));
}

#[test]
fn exchange_server_needs_a_valid_policy_in_its_namespace() {
    let yaml = format!(
        "apiVersion: mcpoauth.dev/v1alpha1\nkind: TokenExchangePolicy\nmetadata:\n  name: pol\n  namespace: other\nspec:\n  tokenEndpoint: https://dex.example.com/token\n---\n{}",
        server_yaml(
            Some("team-a"),
            "ex",
            "https://mcp.example.com/mcp",
            "    mode: exchange\n    exchange:\n      policyRef:\n        name: pol"
        )
    );
    let report = load_str("x.yaml", &yaml);
    assert!(report.snapshot.servers.is_empty());
    let status = report
        .status(
            ResourceKind::RemoteMCPServer,
            &ServerKey::new("team-a", "ex"),
        )
        .expect("status");
    assert_eq!((status.ready, status.reason), (false, "PolicyNotFound"));
}

#[test]
fn invalid_spec_shape_is_reported_with_its_resource() {
    let yaml = server_yaml(
        Some("team-a"),
        "typo",
        "https://mcp.example.com/mcp",
        "    mode: oauht",
    );
    let report = load_str("typo.yaml", &yaml);
    assert!(report.snapshot.servers.is_empty());
    let p = &report.problems[0];
    assert_eq!(
        (p.file.as_str(), p.document, p.severity),
        ("typo.yaml", 1, Severity::Error)
    );
    assert!(
        p.message.contains("unknown variant `oauht`"),
        "{}",
        p.message
    );
    let status = report
        .status(
            ResourceKind::RemoteMCPServer,
            &ServerKey::new("team-a", "typo"),
        )
        .expect("status");
    assert_eq!((status.ready, status.reason), (false, "InvalidManifest"));
}

#[test]
fn embedded_examples_load_without_problems() {
    let report = embedded_examples();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        server_keys(&report),
        set(&["default/everything", "default/local-oauth"])
    );
    let everything = &report.snapshot.servers[&ServerKey::new("default", "everything")];
    assert_eq!(everything.url.as_str(), "http://127.0.0.1:3001/mcp");
    assert!(matches!(everything.auth, AuthSettings::None));
    let local = &report.snapshot.servers[&ServerKey::new("default", "local-oauth")];
    assert_eq!(local.url.as_str(), "http://127.0.0.1:5557/mcp");
    assert!(matches!(local.auth, AuthSettings::OAuth(_)));
}

#[test]
fn example_folders_load_without_problems() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let manifests = load_dir(&root.join("manifests"));
    assert!(manifests.problems.is_empty(), "{:?}", manifests.problems);
    assert_eq!(server_keys(&manifests).len(), 2);

    let cluster = load_dir(&root.join("cluster"));
    assert!(cluster.problems.is_empty(), "{:?}", cluster.problems);
    assert_eq!(
        server_keys(&cluster),
        set(&[
            "team-a/cluster-b-forwarded",
            "team-a/cluster-b-tools",
            "team-a/files"
        ])
    );
    assert_eq!(
        keys(cluster.snapshot.policies.iter()),
        set(&["team-a/cluster-b"])
    );
}

#[test]
fn a_missing_folder_is_a_problem_not_a_crash() {
    let report = load_dir(Path::new("/nonexistent/manifests/folder"));
    assert!(report.snapshot.servers.is_empty());
    assert_eq!(report.errors().count(), 1);
    assert!(report.problems[0].message.contains("cannot read directory"));
}

// ---- following changes ---------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds or [`WAIT`] passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(registry: &Registry, ns: &str, name: &str) -> bool {
    registry.server(&ServerKey::new(ns, name)).is_some()
}

fn url_of(registry: &Registry, name: &str) -> Option<String> {
    registry
        .server(&ServerKey::new("default", name))
        .map(|s| s.url.to_string())
}

fn none_server(name: &str, url: &str) -> String {
    server_yaml(None, name, url, "    mode: none")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_follows_the_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "a.yaml", &none_server("a", "http://127.0.0.1:1/mcp"));
    let registry = Arc::new(Registry::new());
    let cancel = CancellationToken::new();
    let (handle, reports) = ManifestsSource::spawn(d, registry.clone(), cancel.clone());

    // Loaded before spawn returns.
    assert!(has(&registry, "default", "a"));
    assert!(reports.borrow().problems.is_empty());

    // A new file.
    write(d, "b.yaml", &none_server("b", "http://127.0.0.1:2/mcp"));
    eventually("b registered", || has(&registry, "default", "b")).await;

    // A modified file.
    write(d, "a.yaml", &none_server("a", "http://127.0.0.1:3/mcp"));
    eventually("a updated", || {
        url_of(&registry, "a").as_deref() == Some("http://127.0.0.1:3/mcp")
    })
    .await;

    // Garbage mid-run: reported, the other file keeps loading, the source keeps running.
    write(d, "b.yaml", "apiVersion: [unclosed\n");
    eventually("garbage reported", || {
        reports
            .borrow()
            .problems
            .iter()
            .any(|p| p.file == "b.yaml" && p.message.contains("not valid YAML"))
    })
    .await;
    assert!(!has(&registry, "default", "b"));
    assert!(has(&registry, "default", "a"));
    assert!(!handle.is_finished());

    // Editor-style save: write a hidden temp file, then rename it into place.
    write(
        d,
        ".b.yaml.swp",
        &none_server("b", "http://127.0.0.1:4/mcp"),
    );
    std::fs::rename(d.join(".b.yaml.swp"), d.join("b.yaml")).expect("rename");
    eventually("b back after rename", || {
        url_of(&registry, "b").as_deref() == Some("http://127.0.0.1:4/mcp")
    })
    .await;
    assert!(reports.borrow().problems.is_empty());

    // A removed file.
    std::fs::remove_file(d.join("a.yaml")).expect("remove");
    eventually("a removed", || !has(&registry, "default", "a")).await;
    assert!(has(&registry, "default", "b"));

    cancel.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("task stops on cancel")
        .expect("task did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Kubernetes layout: s.yaml -> ..data/s.yaml, ..data -> ..v1 (a timestamped folder).
    std::fs::create_dir(d.join("..v1")).expect("mkdir");
    write(
        &d.join("..v1"),
        "s.yaml",
        &none_server("s", "http://127.0.0.1:1/mcp"),
    );
    std::os::unix::fs::symlink("..v1", d.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/s.yaml", d.join("s.yaml")).expect("symlink");

    let registry = Arc::new(Registry::new());
    let cancel = CancellationToken::new();
    let (handle, _reports) = ManifestsSource::spawn(d, registry.clone(), cancel.clone());
    assert_eq!(
        url_of(&registry, "s").as_deref(),
        Some("http://127.0.0.1:1/mcp")
    );

    // The kubelet writes a new folder and atomically renames a new ..data symlink over the old.
    std::fs::create_dir(d.join("..v2")).expect("mkdir");
    write(
        &d.join("..v2"),
        "s.yaml",
        &none_server("s", "http://127.0.0.1:2/mcp"),
    );
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).expect("symlink");
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("rename");
    eventually("swap followed", || {
        url_of(&registry, "s").as_deref() == Some("http://127.0.0.1:2/mcp")
    })
    .await;

    cancel.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("task stops")
        .expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_folder_keeps_the_last_registrations_until_it_returns() {
    let parent = tempfile::tempdir().expect("tempdir");
    let d = parent.path().join("manifests");
    std::fs::create_dir(&d).expect("mkdir");
    write(&d, "a.yaml", &none_server("a", "http://127.0.0.1:1/mcp"));
    let registry = Arc::new(Registry::new());
    let cancel = CancellationToken::new();
    let (handle, reports) = ManifestsSource::spawn(&d, registry.clone(), cancel.clone());

    std::fs::remove_dir_all(&d).expect("rm");
    eventually("vanished folder reported", || {
        reports
            .borrow()
            .problems
            .iter()
            .any(|p| p.message.contains("cannot read directory"))
    })
    .await;
    assert!(has(&registry, "default", "a"));

    // Back with other content: found by polling, then watched again.
    std::fs::create_dir(&d).expect("mkdir");
    write(&d, "b.yaml", &none_server("b", "http://127.0.0.1:2/mcp"));
    eventually("folder back", || {
        has(&registry, "default", "b") && !has(&registry, "default", "a")
    })
    .await;
    write(&d, "c.yaml", &none_server("c", "http://127.0.0.1:3/mcp"));
    eventually("watched again", || has(&registry, "default", "c")).await;

    cancel.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("task stops")
        .expect("no panic");
}

/// `serve` applies the same transport rule as the cluster: a plain-http server outside
/// loopback is not registered (reason `InsecureURL`, saying how to fix it) unless the manifest
/// sets `allowInsecureHttp: true`; loopback http stays allowed.
#[test]
fn plain_http_outside_loopback_needs_the_resources_opt_in() {
    let none = "    mode: none";
    let text = [
        server_yaml(
            Some("team-a"),
            "cleartext",
            "http://mcp.internal.example:8080/mcp",
            none,
        ),
        server_yaml(Some("team-a"), "local", "http://127.0.0.1:5999/mcp", none),
        server_yaml(
            Some("team-a"),
            "opted-in",
            "http://mcp.internal.example:8080/mcp",
            none,
        )
        .replace("spec:\n", "spec:\n  allowInsecureHttp: true\n"),
    ]
    .join("---\n");
    let report = load_str("servers.yaml", &text);
    assert_eq!(
        server_keys(&report),
        set(&["team-a/local", "team-a/opted-in"])
    );
    let status = report
        .status(
            ResourceKind::RemoteMCPServer,
            &ServerKey::new("team-a", "cleartext"),
        )
        .expect("status");
    assert_eq!((status.ready, status.reason), (false, "InsecureURL"));
    let problem = problems(&report);
    assert_eq!(problem.len(), 1, "{problem:?}");
    assert!(
        problem[0].4.contains("allowInsecureHttp: true") && problem[0].4.contains("https"),
        "{}",
        problem[0].4
    );
}
