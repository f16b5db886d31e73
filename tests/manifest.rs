//! The manifest requests exactly the bot scopes the code needs, checked against Slack's method
//! documentation and against the source itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use incd::slack::manifest::{bot_scopes, manifest_yaml, COMMANDS_SCOPE, METHODS};
use serde_json::Value;

fn spec_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/specs/slack-method-docs-2026-05/methods");
    if shared.is_dir() {
        shared
    } else {
        root.join("tests/contracts/slack-methods")
    }
}

fn spec(method: &str) -> Value {
    let p = spec_dir().join(format!("{method}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn bot_scopes_of(method: &str) -> Vec<String> {
    spec(method)["scopes"]["bot"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `"x.y"` literal passed to `.call(` / `.call_form(` in `src/`.
fn methods_called_in_source() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in [".call(", ".call_form("] {
                for (i, _) in text.match_indices(needle) {
                    let rest = text[i + needle.len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"') {
                        let name = &lit[..lit.find('"').unwrap()];
                        found.insert(name.to_string());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_method_the_code_calls_is_in_the_scope_table() {
    let called = methods_called_in_source();
    assert!(called.contains("conversations.create") && called.contains("chat.postMessage"));
    let table: BTreeSet<String> = METHODS.iter().map(|(m, _)| m.to_string()).collect();
    for m in &called {
        assert!(
            table.contains(m),
            "{m} is called but missing from manifest::METHODS"
        );
    }
}

#[test]
fn every_method_is_covered_by_a_scope_the_manifest_requests() {
    let requested = bot_scopes();
    for (method, ours) in METHODS {
        let accepted = bot_scopes_of(method);
        match ours {
            None => assert!(
                accepted.is_empty(),
                "{method} needs one of {accepted:?} but the table says no scope"
            ),
            Some(scope) => {
                assert!(
                    accepted.iter().any(|a| a == scope),
                    "{method}: Slack accepts {accepted:?}, not {scope}"
                );
                assert!(requested.contains(scope), "{scope} not requested");
            }
        }
    }
}

#[test]
fn the_manifest_requests_no_scope_the_code_does_not_use() {
    let docs = yaml_rust2::YamlLoader::load_from_str(&manifest_yaml()).unwrap();
    let m = &docs[0];
    let scopes: BTreeSet<String> = m["oauth_config"]["scopes"]["bot"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let used: BTreeSet<String> = METHODS
        .iter()
        .filter_map(|(_, s)| s.map(String::from))
        .chain([COMMANDS_SCOPE.to_string()])
        .collect();
    assert_eq!(scopes, used);
    assert_eq!(m["settings"]["socket_mode_enabled"].as_bool(), Some(true));
    assert_eq!(
        m["settings"]["interactivity"]["is_enabled"].as_bool(),
        Some(true)
    );
    let commands: Vec<&str> = m["features"]["slash_commands"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, vec!["/incident", "/resolve-incident"]);
}
