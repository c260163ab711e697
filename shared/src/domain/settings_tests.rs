//! Tests of `settings.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;

#[test]
fn defaults_match_the_design() {
    let s = Settings::default();
    assert_eq!(s.interval.to_string(), "12h");
    assert_eq!(
        (s.batch_size, s.max_concurrent, s.retry_attempts),
        (10, 5, 3)
    );
    assert!(s.enable_auto);
    assert_eq!(s.rate_limit, 10.0);
}

#[test]
fn bad_values_name_the_key() {
    for (k, v) in [
        ("sync_interval", "6x"),
        ("sync_interval", "0h"),
        ("sync_interval", "-1h"),
        ("sync_interval", "8d"),
        ("sync_batch_size", "ten"),
        ("sync_batch_size", "0"),
        ("sync_batch_size", "101"),
        ("sync_max_concurrent", "65"),
        ("sync_retry_attempts", "11"),
        ("sync_enable_auto", "yes"),
        ("sync_rate_limit", "0"),
        ("sync_rate_limit", "1001"),
        ("sync_rate_limit", "NaN"),
        ("sync_rate_limit", "1e-20"),
        ("sync_rate_limit", "0.09"),
        ("sync_rate_limit", "inf"),
        ("sync_languages", "fr,xx"),
        ("sync_languages", "french"),
        ("sync_review_count", "-1"),
        ("sync_review_count", "1001"),
    ] {
        let key: SettingKey = k.parse().unwrap();
        let err = parse_value(key, v).unwrap_err();
        assert_eq!(err.key(), k, "{k}={v}");
        assert!(err.to_string().contains(k), "{err}");
    }
    assert_eq!("nope".parse::<SettingKey>().unwrap_err().key(), "nope");
}

/// One declaration per setting, in key order, names and variables unique, defaults valid.
#[test]
fn each_setting_is_declared_once_and_its_default_is_valid() {
    let mut names = std::collections::BTreeSet::new();
    let mut envs = std::collections::BTreeSet::new();
    for (i, k) in SettingKey::ALL.iter().enumerate() {
        let spec = &SPECS[i];
        assert_eq!(spec.key, *k, "SPECS[{i}] is out of order");
        assert!(
            names.insert(spec.name) && envs.insert(spec.env),
            "{} twice",
            spec.name
        );
        assert_eq!(spec.env, spec.name.to_ascii_uppercase());
        assert!(
            parse_value(*k, spec.default).is_ok(),
            "{}'s default",
            spec.name
        );
        assert_eq!(k.as_str().parse::<SettingKey>().unwrap(), *k);
    }
    let e = "nope".parse::<SettingKey>().unwrap_err().to_string();
    assert!(SPECS.iter().all(|s| e.contains(s.name)), "{e}");
}

#[test]
fn languages_are_normalised_and_english_is_implicit() {
    let v = parse_value(SettingKey::SyncLanguages, " FR, es,fr,en ").unwrap();
    assert_eq!(v, SettingValue::Languages(vec!["fr".into(), "es".into()]));
    assert_eq!(v.render(), "fr,es");
    assert_eq!(
        parse_value(SettingKey::SyncLanguages, "").unwrap(),
        SettingValue::Languages(vec![])
    );
    let mut s = Settings::default();
    assert_eq!(s.requests_per_property(), 4);
    s.apply(SettingKey::SyncReviewCount, SettingValue::Count(0));
    s.apply(SettingKey::SyncLanguages, SettingValue::Languages(vec![]));
    assert_eq!(s.requests_per_property(), 1);
}

#[test]
fn change_lists_validate_as_a_whole() {
    let ok = vec![
        SettingChange {
            setting_key: "sync_batch_size".into(),
            setting_value: serde_json::json!(25),
        },
        SettingChange {
            setting_key: "sync_enable_auto".into(),
            setting_value: serde_json::json!(false),
        },
    ];
    assert_eq!(validate_changes(&ok).unwrap().len(), 2);
    let bad = vec![
        SettingChange {
            setting_key: "sync_batch_size".into(),
            setting_value: serde_json::json!(25),
        },
        SettingChange {
            setting_key: "sync_interval".into(),
            setting_value: serde_json::json!("8d"),
        },
    ];
    assert_eq!(validate_changes(&bad).unwrap_err().key(), "sync_interval");
}

#[test]
fn overlay_applies_stored_values_and_names_a_broken_one() {
    let mut s = Settings::default();
    let stored = BTreeMap::from([
        ("sync_interval".to_string(), "24h".to_string()),
        ("sync_rate_limit".to_string(), "1e-20".to_string()),
    ]);
    let err = s.overlay(&stored).unwrap_err();
    assert_eq!(err.key, SettingKey::SyncRateLimit);
    assert!(err.to_string().contains("sync_rate_limit"), "{err}");
    let mut lenient = Settings::default();
    lenient.overlay_valid(&stored);
    assert_eq!(lenient.interval.to_string(), "24h");
    assert_eq!(lenient.rate_limit, 10.0);
    // The extremes of the accepted range stay usable.
    for r in ["0.1", "1000"] {
        assert!(parse_value(SettingKey::SyncRateLimit, r).is_ok(), "{r}");
    }
}
