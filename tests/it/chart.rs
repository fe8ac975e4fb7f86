//! The Helm chart `charts/mcp-oauth-operator`: its CRD copies match `crds/`, and
//! `scripts/check-chart.py` passes — strict lint, renders with several values files validated by
//! `kubernetes-validate`, security/RBAC/CRD assertions, refused invalid values — offline and as a
//! real install into a kube-apiserver.
//!
//! The Python checks run with the venv `scripts/setup-test-deps.sh` creates
//! (`$MCPOAUTH_VENV`, default `~/.cache/mcp-oauth-operator/venv`): helm-python-sdk bundles
//! Helm's Go SDK, since no helm CLI is available from the reachable registries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::kube::KubeApi;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chart venv's python (same rule as `scripts/setup-test-deps.sh`).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("MCPOAUTH_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/mcp-oauth-operator/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing; run scripts/setup-test-deps.sh (it creates the venv with \
         helm-python-sdk and kubernetes-validate)",
        python.display()
    );
    python
}

fn check_chart(args: &[&str]) -> Output {
    Command::new(venv_python())
        .arg(root().join("scripts/check-chart.py"))
        .args(args)
        .current_dir(root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run scripts/check-chart.py")
}

fn assert_passed(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Shown with `--nocapture`: which checks ran.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("chart checks passed"),
        "{what} did not report success:\n{stdout}"
    );
}

/// `*.yaml` file names in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

/// Helm can only read files inside the chart, so the chart carries a copy of `crds/`; it must
/// never drift from the generated originals.
#[test]
fn chart_crds_are_a_byte_for_byte_copy_of_crds_dir() {
    let originals = root().join("crds");
    let copies = root().join("charts/mcp-oauth-operator/files/crds");
    let resync = "re-sync with: rm charts/mcp-oauth-operator/files/crds/*.yaml && \
                  cp crds/*.yaml charts/mcp-oauth-operator/files/crds/";
    let names = yaml_files(&originals);
    assert!(
        names.len() >= 2,
        "expected the CRDs in crds/, found {names:?}"
    );
    assert_eq!(
        names,
        yaml_files(&copies),
        "the chart's CRD files differ from crds/; {resync}"
    );
    for name in &names {
        let original = std::fs::read(originals.join(name)).expect("read CRD");
        let copy = std::fs::read(copies.join(name)).expect("read chart CRD copy");
        assert!(
            original == copy,
            "charts/mcp-oauth-operator/files/crds/{name} differs from crds/{name}; {resync}"
        );
    }
}

/// Lint, render (several values files), `kubernetes-validate --strict -k 1.30.0`, assertions on
/// the rendered objects, and invalid values refused by `values.schema.json`.
#[test]
fn chart_lints_renders_validates_and_refuses_bad_values() {
    let out = check_chart(&[]);
    assert_passed("scripts/check-chart.py", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for step in [
        "ok   lint   default",
        "ok   render all-features",
        "ok   refuse missing publicUrl",
        "ok   refuse unknown store",
    ] {
        assert!(stdout.contains(step), "missing step {step:?}:\n{stdout}");
    }
}

/// Install, upgrade and uninstall against a real kube-apiserver (v1.20: the PDB falls back to
/// policy/v1beta1); objects and granted permissions checked with kubectl.
#[tokio::test]
async fn chart_installs_upgrades_and_uninstalls_in_an_api_server() {
    let api = KubeApi::start().await;
    let kubeconfig = api.kubeconfig_path();
    let kubeconfig = kubeconfig.to_str().expect("kubeconfig path is UTF-8");
    let out = tokio::task::spawn_blocking({
        let kubeconfig = kubeconfig.to_owned();
        move || check_chart(&["--skip-offline", "--install", &kubeconfig])
    })
    .await
    .expect("check-chart task");
    assert_passed(
        &format!(
            "scripts/check-chart.py --install (apiserver log tail:\n{})",
            api.apiserver_log()
        ),
        &out,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok   install uninstall keeps CRDs"),
        "the install checks did not all run:\n{stdout}"
    );
}

/// Every `MCPOAUTH_*` variable the chart sets is one the binary reads: a renamed flag must not
/// leave the chart setting a variable nobody reads (silently losing the user's value).
#[test]
fn chart_env_names_are_flags_of_the_binary() {
    let help = Command::new(env!("CARGO_BIN_EXE_mcp-oauth-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let name = regex::Regex::new(r"MCPOAUTH_[A-Z0-9_]+").expect("regex");
    let known: std::collections::BTreeSet<&str> =
        name.find_iter(&help).map(|m| m.as_str()).collect();
    assert!(known.contains("MCPOAUTH_LISTEN"), "{help}");
    let templates = root().join("charts/mcp-oauth-operator/templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&templates).expect("templates") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for m in name.find_iter(&text) {
            checked += 1;
            assert!(
                known.contains(m.as_str()),
                "{} sets {}, which `run` does not read",
                path.display(),
                m.as_str()
            );
        }
    }
    assert!(checked > 5, "the chart sets MCPOAUTH_* variables");
}
