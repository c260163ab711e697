//! Webhook rules: events, the address policy, signatures.

use super::*;

const DEPLOYED: TargetPolicy = TargetPolicy {
    allow_loopback: false,
};
const LOCAL: TargetPolicy = TargetPolicy {
    allow_loopback: true,
};

#[test]
fn event_names_round_trip() {
    for k in EventKind::ALL {
        assert_eq!(EventKind::parse(k.as_str()), Some(k));
        assert_eq!(EventKind::from_detail_type(k.detail_type()), Some(k));
    }
    assert_eq!(EventKind::parse("sync.exploded"), None);
}

#[test]
fn filter_parsing_names_the_bad_entry_and_defaults_to_all() {
    assert_eq!(parse_events(&[]).unwrap(), EventKind::ALL.to_vec());
    let e = parse_events(&["sync.completed".into(), "sync.nope".into()]).unwrap_err();
    assert!(e.starts_with("events[1]: unknown event `sync.nope`"), "{e}");
    assert_eq!(
        parse_events(&["sync.failed".into(), "sync.failed".into()]).unwrap(),
        vec![EventKind::SyncFailed]
    );
}

#[test]
fn deployed_urls_are_public_https_only() {
    assert!(check_url("https://hooks.example.com/x?y=1", DEPLOYED).is_ok());
    for bad in [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/",
        "https://127.0.0.1/",
        "https://localhost:8443/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[64:ff9b::a00:1]/",
        "https://[::127.0.0.1]/",
        "https://[::a9fe:a9fe]/",
        "https://[::ffff:0:a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[64:ff9b:1::a00:1]/",
        "https://[fec0::1]/",
        "https://[100::1]/",
        "https://[2001::1]/",
        "https://[2001:db8::1]/",
        "https://0x7f.1/",
        "https://2130706433/",
        "https://127.0.0.1./",
        "not a url",
        "https://[::]/",
    ] {
        assert!(check_url(bad, DEPLOYED).is_err(), "{bad} should be refused");
    }
}

#[test]
fn local_mode_allows_loopback_http_and_nothing_else_private() {
    assert!(check_url("http://127.0.0.1:9999/hook", LOCAL).is_ok());
    assert!(check_url("http://localhost:9999/hook", LOCAL).is_ok());
    assert!(check_url("http://[::1]:9999/hook", LOCAL).is_ok());
    assert!(check_url("http://hooks.example.com/", LOCAL).is_err());
    assert!(check_url("https://10.0.0.1/", LOCAL).is_err());
    assert!(check_url("https://169.254.169.254/", LOCAL).is_err());
}

#[test]
fn public_addresses_pass() {
    for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
        assert!(address_allowed(ip.parse().unwrap(), DEPLOYED), "{ip}");
    }
}

#[test]
fn a_signature_verifies_and_tampering_does_not() {
    let secret = new_secret().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64);
    assert_ne!(secret, new_secret().unwrap());
    let body = br#"{"type":"sync.completed"}"#;
    let t = Timestamp(1_700_000_000);
    let h = sign(&secret, t, body);
    assert!(h.starts_with("t=1700000000,v1="));
    assert_eq!(verify(&secret, &h, body, t, 300), Ok(()));
    assert_eq!(
        verify(&secret, &h, br#"{"type":"sync.failed"}"#, t, 300),
        Err(BadSignature::Mismatch)
    );
    assert_eq!(
        verify("whsec_other", &h, body, t, 300),
        Err(BadSignature::Mismatch)
    );
    assert_eq!(
        verify(&secret, &h, body, Timestamp(t.secs() + 301), 300),
        Err(BadSignature::Stale)
    );
    assert_eq!(
        verify(&secret, "v1=00", body, t, 300),
        Err(BadSignature::Malformed)
    );
    // A second signature (another secret, during rotation) does not hide a match.
    let both = format!("{h},v1={}", "ab".repeat(32));
    assert_eq!(verify(&secret, &both, body, t, 300), Ok(()));
}

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Known answer, computed independently:
    // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
    let h = sign("whsec_test", Timestamp(1_700_000_000), b"{}");
    assert_eq!(
        h,
        "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
    );
}

#[test]
fn retries_follow_the_answer() {
    assert!(retryable(None));
    assert!(retryable(Some(500)) && retryable(Some(503)) && retryable(Some(429)));
    assert!(!retryable(Some(400)) && !retryable(Some(404)) && !retryable(Some(410)));
}
