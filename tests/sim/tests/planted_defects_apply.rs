//! The planted defects (`tests/sim/planted/*.patch`, run by `make sim-bites`) must keep applying
//! to the code as it changes, or the proof that the simulation bites silently rots.

#[test]
fn every_planted_defect_still_applies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !root.join(".git").exists() {
        eprintln!("not a git checkout; skipping the patch check");
        return;
    }
    let dir = root.join("tests/sim/planted");
    let mut patches: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    assert_eq!(
        patches.len(),
        14,
        "defects 1-6 of the correctness issue, 7-8 of the scale issue, 9-14 of data quality"
    );
    for p in patches {
        let out = std::process::Command::new("git")
            .current_dir(&root)
            .args(["apply", "--check"])
            .arg(&p)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "{} no longer applies: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
