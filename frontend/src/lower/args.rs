//! Global build ARGs (platform defaults, `TARGETSTAGE`, the ARGs before the first FROM)
//! and the checks of values they feed: `SOURCE_DATE_EPOCH` and `FROM --platform`.

use kiln_ir::Span;

use super::{add_or_replace, LowerOptions};
use crate::error::FrontendError;
use crate::instructions::Instructions;
use crate::shell::Lexer;

/// Global ARGs: the platform defaults, then the ARGs before the first FROM.
pub(super) fn meta_args(
    ins: &Instructions,
    opts: &LowerOptions,
    lexer: &Lexer,
) -> Result<Vec<(String, String)>, FrontendError> {
    let mut args: Vec<(String, String)> = Vec::new();
    // TARGETSTAGE: the stage being built (`default` for an unnamed last stage).
    let target_stage = match &opts.target {
        Some(t) => t.clone(),
        None => ins
            .stages
            .last()
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| "default".into()),
    };
    for (k, v) in [
        ("TARGETSTAGE", target_stage.as_str()),
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ] {
        let v = opts.build_args.get(k).map_or(v, String::as_str);
        add_or_replace(&mut args, k, v);
    }
    for (pairs, span) in &ins.meta_args {
        for kv in pairs {
            let value = match (opts.build_args.get(&kv.key), &kv.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    lexer
                        .expand(d, &args)
                        .map_err(|e| FrontendError::at(e.to_string(), Some(*span)))?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                add_or_replace(&mut args, &kv.key, &v);
            }
        }
    }
    if let Some((_, v)) = args.iter().find(|(k, _)| k == "SOURCE_DATE_EPOCH") {
        check_epoch(v)?;
    } else if let Some(v) = opts.build_args.get("SOURCE_DATE_EPOCH") {
        check_epoch(v)?;
    }
    Ok(args)
}

/// `SOURCE_DATE_EPOCH` must be an integer number of seconds (BuildKit's check).
fn check_epoch(v: &str) -> Result<(), FrontendError> {
    v.parse::<i64>().map(|_| ()).map_err(|_| {
        FrontendError::at(
            format!(
                "invalid SOURCE_DATE_EPOCH: {v}: strconv.ParseInt: parsing \"{v}\": invalid syntax"
            ),
            None,
        )
    })
}

/// Whether `platform` (`os/arch[/variant]`, any case) names the one platform kiln builds:
/// linux/amd64, with its aliases `x86_64`/`x86-64` and variant `v1`.
pub fn is_build_platform(platform: &str) -> bool {
    let norm = platform.to_ascii_lowercase();
    matches!(
        norm.trim_end_matches("/v1"),
        "linux/amd64" | "linux/x86_64" | "linux/x86-64"
    )
}

/// `FROM --platform=`: expanded with the global ARGs; kiln builds linux/amd64 only.
pub(super) fn check_platform(
    raw: &str,
    lexer: &Lexer,
    args: &[(String, String)],
    span: Span,
) -> Result<(), FrontendError> {
    let p = lexer.expand(raw, &args.to_vec()).map_err(|e| {
        FrontendError::at(
            format!("failed to process arguments for platform {raw}: {e}"),
            Some(span),
        )
    })?;
    if p.is_empty() {
        return Err(FrontendError::at(
            format!("empty platform value from expression {raw}"),
            Some(span),
        ));
    }
    if is_build_platform(&p) {
        Ok(())
    } else {
        Err(FrontendError::at(
            format!(
                "FROM --platform={p}: kiln builds linux/amd64 images only (no emulation or cross-platform stages yet)"
            ),
            Some(span),
        ))
    }
}
