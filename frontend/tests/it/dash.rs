//! Where BuildKit's word rules follow POSIX sh, kiln's expansion must print what `dash` prints
//! for the same word. The generator only builds words inside that common ground: quotes,
//! escapes of ordinary characters, `$V`, `${V}`, the `-` `+` `:-` `:+` family with simple
//! words, and `#` `##` `%` `%%` with `*`/`?`/literal patterns; no unquoted whitespace (dash
//! would split it into arguments) and no nesting inside double quotes (dash keeps quotes
//! there literally, BuildKit does not).

use std::process::Command;

use proptest::prelude::*;

use kiln_frontend::shell::expand_word;

const ENV: &[(&str, &str)] = &[
    ("A", "a.b.c"),
    ("E", ""),
    ("S", "x*y?z"),
    ("N", "1.22.3-alpine"),
];

fn env() -> Vec<(String, String)> {
    ENV.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What dash prints for `printf %s WORD` with ENV set and globbing off.
fn dash(word: &str) -> String {
    let mut cmd = Command::new("dash");
    cmd.env_clear();
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let out = cmd
        .arg("-c")
        .arg(format!("set -f; printf %s {word}"))
        .output()
        .unwrap_or_else(|e| panic!("dash must be installed to run this test: {e}"));
    assert!(
        out.status.success(),
        "dash failed on {word:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn var() -> impl Strategy<Value = String> {
    prop_oneof![Just("A"), Just("E"), Just("S"), Just("N"), Just("U")].prop_map(String::from)
}

/// Unquoted text without whitespace or characters special to either side.
fn lit() -> impl Strategy<Value = String> {
    "[a-z0-9.,:=/@_-]{1,4}"
}

/// A word usable after `:-` inside `${}`.
fn inner() -> impl Strategy<Value = String> {
    prop_oneof![
        lit(),
        "[a-z .]{0,4}".prop_map(|s| format!("'{s}'")),
        "[a-z .]{0,4}".prop_map(|s| format!("\"{s}\"")),
        var().prop_map(|v| format!("${v}")),
        Just(String::new()),
    ]
}

fn glob() -> impl Strategy<Value = String> {
    "[a-z0-9.*?-]{0,4}"
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        lit(),
        "[a-z .$*?\\\\]{0,5}".prop_map(|s| format!("'{s}'")),
        // Double quotes: text, `$V`, and escapes of `$ " \`.
        prop::collection::vec(
            prop_oneof![
                "[a-z .'*?]{1,3}".prop_map(String::from),
                var().prop_map(|v| format!("${{{v}}}")),
                prop_oneof![Just("\\$"), Just("\\\""), Just("\\\\"), Just("\\n")]
                    .prop_map(String::from),
            ],
            0..4
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat())),
        "[a-z$'\" *?]".prop_map(|c| format!("\\{c}")),
        var().prop_map(|v| format!("${v}")),
        var().prop_map(|v| format!("${{{v}}}")),
        (
            var(),
            prop_oneof![Just("-"), Just(":-"), Just("+"), Just(":+")],
            inner()
        )
            .prop_map(|(v, op, w)| format!("${{{v}{op}{w}}}")),
        (
            var(),
            prop_oneof![Just("#"), Just("##"), Just("%"), Just("%%")],
            glob()
        )
            .prop_map(|(v, op, p)| format!("${{{v}{op}{p}}}")),
    ]
}

fn word() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..5).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn expansion_matches_dash(w in word()) {
        let ours = expand_word(&w, &env(), '\\').unwrap();
        prop_assert_eq!(ours, dash(&w), "word {:?}", w);
    }
}

/// Fixed cases of the same ground, so a regression shows without shrinking.
#[test]
fn table_matches_dash() {
    let words = [
        "${A#*.}",
        "${A##*.}",
        "${A%.*}",
        "${A%%.*}",
        "${N%-*}",
        "${S#*\\*}",
        "${S%\\?*}",
        "${A#?}",
        "${E:-d}${E-d}${U-d}${U:+x}${A:+x}",
        "'$A'\"$A\"\\$A",
        "\"a\\$b\\\"c\\\\d\\e\"",
        "${U:-'q q'}",
        "a\\*b",
    ];
    for w in words {
        assert_eq!(expand_word(w, &env(), '\\').unwrap(), dash(w), "word {w:?}");
    }
}
