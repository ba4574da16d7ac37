//! Cache keys and definition digests.
//!
//! A key is blake3 over a version byte and a canonical JSON preimage. The preimage is built
//! from structs (fixed field order) and `BTreeMap`s only, so its text is stable across runs
//! and platforms, and it is stored next to the record so a miss can be explained.

use std::collections::BTreeMap;

use serde::Serialize;

use kiln_ir::{ExecMount, ExecOp, FileOp, NetworkMode, Op, ResolvedImage, SecurityMode};
use kiln_oci::Digest;

/// Bumped whenever the preimage encoding changes, so old records stop matching.
const KEY_VERSION: u8 = 1;

/// Environment variables that never enter a RUN's key (matched case-insensitively), as
/// BuildKit keeps proxy settings out of the cache.
const PROXY_VARS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// A computed key and the JSON it was hashed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyed {
    /// 64 hex characters.
    pub(crate) key: String,
    /// The preimage text.
    pub(crate) preimage: String,
}

fn hash_json<T: Serialize>(value: &T) -> Result<Keyed, serde_json::Error> {
    let preimage = serde_json::to_string(value)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[KEY_VERSION]);
    hasher.update(preimage.as_bytes());
    Ok(Keyed {
        key: hasher.finalize().to_hex().to_string(),
        preimage,
    })
}

/// The definition digest of an op over its inputs' definition digests: identical work in one
/// build has identical definitions.
pub(crate) fn definition(op: &Op, inputs: &[String]) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Def<'a> {
        op: &'a Op,
        inputs: &'a [String],
    }
    Ok(hash_json(&Def { op, inputs })?.key)
}

/// The OCI ChainID of a list of diff ids (image-spec `config.md#layer-chainid`).
pub(crate) fn chain_id(diff_ids: &[Digest]) -> String {
    let mut chain: Option<Digest> = None;
    for d in diff_ids {
        chain = Some(match chain {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        });
    }
    chain.map(|d| d.to_string()).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Preimage<'a> {
    Scratch,
    Context {
        name: &'a str,
    },
    Remote {
        digest: &'a str,
    },
    Image {
        chain_id: String,
        os: &'a str,
        architecture: &'a str,
        variant: Option<&'a str>,
    },
    Exec {
        parent: &'a str,
        args: &'a [String],
        env: Vec<&'a str>,
        cwd: &'a str,
        user: &'a str,
        network: NetworkMode,
        /// Mount specs only (ids, targets, options): secret values and cache contents never
        /// enter a key.
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        mounts: &'a [ExecMount],
        /// The mounts' `from=` inputs, indexed like the node's inputs minus the first.
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        sources: &'a [SourceKey],
        #[serde(skip_serializing_if = "is_sandbox")]
        security: SecurityMode,
        #[serde(skip_serializing_if = "Option::is_none")]
        hostname: Option<&'a str>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        extra_hosts: &'a [(String, String)],
    },
    File {
        parent: &'a str,
        op: &'a FileOp,
        sources: &'a [SourceKey],
    },
}

/// What a COPY source input contributes to a file op's key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceKey {
    /// Another node: its cache key.
    Node(String),
    /// A local context: the content digest of each selected path prefix.
    Context {
        /// Context name.
        name: String,
        /// Literal source prefix → digest of what is under it.
        paths: BTreeMap<String, String>,
    },
}

pub(crate) fn scratch() -> Result<Keyed, serde_json::Error> {
    hash_json(&Preimage::Scratch)
}

pub(crate) fn context(name: &str) -> Result<Keyed, serde_json::Error> {
    hash_json(&Preimage::Context { name })
}

/// A fetched remote source, keyed by what was fetched.
pub(crate) fn remote(digest: &str) -> Result<Keyed, serde_json::Error> {
    hash_json(&Preimage::Remote { digest })
}

pub(crate) fn image(img: &ResolvedImage) -> Result<Keyed, serde_json::Error> {
    hash_json(&Preimage::Image {
        chain_id: chain_id(&img.config.rootfs.diff_ids),
        os: &img.config.os,
        architecture: &img.config.architecture,
        variant: img.config.variant.as_deref(),
    })
}

fn is_sandbox(s: &SecurityMode) -> bool {
    *s == SecurityMode::Sandbox
}

pub(crate) fn exec(
    parent: &str,
    op: &ExecOp,
    sources: &[SourceKey],
) -> Result<Keyed, serde_json::Error> {
    let env = op
        .env
        .iter()
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            !PROXY_VARS.iter().any(|p| p.eq_ignore_ascii_case(name))
        })
        .map(String::as_str)
        .collect();
    hash_json(&Preimage::Exec {
        parent,
        args: &op.args,
        env,
        cwd: &op.cwd,
        user: &op.user,
        network: op.network,
        mounts: &op.mounts,
        sources,
        security: op.security,
        hostname: op.hostname.as_deref(),
        extra_hosts: &op.extra_hosts,
    })
}

pub(crate) fn file(
    parent: &str,
    op: &FileOp,
    sources: &[SourceKey],
) -> Result<Keyed, serde_json::Error> {
    hash_json(&Preimage::File {
        parent,
        op,
        sources,
    })
}

/// The literal prefix of a COPY source: the components before the first one holding a
/// wildcard (`*`, `?`, `[`, `\`), cleaned and relative to the root (`""` is the root).
pub(crate) fn literal_prefix(source: &str) -> String {
    let cleaned = crate::context::relative_clean(source);
    cleaned
        .split('/')
        .take_while(|c| !has_wildcard(c))
        .collect::<Vec<_>>()
        .join("/")
}

/// True when a source path holds wildcard syntax.
pub(crate) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_image_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(&[]), "");
        assert_eq!(chain_id(std::slice::from_ref(&a)), a.to_string());
        let ab = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(&[a, b]), ab.to_string());
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("."), "");
        assert_eq!(literal_prefix("./src/"), "src");
        assert_eq!(literal_prefix("/etc/app.conf"), "etc/app.conf");
        assert_eq!(literal_prefix("src/*.rs"), "src");
        assert_eq!(literal_prefix("*.txt"), "");
        assert_eq!(literal_prefix("a/b?/c"), "a");
        assert_eq!(literal_prefix("../x"), "x");
    }

    #[test]
    fn mount_specs_and_sources_enter_exec_keys() {
        let base = ExecOp {
            args: vec!["true".into()],
            env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Host,
            mounts: Vec::new(),
            security: Default::default(),
            hostname: None,
            extra_hosts: Vec::new(),
        };
        let mut with_secret = base.clone();
        with_secret.mounts.push(ExecMount::Secret {
            id: "tok".into(),
            target: Some("/run/secrets/tok".into()),
            env: None,
            required: false,
            uid: 0,
            gid: 0,
            mode: 0o400,
        });
        let k = |op: &ExecOp, s: &[SourceKey]| exec("p", op, s).ok().map(|k| k.key);
        assert_ne!(k(&base, &[]), k(&with_secret, &[]));
        let preimage = exec("p", &with_secret, &[])
            .map(|k| k.preimage)
            .unwrap_or_default();
        assert!(preimage.contains("\"id\":\"tok\""), "{preimage}");
        let ctx = |d: &str| SourceKey::Context {
            name: "context".into(),
            paths: BTreeMap::from([(String::new(), d.to_string())]),
        };
        assert_ne!(k(&base, &[ctx("a")]), k(&base, &[ctx("b")]));
        let mut insecure = base.clone();
        insecure.security = SecurityMode::Insecure;
        assert_ne!(k(&base, &[]), k(&insecure, &[]));
    }

    #[test]
    fn proxy_variables_stay_out_of_exec_keys() {
        let base = ExecOp {
            args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Host,
            mounts: Vec::new(),
            security: Default::default(),
            hostname: None,
            extra_hosts: Vec::new(),
        };
        let mut proxied = base.clone();
        proxied.env.extend([
            "HTTP_PROXY=http://a".to_string(),
            "https_proxy=http://b".to_string(),
            "No_Proxy=localhost".to_string(),
            "ALL_PROXY=socks://c".to_string(),
            "ftp_proxy=ftp://d".to_string(),
        ]);
        assert_eq!(exec("p", &base, &[]).ok(), exec("p", &proxied, &[]).ok());
        let mut other = base.clone();
        other.env.push("FOO=1".into());
        assert_ne!(exec("p", &base, &[]).ok(), exec("p", &other, &[]).ok());
        assert_ne!(exec("p", &base, &[]).ok(), exec("q", &base, &[]).ok());
    }
}
