//! Unit tests of the plugin runtime.

use super::*;

#[test]
fn plugin_text_loses_its_control_characters() {
    let s = clean_text("\u{1b}[2J\u{1b}[31mred\u{7}\r\nnext\u{202e}");
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert!(
        s.contains("red") && s.contains("next") && s.contains("\\u{1b}"),
        "{s}"
    );
    assert!(clean_text(&"x".repeat(10_000)).len() < 4200);
}

#[test]
fn names_and_extensions_that_could_steer_a_path_are_refused() {
    assert!(check_identity("t", "jsonl-gzip", "0.1.0", Some("jsonl.gz")).is_ok());
    for name in [
        "",
        "Evil",
        "../x.wasm",
        "/abs",
        "a b",
        "a\u{1b}",
        "-x",
        &"a".repeat(65),
    ] {
        assert!(check_identity("t", name, "1", None).is_err(), "{name:?}");
    }
    for ext in [
        "../../x", "a/b", ".hidden", "x.", "tmp", "a..b", "", "UPPER",
    ] {
        let e = check_identity("t", "ok", "1", Some(ext))
            .unwrap_err()
            .to_string();
        assert!(e.contains("extension"), "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }
    assert!(check_identity("t", "ok", "1\u{1b}", None).is_err());
}

#[test]
fn output_caps_follow_the_input() {
    let l = Limits::default();
    assert_eq!(l.output_cap(Some(10)), l.output_floor);
    assert_eq!(l.output_cap(Some(10 << 20)), 160 << 20);
    assert_eq!(l.output_cap(Some(1 << 40)), l.output_bytes);
    assert_eq!(l.output_cap(None), l.output_bytes);
}
