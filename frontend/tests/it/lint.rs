//! Build checks: every rule fires on a Dockerfile that breaks it (with BuildKit's message on
//! the right line) and stays silent on one that follows it; the `# check=` directive.

use kiln_frontend::lint::{lint, rules, CheckConfig, LintReport};
use kiln_frontend::LowerOptions;

use crate::fake::FakeResolver;

fn run(text: &str) -> LintReport {
    lint(
        text,
        &LowerOptions::default(),
        Some(&FakeResolver::default()),
    )
    .unwrap_or_else(|e| panic!("lint failed: {e}\n{text}"))
}

fn of_rule(report: &LintReport, rule: &str) -> Vec<(usize, String)> {
    report
        .warnings
        .iter()
        .filter(|w| w.rule_name == rule)
        .map(|w| (w.start_line, w.detail.clone()))
        .collect()
}

/// (rule, Dockerfile that breaks it, expected (line, detail)s, Dockerfile that does not).
type Case = (
    &'static str,
    &'static str,
    &'static [(usize, &'static str)],
    &'static str,
);

const CASES: &[Case] = &[
    (
        "StageNameCasing",
        "FROM scratch AS Build\n",
        &[(1, "Stage name 'Build' should be lowercase")],
        "FROM scratch AS build\n",
    ),
    (
        "FromAsCasing",
        "FROM scratch as base\nfrom scratch AS other\n",
        &[
            (1, "'as' and 'FROM' keywords' casing do not match"),
            (2, "'AS' and 'from' keywords' casing do not match"),
        ],
        "FROM scratch AS base\nfrom base as other\n",
    ),
    (
        "NoEmptyContinuation",
        "FROM scratch\nLABEL a=1 \\\n\n  b=2\n",
        &[(2, "Empty continuation line")],
        "FROM scratch\nLABEL a=1 \\\n# a comment\n  b=2\n",
    ),
    (
        "ConsistentInstructionCasing",
        "FROM scratch\nLABEL a=1\nlabel b=2\nLaBeL c=3\n",
        &[
            (3, "Command 'label' should match the case of the command majority (uppercase)"),
            (4, "Command 'LaBeL' should match the case of the command majority (uppercase)"),
        ],
        "from scratch\nlabel a=1\n",
    ),
    (
        "DuplicateStageName",
        "FROM scratch AS a\nFROM scratch AS A\n",
        &[(2, "Duplicate stage name \"a\", stage names should be unique")],
        "FROM scratch AS a\nFROM scratch AS b\n",
    ),
    (
        "ReservedStageName",
        "FROM busybox AS scratch\nFROM busybox AS context\n",
        &[
            (1, "Stage name should not use the same name as reserved stage \"scratch\""),
            (2, "Stage name should not use the same name as reserved stage \"context\""),
        ],
        "FROM busybox AS builder\n",
    ),
    (
        "JSONArgsRecommended",
        "FROM busybox\nENTRYPOINT my-app start\nCMD run --verbose\n",
        &[
            (2, "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"),
            (3, "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"),
        ],
        "FROM busybox\nENTRYPOINT [\"my-app\", \"start\"]\nSHELL [\"/bin/sh\", \"-c\"]\nCMD run --verbose\n",
    ),
    (
        "MaintainerDeprecated",
        "FROM scratch\nMAINTAINER me@example.com\n",
        &[(2, "Maintainer instruction is deprecated in favor of using label")],
        "FROM scratch\nLABEL org.opencontainers.image.authors=me@example.com\n",
    ),
    (
        "UndefinedArgInFrom",
        "ARG VERSION=1\nFROM busybox:${VERSON}\n",
        &[(2, "FROM argument 'VERSON' is not declared (did you mean VERSION?)")],
        "ARG VERSION=1\nFROM busybox:${VERSION}\nFROM busybox:$TARGETARCH\n",
    ),
    (
        "WorkdirRelativePath",
        "FROM busybox\nWORKDIR app\nWORKDIR sub\n",
        &[(2, "Relative workdir \"app\" can have unexpected results if the base image changes")],
        "FROM busybox\nWORKDIR /app\nWORKDIR sub\n",
    ),
    (
        "UndefinedVar",
        "FROM busybox\nARG foo=1\nCOPY $fo /x\nENV PATH=$PAHT:/opt/bin\n",
        &[
            (3, "Usage of undefined variable '$fo' (did you mean $foo?)"),
            (4, "Usage of undefined variable '$PAHT' (did you mean $PATH?)"),
        ],
        "FROM busybox\nARG foo\nCOPY $foo /x\nENV PATH=$PATH:/opt/bin\n",
    ),
    (
        "MultipleInstructionsDisallowed",
        "FROM busybox\nCMD [\"a\"]\nCMD [\"b\"]\nENTRYPOINT [\"e\"]\n",
        &[(2, "Multiple CMD instructions should not be used in the same stage because only the last one will be used")],
        "FROM busybox AS a\nCMD [\"a\"]\nFROM a\nCMD [\"b\"]\n",
    ),
    (
        "LegacyKeyValueFormat",
        "FROM scratch\nENV key value\nLABEL key value with spaces\n",
        &[
            (2, "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format"),
            (3, "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format"),
        ],
        "FROM scratch\nENV key=value\nLABEL key=\"value with spaces\"\n",
    ),
    (
        "SecretsUsedInArgOrEnv",
        "FROM scratch\nARG GITHUB_TOKEN\nENV aws_secret_access_key=x\n",
        &[
            (2, "Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\")"),
            (3, "Do not use ARG or ENV instructions for sensitive data (ENV \"aws_secret_access_key\")"),
        ],
        "FROM scratch\nARG PUBLIC_KEY\nENV TOKENIZER=x KEY_FILE=/k\n",
    ),
    (
        "InvalidDefaultArgInFrom",
        "ARG VERSION\nFROM busybox:$VERSION\n",
        &[(2, "Default value for ARG busybox:$VERSION results in empty or invalid base image name")],
        "ARG VERSION=1.36\nFROM busybox:$VERSION\n",
    ),
    (
        "ExposeProtoCasing",
        "FROM scratch\nEXPOSE 80/TcP 443\n",
        &[(2, "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase")],
        "FROM scratch\nEXPOSE 80/tcp 53/udp\n",
    ),
    (
        "ExposeInvalidFormat",
        "FROM scratch\nEXPOSE 127.0.0.1:80:80 8080:80\n",
        &[
            (2, "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'"),
            (2, "EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80'"),
        ],
        "FROM scratch\nEXPOSE 80 8080-8090/udp\n",
    ),
];

#[test]
fn every_rule_fires_and_stays_silent() {
    assert_eq!(CASES.len(), rules::ALL.len(), "one case per rule");
    for (rule, bad, expected, good) in CASES {
        let meta = rules::ALL.iter().find(|r| r.name == *rule).unwrap();
        let report = run(bad);
        let got = of_rule(&report, rule);
        let want: Vec<(usize, String)> =
            expected.iter().map(|(l, d)| (*l, d.to_string())).collect();
        assert_eq!(got, want, "{rule} on:\n{bad}\nall: {:#?}", report.warnings);
        for w in report.warnings.iter().filter(|w| w.rule_name == *rule) {
            assert_eq!(w.url, meta.url);
            assert_eq!(w.description, meta.description);
        }
        let report = run(good);
        assert_eq!(of_rule(&report, rule), vec![], "{rule} fired on:\n{good}");
    }
}

#[test]
fn clean_dockerfile_has_no_warnings() {
    let text = "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS build\nWORKDIR /src\nCOPY . .\nRUN make\n\nFROM scratch\nCOPY --from=build /src/app /app\nENTRYPOINT [\"/app\"]\n";
    assert_eq!(run(text).warnings, vec![]);
}

#[test]
fn dispatch_rules_only_check_stages_the_target_needs() {
    let text =
        "FROM busybox AS unused\nWORKDIR rel\nCMD echo hi\n\nFROM busybox AS used\nWORKDIR rel\n";
    let r = run(text);
    let lines: Vec<usize> = r.warnings.iter().map(|w| w.start_line).collect();
    assert_eq!(lines, vec![6], "{:#?}", r.warnings);
    let opts = LowerOptions {
        target: Some("unused".into()),
        ..Default::default()
    };
    let r = lint(text, &opts, Some(&FakeResolver::default())).unwrap();
    let rules: Vec<&str> = r.warnings.iter().map(|w| w.rule_name.as_str()).collect();
    assert_eq!(rules, vec!["WorkdirRelativePath", "JSONArgsRecommended"]);
}

#[test]
fn undefined_var_sees_image_env_and_build_args() {
    // busybox's config from the fake resolver has PATH only.
    let text = "FROM busybox\nARG a\nENV first=$a second=$PATH\nENV bee=1 cee=$bee\n";
    let r = run(text);
    assert_eq!(
        of_rule(&r, "UndefinedVar"),
        vec![(4, "Usage of undefined variable '$bee'".to_string())],
        "one instruction sees the env as it was before it"
    );
    // Without a resolver an image's ENV is unknown: no UndefinedVar for image-based stages.
    let r = lint(text, &LowerOptions::default(), None).unwrap();
    assert_eq!(of_rule(&r, "UndefinedVar"), vec![]);
    let r = lint(
        "FROM scratch\nCOPY $nope /\n",
        &LowerOptions::default(),
        None,
    )
    .unwrap();
    assert_eq!(
        of_rule(&r, "UndefinedVar"),
        vec![(2, "Usage of undefined variable '$nope'".to_string())]
    );
}

#[test]
fn check_directive_skips_rules_and_turns_warnings_into_errors() {
    let body = "FROM scratch as base\nMAINTAINER me\n";
    let r = run(body);
    assert_eq!(r.warnings.len(), 2);
    assert_eq!(r.error(), None, "warnings are not errors by default");

    let r = run(&format!("# check=skip=FromAsCasing\n{body}"));
    let names: Vec<&str> = r.warnings.iter().map(|w| w.rule_name.as_str()).collect();
    assert_eq!(names, vec!["MaintainerDeprecated"]);

    let r = run(&format!("# check=skip=all\n{body}"));
    assert!(r.warnings.is_empty());
    assert_eq!(r.error(), None);

    let r = run(&format!("# check=error=true\n{body}"));
    assert_eq!(
        r.error().as_deref(),
        Some("lint violation found for rules: FromAsCasing, MaintainerDeprecated")
    );

    let r = run(&format!(
        "# check=skip=MaintainerDeprecated,FromAsCasing;error=true\n{body}"
    ));
    assert_eq!(r.error(), None, "error=true with nothing left to report");

    let e = lint(
        &format!("# check=bogus=1\n{body}"),
        &LowerOptions::default(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to parse check options: invalid check option \"bogus\""
    );
    assert_eq!(
        CheckConfig::parse("skip = A, B ; error = 1").unwrap(),
        CheckConfig {
            skip: vec!["A".into(), "B".into()],
            skip_all: false,
            error: true
        }
    );
    assert!(CheckConfig::parse("error=maybe").is_err());
    assert!(CheckConfig::parse("skip").is_err());
}

#[test]
fn parse_errors_are_errors() {
    let e = lint(
        "FROM scratch\nFNTRYPOINT x\n",
        &LowerOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("unknown instruction: FNTRYPOINT"),
        "{e}"
    );
    assert!(e.span().is_some());
}

/// Golden: the short form `kiln build` prints, for a file that breaks several rules.
#[test]
fn golden_short_form() {
    let text = "FROM busybox as Builder\nworkdir app\nENV key value\nCMD run\nCMD run again\nEXPOSE 80/TCP\n";
    let got: Vec<String> = run(text).warnings.iter().map(|w| w.short()).collect();
    let want = [
        "StageNameCasing: Stage name 'Builder' should be lowercase (line 1)",
        "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
        "ConsistentInstructionCasing: Command 'workdir' should match the case of the command majority (uppercase) (line 2)",
        "WorkdirRelativePath: Relative workdir \"app\" can have unexpected results if the base image changes (line 2)",
        "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 3)",
        "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"key\") (line 3)",
        "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 4)",
        "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 4)",
        "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 5)",
        "ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase (line 6)",
    ];
    assert_eq!(got, want);
}

/// Golden: the JSON form of one warning.
#[test]
fn golden_json() {
    let r = run("FROM scratch\nMAINTAINER me\n");
    let v = serde_json::to_value(&r.warnings[0]).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "ruleName": "MaintainerDeprecated",
            "description": "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
            "url": "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
            "detail": "Maintainer instruction is deprecated in favor of using label",
            "span": {"start": 13, "end": 26},
            "startLine": 2,
            "endLine": 2
        })
    );
}
