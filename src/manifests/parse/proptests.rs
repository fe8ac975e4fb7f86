//! Hostile manifests for `serve --manifests`: any text is documents and problems (each a typed
//! [`ManifestProblem`]), never a panic or unbounded recursion; a well-formed server reads back
//! under its own key.

use super::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_file("junk.yaml", &text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "(apiVersion: |kind: |metadata:|  name: |  namespace: |spec:|  url: |---|\n|- |\\{|\\}|\\[|\\]|&a |\\*a|!!str |RemoteMCPServer|mcpoauth.dev/v1alpha1|v1|Secret|[a-z0-9 :\"'])*") {
        let docs = parse_file("shaped.yaml", &text);
        for p in &docs.problems {
            prop_assert!(!p.message.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_a_problem_not_a_stack_overflow(depth in 64usize..3000, flow in any::<bool>()) {
        let text = if flow {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            (0..depth).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>()
        };
        let _ = parse_file("deep.yaml", &text);
    }

    #[test]
    fn aliases_cannot_blow_up(n in 1usize..12) {
        // A "billion laughs" document: each level repeats the previous one ten times.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..n {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let started = std::time::Instant::now();
        let docs = parse_file("laughs.yaml", &text);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        if n >= 5 {
            // 10^5 replayed events and more: refused, with a problem saying so.
            prop_assert!(docs.documents.is_empty());
            prop_assert!(!docs.problems.is_empty());
        }
    }

    #[test]
    fn a_well_formed_server_reads_back(namespace in "[a-z][a-z0-9-]{0,20}[a-z0-9]", name in "[a-z][a-z0-9-]{0,20}[a-z0-9]", port in 1u16..) {
        let text = format!(
            "apiVersion: mcpoauth.dev/v1alpha1\nkind: RemoteMCPServer\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  url: https://mcp.example.com:{port}/mcp\n  auth:\n    mode: none\n"
        );
        let docs = parse_file("server.yaml", &text);
        prop_assert!(docs.problems.is_empty(), "{:?}", docs.problems);
        match &docs.documents[..] {
            [Document { parsed: Parsed::Server(s), .. }] => {
                prop_assert_eq!(s.metadata.name.as_deref(), Some(name.as_str()));
                prop_assert_eq!(s.metadata.namespace.as_deref(), Some(namespace.as_str()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
