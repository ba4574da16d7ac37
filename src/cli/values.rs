//! `kiln build` flag values with a syntax of their own: `-o` outputs, `--secret`/`--ssh`,
//! `--build-context`, `--add-host` and `--platform` (BuildKit's and buildx's forms), each
//! parsed into a typed value or a [`UsageError`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_exporter::ExportCompression;

use super::UsageError;

/// Where the built image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// `docker load` into the Docker daemon (`--load`).
    Load,
    /// The final stage's filesystem, written into a directory (`type=local`, or `-o DIR`).
    Local {
        /// Destination directory.
        dest: PathBuf,
    },
    /// The final stage's filesystem as a tar (`type=tar`).
    Tar {
        /// Destination file.
        dest: PathBuf,
    },
    /// docker-save tarball.
    Docker {
        /// Destination file (`-` is not supported).
        dest: PathBuf,
    },
    /// OCI image layout, as a tar or a directory.
    Oci {
        /// Destination file or directory.
        dest: PathBuf,
        /// Write a tar (default) or a directory.
        tar: bool,
        /// Layer compression.
        compression: ExportCompression,
    },
    /// Push to a registry under these names.
    Image {
        /// References to push to.
        names: Vec<String>,
        /// Push (otherwise the image is only named).
        push: bool,
        /// Layer compression.
        compression: ExportCompression,
    },
}

/// `--platform`: one platform, and it must be `linux/amd64` (no emulation here).
pub(super) fn check_platform(value: &str) -> Result<(), UsageError> {
    if kiln_frontend::is_build_platform(value.trim()) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "invalid --platform {value:?}: kiln builds linux/amd64 images only"
        )))
    }
}

/// `--add-host HOST:IP` (or `HOST=IP`; an IPv6 address may be in brackets), as buildx.
pub(super) fn parse_add_host(value: &str) -> Result<(String, String), UsageError> {
    let bad = |m: &str| UsageError(format!("invalid --add-host {value:?}: {m}"));
    let (host, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| bad("expected HOST:IP"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("invalid host name"));
    }
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad("invalid IP address"))?;
    Ok((host.to_string(), ip.to_string()))
}

/// `--secret` and `--ssh` values (BuildKit's syntax: `id=x,src=FILE`, `id=x,env=VAR`,
/// `id=x` meaning the file or variable named like the id; `default`, `default=SOCKET`).
pub(crate) fn session(
    secrets: &[String],
    ssh: &[String],
) -> Result<kiln_executor::Session, UsageError> {
    use kiln_executor::SecretSource;
    let mut out = kiln_executor::Session::default();
    for spec in secrets {
        let bad = |m: &str| UsageError(format!("invalid secret {spec:?}: {m}"));
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("expected key=value"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => kind = Some(v.to_string()),
                other => return Err(bad(&format!("unexpected key {other:?}"))),
            }
        }
        let id = id.ok_or_else(|| bad("id= is required"))?;
        let source = match (kind.as_deref(), src, env) {
            (_, Some(_), Some(_)) => return Err(bad("src= and env= are exclusive")),
            (Some("env"), Some(v), None) | (_, None, Some(v)) => SecretSource::Env(v),
            (Some("file") | None, Some(f), None) => SecretSource::File(f.into()),
            (Some("env"), None, None) => SecretSource::Env(id.clone()),
            (Some("file"), None, None) => SecretSource::File(id.clone().into()),
            (None, None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
            (None, None, None) => SecretSource::File(id.clone().into()),
            (Some(t), _, _) => return Err(bad(&format!("unknown type {t:?}"))),
        };
        let source = match source {
            SecretSource::File(f) => SecretSource::File(
                std::fs::canonicalize(&f)
                    .ok()
                    .filter(|p| p.is_file())
                    .ok_or_else(|| bad(&format!("{} is not a file", f.display())))?,
            ),
            env => env,
        };
        out.secrets.insert(id, source);
    }
    for spec in ssh {
        let (id, socket) = match spec.split_once('=') {
            Some((id, s)) => (id.to_string(), PathBuf::from(s)),
            None => {
                let s = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    UsageError(format!(
                        "invalid ssh {spec:?}: SSH_AUTH_SOCK is not set; use {spec}=SOCKET"
                    ))
                })?;
                (spec.to_string(), PathBuf::from(s))
            }
        };
        if id.is_empty() {
            return Err(UsageError(format!("invalid ssh {spec:?}: empty id")));
        }
        let socket = std::fs::canonicalize(&socket)
            .map_err(|e| UsageError(format!("invalid ssh {spec:?}: {}: {e}", socket.display())))?;
        out.ssh.insert(id, socket);
    }
    Ok(out)
}

/// What a `--build-context` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildContext {
    /// A local directory (checked when the build starts, as buildx does).
    Local(PathBuf),
    /// `docker-image://REF`.
    Image(String),
}

/// Parses one `--build-context NAME=VALUE` (buildx's forms; the name is normalised as an
/// image reference, `docker.io/library/alpine:latest` → `alpine`). git, HTTP, OCI-layout and
/// bake `target:` values are not supported.
pub(crate) fn parse_build_context(spec: &str) -> Result<(String, BuildContext), UsageError> {
    let bad = |m: String| UsageError(format!("invalid --build-context {spec:?}: {m}"));
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=VALUE".into()))?;
    if name.is_empty() {
        return Err(bad("empty name".into()));
    }
    let key = kiln_frontend::named_context_key(name)
        .map_err(|e| bad(format!("invalid context name {name:?}: {e}")))?;
    if value.is_empty() {
        return Err(bad("empty value".into()));
    }
    if let Some(reference) = value.strip_prefix("docker-image://") {
        if reference != "scratch" {
            reference
                .parse::<kiln_oci::ImageRef>()
                .map_err(|e| bad(format!("invalid image: {e}")))?;
        }
        return Ok((key, BuildContext::Image(reference.to_string())));
    }
    let kind = if let Some((scheme, _)) = value.split_once("://") {
        Some(format!("{scheme}://"))
    } else if value.starts_with("git@") {
        Some("git".into())
    } else if value.starts_with("target:") {
        Some("target:".into())
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(bad(format!(
            "{kind} contexts are not supported (use a local directory or docker-image://REF)"
        )));
    }
    Ok((key, BuildContext::Local(PathBuf::from(value))))
}

const COMP: &str = "compression";
const LEVEL: &str = "compression-level";
const FORCE: &str = "force-compression";

/// Parses one `-o` value: comma-separated `key=value` pairs (BuildKit's syntax).
pub(crate) fn parse_output(spec: &str, tags: &[String]) -> Result<Output, UsageError> {
    // buildx: a bare path is short for type=local,dest=PATH.
    if !spec.contains('=') && !spec.is_empty() {
        if spec == "-" {
            return Err(UsageError(
                "invalid output \"-\": writing to stdout is not supported; use type=tar,dest=FILE"
                    .into(),
            ));
        }
        return Ok(Output::Local { dest: spec.into() });
    }
    let mut kv = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "invalid output {spec:?}: {part:?} is not key=value"
            ))
        })?;
        kv.insert(k.trim().to_string(), v.trim().to_string());
    }
    let bool_of = |key: &str, default: bool| -> Result<bool, UsageError> {
        match kv.get(key).map(String::as_str) {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(UsageError(format!(
                "invalid output {spec:?}: {key}={v} is not a boolean"
            ))),
        }
    };
    let dest = || {
        kv.get("dest")
            .map(PathBuf::from)
            .ok_or_else(|| UsageError(format!("invalid output {spec:?}: dest= is required")))
    };
    let kind = kv.get("type").map(String::as_str).unwrap_or("");
    let known: &[&str] = match kind {
        "docker" => &["type", "dest", "name"],
        "local" | "tar" => &["type", "dest"],
        "oci" => &["type", "dest", "name", "tar", COMP, LEVEL, FORCE],
        "image" | "registry" => &["type", "name", "push", COMP, LEVEL, FORCE],
        other => {
            return Err(UsageError(format!(
                "invalid output {spec:?}: unknown type {other:?} (expected local, tar, docker, oci, image or registry)"
            )))
        }
    };
    if let Some(k) = kv.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(UsageError(format!(
            "invalid output {spec:?}: unknown key {k:?} for type={kind}"
        )));
    }
    let compression = ExportCompression::from_attrs(
        kv.get(COMP).map(String::as_str),
        kv.get(LEVEL).map(String::as_str),
        kv.get(FORCE).map(String::as_str),
    )
    .map_err(|e| UsageError(format!("invalid output {spec:?}: {e}")))?;
    Ok(match kind {
        // buildx: type=docker without dest= loads the image into Docker.
        "docker" if !kv.contains_key("dest") => Output::Load,
        "docker" => Output::Docker { dest: dest()? },
        "local" => Output::Local { dest: dest()? },
        "tar" => Output::Tar { dest: dest()? },
        "oci" => Output::Oci {
            dest: dest()?,
            tar: bool_of("tar", true)?,
            compression,
        },
        _ => {
            let names = match kv.get("name") {
                Some(n) => n.split(',').map(str::to_string).collect(),
                None => tags.to_vec(),
            };
            if names.is_empty() {
                return Err(UsageError(format!(
                    "invalid output {spec:?}: name= or -t is required"
                )));
            }
            Output::Image {
                names,
                push: kind == "registry" || bool_of("push", false)?,
                compression,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        let t = vec!["app:1".to_string()];
        assert_eq!(
            parse_output("type=oci,dest=x.tar", &t).unwrap(),
            Output::Oci {
                dest: "x.tar".into(),
                tar: true,
                compression: Default::default(),
            }
        );
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false", &t).unwrap(),
            Output::Oci {
                dest: "d".into(),
                tar: false,
                compression: Default::default(),
            }
        );
        match parse_output("type=oci,dest=d,compression=zstd,compression-level=3", &t).unwrap() {
            Output::Oci { compression, .. } => {
                assert_eq!(compression.compression, kiln_exporter::Compression::Zstd);
                assert_eq!(compression.level, Some(3));
            }
            o => panic!("{o:?}"),
        }
        assert!(parse_output("type=oci,dest=d,compression=lz4", &t).is_err());
        assert_eq!(
            parse_output("type=image,push=true", &t).unwrap(),
            Output::Image {
                names: t.clone(),
                push: true,
                compression: Default::default(),
            }
        );
        assert_eq!(parse_output("type=docker", &t).unwrap(), Output::Load);
        assert!(parse_output("type=nope,dest=x", &t).is_err());
        assert!(parse_output("type=oci,dest=x,tar=maybe", &t).is_err());
        assert!(parse_output("type=oci,dest=x,bogus=1", &t).is_err());
        assert_eq!(
            parse_output("type=local,dest=out", &t).unwrap(),
            Output::Local { dest: "out".into() }
        );
        assert_eq!(
            parse_output("./out", &t).unwrap(),
            Output::Local {
                dest: "./out".into()
            }
        );
        assert_eq!(
            parse_output("type=tar,dest=fs.tar", &t).unwrap(),
            Output::Tar {
                dest: "fs.tar".into()
            }
        );
        assert!(parse_output("type=local", &t).is_err());
        assert!(parse_output("type=tar,dest=x,compression=gzip", &t).is_err());
        assert!(parse_output("-", &t).is_err());
    }

    #[test]
    fn add_host_and_platform_values() {
        let ok = |v: &str| parse_add_host(v).unwrap();
        assert_eq!(ok("db:10.0.0.2"), ("db".into(), "10.0.0.2".into()));
        assert_eq!(ok("db=10.0.0.2"), ("db".into(), "10.0.0.2".into()));
        assert_eq!(
            ok("v6:[2001:db8::33]"),
            ("v6".into(), "2001:db8::33".into())
        );
        assert_eq!(ok("v6=2001:db8::33"), ("v6".into(), "2001:db8::33".into()));
        for bad in ["db", "db:", ":1.2.3.4", "db:not-an-ip"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("Linux/AMD64").is_ok());
        assert!(check_platform("linux/arm64").is_err());
        assert!(check_platform("linux/amd64,linux/arm64").is_err());
    }

    #[test]
    fn build_contexts() {
        let ok = |s: &str| parse_build_context(s).unwrap();
        assert_eq!(
            ok("docs=./docs"),
            ("docs".into(), BuildContext::Local("./docs".into()))
        );
        assert_eq!(
            ok("base=/abs/dir=x"),
            ("base".into(), BuildContext::Local("/abs/dir=x".into()))
        );
        assert_eq!(
            ok("docker.io/library/alpine:latest=docker-image://127.0.0.1:5000/b:1"),
            (
                "alpine".into(),
                BuildContext::Image("127.0.0.1:5000/b:1".into())
            )
        );
        assert_eq!(
            ok("alpine:3.19=docker-image://busybox"),
            ("alpine:3.19".into(), BuildContext::Image("busybox".into()))
        );
        let err = |s: &str| parse_build_context(s).unwrap_err().0;
        assert!(
            err("docs").contains("expected NAME=VALUE"),
            "{}",
            err("docs")
        );
        assert!(err("=./docs").contains("empty name"));
        assert!(err("docs=").contains("empty value"));
        assert!(err("Docs=./d").contains("invalid context name"));
        assert!(err("a=docker-image://Bad:tag").contains("invalid image"));
        for v in [
            "oci-layout:///tmp/l",
            "https://example.com/x.tar",
            "git://example.com/r.git",
            "git@github.com:o/r.git",
            "target:base",
        ] {
            assert!(
                err(&format!("x={v}")).contains("not supported"),
                "{v}: {}",
                err(&format!("x={v}"))
            );
        }
    }
}
