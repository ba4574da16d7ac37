//! `--cache-to` and `--cache-from` values (buildx's syntax: comma-separated `key=value`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_oci::ImageRef;

/// The tag a local cache directory's `index.json` names the cache with when `tag=` is not
/// given (BuildKit's default).
pub const DEFAULT_LOCAL_TAG: &str = "latest";

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An OCI image layout directory; the cache is its `index.json` entry named `tag`.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` of the cache manifest.
        tag: String,
    },
    /// A registry reference (a tag, or for imports also a digest).
    Registry(ImageRef),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Local { dir, tag } if tag == DEFAULT_LOCAL_TAG => {
                write!(f, "{}", dir.display())
            }
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
            CacheLocation::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// Which records a cache export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The records of the exported image's own steps: the target stage's chain of parents
    /// (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage the build solved.
    Max,
}

/// A parsed `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to write.
    pub location: CacheLocation,
    /// Which records.
    pub mode: CacheMode,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

/// A parsed `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    /// Where to read.
    pub location: CacheLocation,
}

/// A `--cache-to`/`--cache-from` value kiln cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {spec:?}: {reason}")]
pub struct CacheSpecError {
    /// `--cache-to` or `--cache-from`.
    pub flag: &'static str,
    /// The value as given.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

/// The cache types buildx knows that kiln does not implement.
const UNSUPPORTED: [&str; 5] = ["inline", "gha", "s3", "azblob", "oci"];

struct Parsed {
    kind: String,
    kv: BTreeMap<String, String>,
}

fn split(flag: &'static str, spec: &str) -> Result<Parsed, CacheSpecError> {
    let bad = |reason: String| CacheSpecError {
        flag,
        spec: spec.to_string(),
        reason,
    };
    if spec.trim().is_empty() {
        return Err(bad("empty value".into()));
    }
    // buildx: a value without `=` is a registry reference.
    if !spec.contains('=') {
        return Ok(Parsed {
            kind: "registry".into(),
            kv: BTreeMap::from([("ref".to_string(), spec.trim().to_string())]),
        });
    }
    let mut kv = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        let k = k.trim().to_ascii_lowercase();
        if kv.insert(k.clone(), v.trim().to_string()).is_some() {
            return Err(bad(format!("{k}= is given twice")));
        }
    }
    let kind = kv
        .remove("type")
        .ok_or_else(|| bad("type= is required (local or registry)".into()))?;
    if UNSUPPORTED.contains(&kind.as_str()) {
        return Err(bad(format!(
            "cache type {kind:?} is not supported (use local or registry)"
        )));
    }
    if kind != "local" && kind != "registry" {
        return Err(bad(format!(
            "unknown cache type {kind:?} (expected local or registry)"
        )));
    }
    Ok(Parsed { kind, kv })
}

fn location(
    flag: &'static str,
    spec: &str,
    parsed: &mut Parsed,
    dir_key: &str,
) -> Result<CacheLocation, CacheSpecError> {
    let bad = |reason: String| CacheSpecError {
        flag,
        spec: spec.to_string(),
        reason,
    };
    if parsed.kind == "local" {
        let dir = parsed
            .kv
            .remove(dir_key)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| bad(format!("{dir_key}= is required for type=local")))?;
        let tag = parsed
            .kv
            .remove("tag")
            .unwrap_or_else(|| DEFAULT_LOCAL_TAG.to_string());
        if tag.is_empty() || tag.contains(['/', ':', '@', ' ']) {
            return Err(bad(format!("invalid tag {tag:?}")));
        }
        return Ok(CacheLocation::Local {
            dir: PathBuf::from(dir),
            tag,
        });
    }
    let reference = parsed
        .kv
        .remove("ref")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("ref= is required for type=registry".into()))?;
    let image: ImageRef = reference
        .parse()
        .map_err(|e| bad(format!("invalid reference: {e}")))?;
    Ok(CacheLocation::Registry(image))
}

fn no_more(flag: &'static str, spec: &str, parsed: &Parsed) -> Result<(), CacheSpecError> {
    match parsed.kv.keys().next() {
        Some(k) => Err(CacheSpecError {
            flag,
            spec: spec.to_string(),
            reason: format!("unknown key {k:?} for type={}", parsed.kind),
        }),
        None => Ok(()),
    }
}

/// Parses one `--cache-to`: `type=local,dest=DIR[,tag=T]` or `type=registry,ref=REF`, each
/// with `mode=min|max` and `ignore-error=true|false`; a bare `REF` means type=registry.
pub fn parse_cache_to(spec: &str) -> Result<CacheExport, CacheSpecError> {
    const FLAG: &str = "--cache-to";
    let bad = |reason: String| CacheSpecError {
        flag: FLAG,
        spec: spec.to_string(),
        reason,
    };
    let mut parsed = split(FLAG, spec)?;
    let mode = match parsed.kv.remove("mode").as_deref() {
        None | Some("min") => CacheMode::Min,
        Some("max") => CacheMode::Max,
        Some(m) => return Err(bad(format!("mode={m}: expected min or max"))),
    };
    let ignore_error = match parsed.kv.remove("ignore-error").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => return Err(bad(format!("ignore-error={v} is not a boolean"))),
    };
    let location = location(FLAG, spec, &mut parsed, "dest")?;
    if let CacheLocation::Registry(r) = &location {
        if r.digest.is_some() {
            return Err(bad("ref= must name a tag, not a digest".into()));
        }
    }
    no_more(FLAG, spec, &parsed)?;
    Ok(CacheExport {
        location,
        mode,
        ignore_error,
    })
}

/// Parses one `--cache-from`: `type=local,src=DIR[,tag=T]` or `type=registry,ref=REF`; a
/// bare `REF` means type=registry.
pub fn parse_cache_from(spec: &str) -> Result<CacheImport, CacheSpecError> {
    const FLAG: &str = "--cache-from";
    let mut parsed = split(FLAG, spec)?;
    let location = location(FLAG, spec, &mut parsed, "src")?;
    no_more(FLAG, spec, &parsed)?;
    Ok(CacheImport { location })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &str) -> CacheLocation {
        CacheLocation::Local {
            dir: dir.into(),
            tag: DEFAULT_LOCAL_TAG.into(),
        }
    }

    #[test]
    fn cache_to_forms() {
        let to = parse_cache_to("type=local,dest=/tmp/c").ok();
        assert_eq!(
            to,
            Some(CacheExport {
                location: local("/tmp/c"),
                mode: CacheMode::Min,
                ignore_error: false,
            })
        );
        let to = parse_cache_to("type=local,dest=/tmp/c,mode=max,tag=v2,ignore-error=true").ok();
        assert_eq!(
            to,
            Some(CacheExport {
                location: CacheLocation::Local {
                    dir: "/tmp/c".into(),
                    tag: "v2".into()
                },
                mode: CacheMode::Max,
                ignore_error: true,
            })
        );
        let reg = parse_cache_to("type=registry,ref=127.0.0.1:5000/cache:main,mode=max")
            .map(|c| (c.location.to_string(), c.mode));
        assert_eq!(
            reg.ok(),
            Some(("127.0.0.1:5000/cache:main".to_string(), CacheMode::Max))
        );
        // A bare reference is a registry cache; the tag defaults to latest.
        let bare = parse_cache_to("127.0.0.1:5000/cache").map(|c| c.location.to_string());
        assert_eq!(bare.ok().as_deref(), Some("127.0.0.1:5000/cache:latest"));
    }

    #[test]
    fn cache_from_forms() {
        assert_eq!(
            parse_cache_from("type=local,src=dir").ok(),
            Some(CacheImport {
                location: local("dir")
            })
        );
        let digest = format!("127.0.0.1:5000/c@{}", kiln_oci::Digest::of(b"x"));
        let reg = parse_cache_from(&format!("type=registry,ref={digest}"));
        assert!(matches!(
            reg,
            Ok(CacheImport {
                location: CacheLocation::Registry(ImageRef {
                    digest: Some(_),
                    ..
                })
            })
        ));
    }

    #[test]
    fn bad_specs_say_why() {
        let cases: [(&str, &str); 6] = [
            ("type=local", "dest= is required"),
            ("type=local,dest=d,mode=all", "mode=all"),
            ("type=gha", "not supported"),
            ("type=s3,bucket=x", "not supported"),
            ("type=registry,ref=x@sha256:zz", "invalid reference"),
            (
                "type=local,dest=d,compression=zstd",
                "unknown key \"compression\"",
            ),
        ];
        for (spec, why) in cases {
            let e = parse_cache_to(spec).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(why)),
                "{spec}: {e:?}"
            );
        }
        let from: [(&str, &str); 5] = [
            ("", "empty value"),
            ("type=local,dest=d", "src= is required"),
            ("type=registry", "ref= is required"),
            ("src=d", "type= is required"),
            ("type=local,src=d,mode=max", "unknown key \"mode\""),
        ];
        for (spec, why) in from {
            let e = parse_cache_from(spec).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(why)),
                "{spec}: {e:?}"
            );
        }
        let digest = format!("type=registry,ref=r.io/c@{}", kiln_oci::Digest::of(b"x"));
        assert!(parse_cache_to(&digest).is_err());
    }
}
