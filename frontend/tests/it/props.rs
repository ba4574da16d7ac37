//! Properties: expansion and parsing never panic on arbitrary input.

use proptest::prelude::*;

use kiln_frontend::shell::{expand_word, expand_words};

fn env() -> Vec<(String, String)> {
    vec![("A".into(), "a b".into()), ("E".into(), String::new())]
}

proptest! {
    #[test]
    fn expand_word_never_panics(word in "\\PC*", bt in any::<bool>()) {
        let esc = if bt { '`' } else { '\\' };
        let _ = expand_word(&word, &env(), esc);
        let _ = expand_words(&word, &env(), esc);
    }

    #[test]
    fn expand_word_shell_like_never_panics(word in "[$\\{\\}:+?#%\\-'\"\\\\ aAE0-9=]{0,40}") {
        let _ = expand_word(&word, &env(), '\\');
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = kiln_frontend::parse(&text);
    }

    #[test]
    fn plain_words_without_specials_are_unchanged(word in "[a-zA-Z0-9_./:-]{0,30}") {
        prop_assert_eq!(expand_word(&word, &env(), '\\').unwrap(), word);
    }
}
