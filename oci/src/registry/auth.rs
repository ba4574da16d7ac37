//! Authentication: `WWW-Authenticate` challenges and where credentials come from.
//!
//! Challenges follow RFC 7235 (`Basic realm="…"`, `Bearer realm="…",service="…",scope="…"`);
//! the bearer flow is the distribution token spec
//! (<https://distribution.github.io/distribution/spec/auth/token/>). Credentials are looked up
//! as Docker does: explicit options, then `credHelpers[host]`, `credsStore`, `auths[host].auth`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::{Credentials, RegistryOptions};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP Basic.
    Basic,
    /// Bearer token from `realm`, for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses the first challenge we understand from a `WWW-Authenticate` value.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

/// `k=v, k="quoted \" v"` → map (keys lowercased).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The subset of `~/.docker/config.json` kiln reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `host` as Docker keys it: docker.io's entries live under `https://index.docker.io/v1/`.
fn docker_server_url(host: &str) -> String {
    if is_docker_hub(host) {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

/// True for Docker Hub's names.
pub(crate) fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// `https://host/v1/` → `host`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn config_path(opts: &RegistryOptions) -> Option<PathBuf> {
    if let Some(p) = &opts.docker_config {
        return Some(p.clone());
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Credentials for `host` (as written in references), or `None` for anonymous access.
/// Malformed config files are logged and ignored, as Docker ignores unusable entries.
pub(crate) fn lookup_credentials(opts: &RegistryOptions, host: &str) -> Option<Credentials> {
    if let Some(c) = opts.credentials.get(host) {
        return Some(c.clone());
    }
    if is_docker_hub(host) {
        if let Some(c) = ["docker.io", "index.docker.io", "registry-1.docker.io"]
            .iter()
            .find_map(|h| opts.credentials.get(*h))
        {
            return Some(c.clone());
        }
    }
    if opts.no_docker_config {
        return None;
    }
    let path = config_path(opts)?;
    let text = std::fs::read(&path).ok()?;
    let cfg: DockerConfig = match serde_json::from_slice(&text) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            return None;
        }
    };
    let server = docker_server_url(host);
    let helper = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| key_host(k) == key_host(&server))
        .map(|(_, v)| v.clone())
        .or(cfg.creds_store.clone());
    if let Some(helper) = helper {
        if let Some(c) = run_helper(&helper, &server) {
            return Some(c);
        }
    }
    let entry = cfg.auths.iter().find_map(|(k, v)| {
        let kh = key_host(k);
        (kh == key_host(&server) || kh == host || (is_docker_hub(host) && is_docker_hub(kh)))
            .then_some(v)
    })?;
    if let Some(auth) = &entry.auth {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        return Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    Some(Credentials {
        username: entry.username.clone()?,
        password: entry.password.clone()?,
    })
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin.
fn run_helper(helper: &str, server: &str) -> Option<Credentials> {
    #[derive(Deserialize)]
    struct Out {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tracing::debug!("{program}: {e}"))
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        tracing::debug!("{program} get {server}: {}", out.status);
        return None;
    }
    let o: Out = serde_json::from_slice(&out.stdout).ok()?;
    Some(Credentials {
        username: o.username,
        password: o.secret,
    })
}

/// `Basic <base64(user:pass)>`.
pub(crate) fn basic_header(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // "u:p:w" — passwords may contain colons.
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"127.0.0.1:5000":{"auth":"dTpwOnc="}}}"#,
        )
        .unwrap();
        let opts = RegistryOptions {
            docker_config: Some(path),
            ..Default::default()
        };
        let c = lookup_credentials(&opts, "127.0.0.1:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
        let c = lookup_credentials(&opts, "docker.io").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("hub", "secret")
        );
        assert!(lookup_credentials(&opts, "other:1").is_none());
    }
}
