//! Base-URL normalization and the other pure checks of `Config::load`.

use super::*;

#[test]
fn base_urls_normalize() {
    let a = normalize_base_url("https://api.openai.com/v1/").unwrap();
    let b = normalize_base_url("https://API.openai.com:443/v1").unwrap();
    assert_eq!(a, b);
    assert!(normalize_base_url("ftp://x/v1").is_err());
    assert!(normalize_base_url("https://u:p@x/v1").is_err());
    assert!(normalize_base_url("https://x/v1?a=b").is_err());
    assert!(normalize_base_url("not a url").is_err());
}

#[test]
fn loopback_hosts() {
    for yes in [
        "http://127.0.0.1:8089/v1",
        "http://localhost/v1",
        "http://[::1]:9/v1",
    ] {
        assert!(is_loopback(&normalize_base_url(yes).unwrap()), "{yes}");
    }
    for no in [
        "http://10.0.0.1/v1",
        "http://proxy.internal/v1",
        "http://127.0.0.1.nip.io/v1",
    ] {
        assert!(!is_loopback(&normalize_base_url(no).unwrap()), "{no}");
    }
}

#[test]
fn sqlite_dir_of_urls() {
    assert_eq!(
        sqlite_dir("sqlite://data/openai-governor.db"),
        PathBuf::from("data")
    );
    assert_eq!(
        sqlite_dir("sqlite:///tmp/x/y.db?mode=rwc"),
        PathBuf::from("/tmp/x")
    );
    assert_eq!(sqlite_dir("sqlite://y.db"), PathBuf::from("."));
}
