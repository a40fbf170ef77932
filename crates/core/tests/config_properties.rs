//! Property tests of loading settings: the real `config/base.yaml` with a random `local.yaml`
//! over it — real keys and made-up ones, values of every type and size, or text that is not
//! YAML at all — never panics; each service either loads or says why with a
//! `ConfigurationError`.

use std::path::{Path, PathBuf};

use easel_core::Service;
use easel_core::configuration::{ConfigurationError, Environment, Settings};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// Every `section.key` path in base.yaml (by indentation), so overlays hit real settings.
fn base_keys() -> Vec<Vec<String>> {
    let base = std::fs::read_to_string(repo_config().join("base.yaml")).expect("reading config/base.yaml");
    let mut keys = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in base.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with('-') || trimmed.is_empty() {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else { continue };
        let indent = line.len() - trimmed.len();
        stack.retain(|(i, _)| *i < indent);
        stack.push((indent, key.trim().to_string()));
        keys.push(stack.iter().map(|(_, k)| k.clone()).collect());
    }
    assert!(keys.len() > 20, "found only {} keys in base.yaml", keys.len());
    keys
}

/// A value of any type: the scalars settings hold, the edges of their ranges, and structures.
fn value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(65_536), Just(i64::MAX), Just(u32::MAX as i64 + 1)].prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        prop::sample::select(vec!["local", "production", "json", "pretty", "0", "true", "~", "", "postgres://", "amqp://x", "http://[::1"])
            .prop_map(Value::from),
    ];
    scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A `local.yaml`: JSON (which YAML reads) setting real and made-up keys, or raw text.
fn overlay(keys: Vec<Vec<String>>) -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => prop::sample::select(keys),
        1 => prop::collection::vec("[a-z_]{1,10}", 1..4),
    ];
    let document = prop::collection::vec((key, value()), 0..8).prop_map(|pairs| {
        let mut root = Value::Object(Map::new());
        for (path, value) in pairs {
            set(&mut root, &path, value);
        }
        serde_json::to_string_pretty(&root).expect("JSON")
    });
    prop_oneof![
        6 => document,
        1 => any::<String>(),
        1 => "([a-z_]{1,10}:( |\\n  )[^\\n]{0,20}\\n){0,6}",
        1 => prop::sample::select(vec!["", "~", "---", "[]", "- a\n- b", "{", "application: 7", "application:\n  port: -1", "*anchor", "&a [*a]"]).prop_map(str::to_string),
    ]
}

/// Sets `path` in a JSON tree, replacing whatever is in the way.
fn set(root: &mut Value, path: &[String], value: Value) {
    let mut node = root;
    for step in &path[..path.len() - 1] {
        if !node.is_object() {
            *node = json!({});
        }
        node = node.as_object_mut().expect("an object").entry(step.clone()).or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    node.as_object_mut().expect("an object").insert(path[path.len() - 1].clone(), value);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_overlay_loads_or_is_refused(local in overlay(base_keys())) {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::copy(repo_config().join("base.yaml"), dir.path().join("base.yaml")).expect("copying base.yaml");
        std::fs::write(dir.path().join("local.yaml"), &local).expect("writing local.yaml");
        for service in [Service::Ingest, Service::Api, Service::Worker] {
            match Settings::load_files(service, dir.path(), Environment::Local) {
                Ok(settings) => {
                    prop_assert!(settings.worker.batch_size >= 1);
                    prop_assert!(!settings.rabbitmq.queue.is_empty());
                }
                Err(error) => {
                    let error: ConfigurationError = error;
                    prop_assert!(!error.to_string().is_empty());
                }
            }
        }
    }
}

/// The base files as they are load for every service (the property's starting point is sound).
#[test]
fn the_base_files_load() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::copy(repo_config().join("base.yaml"), dir.path().join("base.yaml")).expect("copying base.yaml");
    for service in [Service::Ingest, Service::Api, Service::Worker] {
        Settings::load_files(service, dir.path(), Environment::Local).unwrap_or_else(|e| panic!("{service:?}: {e}"));
    }
}
