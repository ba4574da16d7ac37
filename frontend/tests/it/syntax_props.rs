//! Properties of the syntax layer: `parse` (and the typed step) never panic, neither on
//! arbitrary text nor on valid Dockerfiles with random edits.

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch AS a\nRUN echo a `\n  b\n",
    "FROM busybox\nRUN --mount=type=cache,target=/c,id=x \\\n  --network=none make\nCOPY --chmod=u=rw,g=r --from=a <<EOF /d/\nhello\nEOF\n",
    "FROM scratch\nRUN 3<<A 4<<-'B' cat\na\nA\n\tb\nB\nONBUILD RUN <<EOF\nx\nEOF\n",
    "ARG V=1\nFROM a:$V\nENV a=1 b=\"x y\"\nLABEL k v\nHEALTHCHECK --interval=1s --retries=2 CMD [\"true\"]\nCMD [\"a\", 'b']\n",
    "FROM a\nEXPOSE 80/tcp\nVOLUME [\"/v\"]\nUSER u\nWORKDIR /w\nSTOPSIGNAL 9\nSHELL [\"sh\",\"-c\"]\nADD --checksum=sha256:x --unpack u /d\n",
];

fn parse_all(text: &str) {
    if let Ok(df) = kiln_frontend::parse(text) {
        let _ = kiln_frontend::instructions::parse(&df);
        let _ = serde_json::to_string(&df);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("<<EOF\n".to_string()),
        Just("<<-".to_string()),
        Just("\nEOF\n".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("--".to_string()),
        Just("=".to_string()),
        Just(",".to_string()),
        Just("#".to_string()),
        Just("\n\n".to_string()),
        Just("\t".to_string()),
        Just("\u{feff}".to_string()),
        Just("é".to_string()),
        "\\PC{0,4}",
    ];
    prop_oneof![
        (any::<usize>(), piece).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 0usize..8).prop_map(|(at, n)| Edit::Delete(at, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    for e in edits {
        let boundaries: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
        match e {
            Edit::Insert(at, piece) => {
                let at = boundaries[at % boundaries.len()];
                s.insert_str(at, piece);
            }
            Edit::Delete(at, n) => {
                let i = at % boundaries.len();
                let j = (i + n).min(boundaries.len() - 1);
                s.replace_range(boundaries[i]..boundaries[j], "");
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_on_text(text in "\\PC{0,300}") {
        parse_all(&text);
    }

    #[test]
    fn parse_never_panics_on_dockerfile_like_text(
        text in "((FROM|RUN|COPY|ADD|ONBUILD|HEALTHCHECK|ENV|ARG|CMD|# escape=)[ a-z<>\\-=,\\[\\]\"'`\\\\$:/]{0,30}\n){0,8}"
    ) {
        parse_all(&text);
    }

    #[test]
    fn parse_never_panics_on_mutated_dockerfiles(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        parse_all(&apply(SEEDS[seed], &edits));
    }
}

#[test]
fn seeds_are_valid() {
    for s in SEEDS {
        let df = kiln_frontend::parse(s).unwrap();
        kiln_frontend::instructions::parse(&df).unwrap();
    }
}
