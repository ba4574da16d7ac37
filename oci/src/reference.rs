//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.
//!
//! Grammar and rules follow distribution/reference (`reference.go`, `normalize.go`), which
//! Docker and BuildKit use:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component ( "/" path-component )*
//! domain     := host [ ":" port ]          host: dns labels separated by ".", or [ipv6]
//! path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first `/`-separated component is a registry when it contains `.` or `:`, is
//! `localhost`, or has upper-case letters; otherwise the registry is `docker.io` (and
//! `index.docker.io` means `docker.io`). One-component names on `docker.io` get `library/`.
//! When neither tag nor digest is given the tag is `latest`. Only `sha256` digests are
//! accepted (see [`Digest`]).

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// The default registry.
pub const DOCKER_HUB: &str = "docker.io";
const NAME_TOTAL_MAX: usize = 255;

/// A parsed, normalised image reference.
///
/// `busybox` → registry `docker.io`, repository `library/busybox`, tag `latest`;
/// `127.0.0.1:5000/a/b:1` → registry `127.0.0.1:5000`, repository `a/b`, tag `1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Tag, if any (`latest` is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference format {input:?}: {reason}")]
pub struct RefError {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl ImageRef {
    /// `registry/repository` (the fully qualified name, no tag or digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints: `docker.io/library/busybox:latest` → `busybox:latest`,
    /// `docker.io/a/b` → `a/b`; other registries stay fully qualified.
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// The tag or digest to ask a registry for (`/v2/<repo>/manifests/<this>`): the digest
    /// when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, RefError> {
        if !valid_tag(tag) {
            return Err(RefError {
                input: format!("{}:{tag}", self.name()),
                reason: "invalid tag".into(),
            });
        }
        Ok(ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
}

fn err(input: &str, reason: impl Into<String>) -> RefError {
    RefError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // One alphanumeric run.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// DNS-ish labels separated by `.`, or a bracketed IPv6 address, then an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.is_empty() && d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(err(s, "empty reference"));
        }
        if s.len() == 64
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(err(
                s,
                "cannot specify 64-byte hexadecimal strings (an image id is not a reference)",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|_| err(s, format!("invalid digest {d:?} (need sha256:<64 hex>)")))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag (a ':' before it is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(err(s, format!("invalid tag {t:?}")));
            }
        }
        if name.is_empty() {
            return Err(err(s, "empty repository name"));
        }
        if name.len() > NAME_TOTAL_MAX {
            return Err(err(
                s,
                format!("repository name must not be more than {NAME_TOTAL_MAX} characters"),
            ));
        }
        // Docker's splitDockerDomain.
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry == "index.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        if !valid_domain(&registry) {
            return Err(err(s, format!("invalid registry {registry:?}")));
        }
        if repository.to_lowercase() != repository {
            return Err(err(s, "repository name must be lowercase"));
        }
        if repository.is_empty() || !repository.split('/').all(valid_path_component) {
            return Err(err(s, format!("invalid repository name {repository:?}")));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_table() {
        let dg = || Some(D.parse::<Digest>().ok()).flatten();
        type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<Digest>);
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            ("busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("busybox:1.36", "docker.io", "library/busybox", Some("1.36"), None),
            ("library/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("docker.io/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("index.docker.io/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("docker.io/library/busybox:x", "docker.io", "library/busybox", Some("x"), None),
            ("user/app", "docker.io", "user/app", Some("latest"), None),
            ("user/app/sub", "docker.io", "user/app/sub", Some("latest"), None),
            ("localhost/app", "localhost", "app", Some("latest"), None),
            ("localhost:5000/app:v1", "localhost:5000", "app", Some("v1"), None),
            ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000", "a/b", Some("1"), None),
            ("ghcr.io/o/r", "ghcr.io", "o/r", Some("latest"), None),
            ("Registry/app", "Registry", "app", Some("latest"), None),
            ("[::1]:5000/app", "[::1]:5000", "app", Some("latest"), None),
            ("a.b-c_d__e---f", "docker.io", "library/a.b-c_d__e---f", Some("latest"), None),
            ("busybox:Latest_1.0-rc", "docker.io", "library/busybox", Some("Latest_1.0-rc"), None),
        ];
        for (input, reg, repo, tag, digest) in cases {
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, reg, "{input}");
            assert_eq!(r.repository, repo, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest, digest, "{input}");
        }
        let with_digest: Vec<(String, Option<&str>)> = vec![
            (format!("busybox@{D}"), None),
            (format!("busybox:1@{D}"), Some("1")),
            (format!("localhost:5000/x:t@{D}"), Some("t")),
        ];
        for (input, tag) in with_digest {
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest, dg(), "{input}");
        }
    }

    #[test]
    fn rejects_table() {
        let long = "a".repeat(256);
        let cases: Vec<(&str, &str)> = vec![
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("user/App", "lowercase"),
            ("busybox:", "invalid tag"),
            ("busybox:-x", "invalid tag"),
            ("busybox:a/b", "invalid registry"),
            ("busybox@sha256:abc", "invalid digest"),
            ("busybox@md5:abc", "invalid digest"),
            ("a//b", "invalid repository"),
            ("-a", "invalid repository"),
            ("a-", "invalid repository"),
            ("a..b", "invalid repository"),
            ("a___b", "invalid repository"),
            ("localhost:port/x", "invalid registry"),
            ("reg.io/", "invalid repository"),
            (":tag", "empty repository"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "64-byte",
            ),
            (&long, "more than 255"),
        ];
        for (input, why) in cases {
            match input.parse::<ImageRef>() {
                Ok(r) => panic!("{input:?} parsed as {r:?}"),
                Err(e) => {
                    assert!(e.reason.contains(why), "{input:?}: {e}");
                    assert_eq!(e.input, input);
                }
            }
        }
    }

    #[test]
    fn display_and_familiar() -> Result<(), RefError> {
        let r: ImageRef = "busybox".parse()?;
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.manifest_reference(), "latest");
        let r: ImageRef = "user/app:1".parse()?;
        assert_eq!(r.familiar(), "user/app:1");
        let r: ImageRef = format!("127.0.0.1:5000/a/b@{D}").parse()?;
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a/b@{D}"));
        assert_eq!(r.familiar(), format!("127.0.0.1:5000/a/b@{D}"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.name(), "127.0.0.1:5000/a/b");
        // Display output parses back to the same reference.
        let again: ImageRef = r.to_string().parse()?;
        assert_eq!(again, r);
        let t = r.with_tag("v2")?;
        assert_eq!(t.to_string(), "127.0.0.1:5000/a/b:v2");
        assert!(r.with_tag("bad tag").is_err());
        Ok(())
    }
}
