//! One route table: the watch router in Cargo.toml (and, once infra/ lands, the template)
//! must agree with shared/src/api/routes.rs.

use cupid_sync::api::routes::ROUTES;
use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_watch_router_mirrors_the_route_table() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let router = doc["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("router table");
    let mut in_toml = BTreeSet::new();
    for (path, entries) in router {
        for e in entries.as_array().expect("array of {method, function}") {
            in_toml.insert(format!(
                "{} {} -> {}",
                e["method"].as_str().unwrap(),
                path,
                e["function"].as_str().unwrap()
            ));
        }
    }
    let in_code: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.function))
        .collect();
    assert_eq!(
        in_toml, in_code,
        "regenerate with `target/debug/devstack router`"
    );
}

#[test]
fn every_function_crate_serves_at_least_one_route_or_is_the_sync() {
    let mut crates: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    for c in &crates {
        assert!(
            c == "sync" || ROUTES.iter().any(|r| r.function == c),
            "functions/{c} serves no route"
        );
        let main =
            std::fs::read_to_string(root().join(format!("functions/{c}/src/main.rs"))).unwrap();
        assert!(
            main.lines().count() <= 15,
            "functions/{c}/src/main.rs must only wire"
        );
    }
    for r in ROUTES {
        assert!(
            crates.iter().any(|c| c == r.function),
            "{} {} names a missing function {}",
            r.method,
            r.path,
            r.function
        );
    }
}
