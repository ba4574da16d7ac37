//! Arbitrary words through the shell-word lexer: `expand_word` and `expand_words` return a
//! value or an error (never panic, never hang) for both escape characters, with a small env
//! that has set, empty and multi-word variables.
#![no_main]

use std::collections::BTreeMap;

use kiln_frontend::shell::{expand_word, expand_words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(word) = std::str::from_utf8(data) else {
        return;
    };
    let env: BTreeMap<String, String> = [
        ("A", "a"),
        ("EMPTY", ""),
        ("WORDS", "one two  three"),
        ("PATH", "/usr/local/bin:/usr/bin"),
        ("GLOB", "*.[ch]"),
        ("Q", "'\"\\$"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for escape in ['\\', '`'] {
        let one = expand_word(word, &env, escape);
        let many = expand_words(word, &env, escape);
        // Both walk the same word: they agree on whether it is malformed.
        assert_eq!(
            one.is_ok(),
            many.is_ok(),
            "expand_word {one:?} vs expand_words {many:?}"
        );
        if let Err(e) = one {
            let _ = e.to_string();
        }
    }
});
