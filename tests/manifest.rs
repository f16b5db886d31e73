//! The manifest requests exactly the bot scopes the code needs, checked against Slack's method
//! documentation and against the source itself: every typed call in `slack/web.rs` names a
//! [`Method`], and no Web API method name is written anywhere outside `src/slack/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use incd::slack::manifest::{bot_scopes, manifest_yaml, COMMANDS_SCOPE, EVENTS, METHODS};
use incd::slack::web::Method;
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

/// Every `.rs` file under `src/`, with its path relative to the crate root.
fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}

/// Every `"x.y"` literal passed straight to `.call(` / `.call_form(` in `src/`.
fn raw_calls_in_source() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, text) in source_files() {
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
    found
}

/// Every `Method::Variant` named in `src/` (the typed calls and anything else naming one).
fn methods_named_in_source() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, text) in source_files() {
        for (i, _) in text.match_indices("Method::") {
            let rest = &text[i + "Method::".len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            let variant = &rest[..end];
            if variant
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
                && variant != "ALL"
            {
                found.insert(variant.to_string());
            }
        }
    }
    found
}

#[test]
fn every_method_the_code_calls_is_in_the_scope_table() {
    let table: BTreeSet<String> = METHODS.iter().map(|(m, _)| m.to_string()).collect();
    let typed: BTreeSet<String> = Method::ALL.iter().map(|m| m.name().to_string()).collect();
    assert!(typed.contains("conversations.create") && typed.contains("chat.postMessage"));
    for m in typed.iter().chain(raw_calls_in_source().iter()) {
        assert!(
            table.contains(m),
            "{m} is called but missing from manifest::METHODS"
        );
    }
}

#[test]
fn every_method_named_in_the_source_is_listed_in_method_all() {
    let all: BTreeSet<String> = Method::ALL.iter().map(|m| format!("{m:?}")).collect();
    let named = methods_named_in_source();
    assert!(named.contains("ConversationsCreate") && named.contains("ChatPostMessage"));
    for v in &named {
        // `reqwest::Method::POST` and the like are not ours.
        if v.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        assert!(
            all.contains(v),
            "Method::{v} is used but missing from Method::ALL"
        );
    }
}

#[test]
fn no_web_api_method_name_is_written_outside_the_slack_module() {
    let names: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
    for (path, text) in source_files() {
        if path.starts_with("src/slack/") {
            continue;
        }
        for name in &names {
            assert!(
                !text.contains(&format!("\"{name}\"")),
                "{path} names the Web API method {name}: call the typed function in slack::web"
            );
        }
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
        .chain(EVENTS)
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
    assert_eq!(
        m["features"]["slash_commands"][0]["should_escape"].as_bool(),
        Some(true),
        "mentions arrive as <@U…|name>"
    );
    let events: Vec<&str> = m["settings"]["event_subscriptions"]["bot_events"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "reaction_added",
            "reaction_removed",
            "pin_added",
            "pin_removed",
            "app_home_opened"
        ]
    );
    let home = &m["features"]["app_home"];
    assert_eq!(home["home_tab_enabled"].as_bool(), Some(true));
    assert_eq!(home["messages_tab_enabled"].as_bool(), Some(true));
}
