//! HTTP plumbing shared by pull and push: scheme choice, the `/v2/` ping, authorization
//! with token caching, error mapping and bounded retries.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{self, Challenge};
use super::{RegistryError, RegistryOptions};
use crate::reference::ImageRef;

/// How often an operation is tried before a transient failure is final.
const ATTEMPTS: u32 = 4;
/// First retry delay; doubles each time.
const BACKOFF: Duration = Duration::from_millis(250);

/// What we know about one registry.
#[derive(Debug, Clone)]
struct HostState {
    /// `https://host/` or `http://host/`.
    base: Url,
    /// The challenge `/v2/` answered with, if any.
    challenge: Option<Challenge>,
}

/// The shared state behind a `RegistryClient`.
pub(crate) struct Transport {
    http: reqwest::Client,
    opts: RegistryOptions,
    init_error: Option<String>,
    hosts: tokio::sync::Mutex<HashMap<String, HostState>>,
    /// Authorization header values by `registry scope…`.
    tokens: std::sync::Mutex<HashMap<String, String>>,
}

/// Docker Hub's API lives on registry-1.docker.io.
pub(crate) fn endpoint(registry: &str) -> &str {
    if auth::is_docker_hub(registry) {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// `127.0.0.0/8`, `::1` and `localhost`, with or without a port: Docker treats these as
/// insecure registries by default.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `e` and its sources, joined with `: `.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The distribution spec's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Turns a failed response into an error for `reference`.
pub(crate) async fn error_for(resp: Response, reference: &str) -> RegistryError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    let reference = reference.to_string();
    let not_found = parsed.errors.iter().any(|e| {
        matches!(
            e.code.as_str(),
            "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN"
        )
    });
    let message = if parsed.errors.is_empty() {
        String::from_utf8_lossy(&body)
            .trim()
            .chars()
            .take(300)
            .collect()
    } else {
        parsed
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if status == StatusCode::NOT_FOUND || not_found {
        return RegistryError::NotFound { reference };
    }
    let reason = format!("HTTP {status}: {message}");
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        RegistryError::Unauthorized { reference, reason }
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        RegistryError::Transient { reference, reason }
    } else {
        RegistryError::Other { reference, reason }
    }
}

/// Maps a transport error during a request (not the ping) for `reference`.
pub(crate) fn request_error(e: &reqwest::Error, reference: &str) -> RegistryError {
    let reason = chain(e);
    if e.is_timeout() || e.is_connect() || e.is_body() || e.is_request() {
        RegistryError::Transient {
            reference: reference.to_string(),
            reason,
        }
    } else {
        RegistryError::Other {
            reference: reference.to_string(),
            reason,
        }
    }
}

/// Runs `op` until it succeeds, fails for good, or `ATTEMPTS` transient failures pass.
pub(crate) async fn with_retries<T, F, Fut>(mut op: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut delay = BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e @ RegistryError::Transient { .. }) if attempt < ATTEMPTS => {
                tracing::warn!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Transport {
    /// Builds the HTTP client; a CA file that cannot be loaded is kept as `init_error`.
    pub(crate) fn new(opts: RegistryOptions) -> Self {
        let mut init_error = None;
        let mut pems = Vec::new();
        for path in &opts.ca_files {
            match std::fs::read(path) {
                Ok(p) => pems.push(p),
                Err(e) => init_error = Some(format!("CA file {}: {e}", path.display())),
            }
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30));
        if !pems.is_empty() {
            match super::tls::client_config(&pems) {
                Ok(c) => builder = builder.tls_backend_preconfigured(c),
                Err(e) => init_error = Some(format!("CA files {:?}: {e}", opts.ca_files)),
            }
        }
        let http = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                init_error = Some(format!("building the HTTP client: {}", chain(&e)));
                reqwest::Client::new()
            }
        };
        Transport {
            http,
            opts,
            init_error,
            hosts: tokio::sync::Mutex::new(HashMap::new()),
            tokens: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The error `new` kept, if any.
    pub(crate) fn init_error(&self) -> Option<RegistryError> {
        self.init_error.as_ref().map(|reason| RegistryError::Other {
            reference: "registry client".into(),
            reason: reason.clone(),
        })
    }

    async fn ping(&self, base: &Url) -> Result<Response, reqwest::Error> {
        let url = base.join("v2/").unwrap_or_else(|_| base.clone());
        self.http.get(url).send().await
    }

    /// The scheme and challenge of `registry`, pinging `/v2/` on first contact: HTTPS first,
    /// then plain HTTP for loopback and insecure hosts (as Docker does).
    async fn host_state(&self, registry: &str) -> Result<HostState, RegistryError> {
        if let Some(e) = self.init_error() {
            return Err(e);
        }
        let mut hosts = self.hosts.lock().await;
        if let Some(s) = hosts.get(registry) {
            return Ok(s.clone());
        }
        let host = endpoint(registry);
        let connect = |reason: String| RegistryError::Connect {
            registry: registry.to_string(),
            reason,
        };
        let url = |scheme: &str| {
            Url::parse(&format!("{scheme}://{host}/"))
                .map_err(|e| connect(format!("invalid registry host: {e}")))
        };
        let plain_ok = is_loopback(host)
            || self
                .opts
                .insecure
                .iter()
                .any(|h| h == registry || h == host);
        let https = url("https")?;
        let (base, resp) = match self.ping(&https).await {
            Ok(r) => (https, r),
            Err(e) if plain_ok => {
                let http = url("http")?;
                match self.ping(&http).await {
                    // 400 is what an HTTPS server says to plain HTTP: the TLS error is the story.
                    Ok(r) if r.status() == StatusCode::BAD_REQUEST => {
                        return Err(connect(chain(&e)))
                    }
                    Ok(r) => (http, r),
                    Err(e2) => return Err(connect(chain(&e2))),
                }
            }
            Err(e) => return Err(connect(chain(&e))),
        };
        let challenge = if resp.status() == StatusCode::UNAUTHORIZED {
            resp.headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge)
        } else {
            None
        };
        tracing::debug!("registry {registry}: {base} challenge {challenge:?}");
        let state = HostState { base, challenge };
        hosts.insert(registry.to_string(), state.clone());
        Ok(state)
    }

    /// The `Authorization` value for `scopes` on `registry`, fetching a token if needed.
    async fn authorization(
        &self,
        image: &ImageRef,
        state: &HostState,
        scopes: &[String],
        fresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        let registry = &image.registry;
        let creds = || auth::lookup_credentials(&self.opts, registry);
        match &state.challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(creds().map(|c| auth::basic_header(&c))),
            Some(Challenge::Bearer { realm, service }) => {
                let key = format!("{registry} {}", scopes.join(" "));
                if !fresh {
                    if let Some(t) = self.tokens.lock().ok().and_then(|m| m.get(&key).cloned()) {
                        return Ok(Some(t));
                    }
                }
                let reference = image.to_string();
                let mut url = Url::parse(realm).map_err(|e| RegistryError::Unauthorized {
                    reference: reference.clone(),
                    reason: format!("bad token realm {realm:?}: {e}"),
                })?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let mut req = self.http.get(url);
                if let Some(c) = creds() {
                    req = req.basic_auth(c.username, Some(c.password));
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| request_error(&e, &reference))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    return Err(RegistryError::Unauthorized {
                        reference,
                        reason: format!("token endpoint {realm}: HTTP {status}: {}", body.trim()),
                    });
                }
                let tr: TokenResponse =
                    resp.json().await.map_err(|e| RegistryError::Unauthorized {
                        reference: reference.clone(),
                        reason: format!("token endpoint {realm}: {}", chain(&e)),
                    })?;
                let token =
                    tr.token
                        .or(tr.access_token)
                        .ok_or_else(|| RegistryError::Unauthorized {
                            reference,
                            reason: format!("token endpoint {realm} returned no token"),
                        })?;
                let value = format!("Bearer {token}");
                if let Ok(mut m) = self.tokens.lock() {
                    m.insert(key, value.clone());
                }
                Ok(Some(value))
            }
        }
    }

    /// Sends the request `build` makes (given the registry's base URL), authorized for
    /// `scopes`; on a 401 it re-reads the challenge, re-authorizes and sends once more.
    /// The response may have any status; callers check it.
    pub(crate) async fn send<F>(
        &self,
        image: &ImageRef,
        scopes: &[String],
        build: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn(&reqwest::Client, &Url) -> Result<RequestBuilder, RegistryError>,
    {
        let mut state = self.host_state(&image.registry).await?;
        let mut authz = self.authorization(image, &state, scopes, false).await?;
        let reference = image.to_string();
        let mut retried = false;
        loop {
            let mut req = build(&self.http, &state.base)?;
            if let Some(a) = &authz {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| request_error(&e, &reference))?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            let Some(challenge) = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge)
            else {
                return Ok(resp);
            };
            state.challenge = Some(challenge);
            self.hosts
                .lock()
                .await
                .insert(image.registry.clone(), state.clone());
            let Some(new) = self.authorization(image, &state, scopes, true).await? else {
                return Ok(resp);
            };
            authz = Some(new);
            retried = true;
        }
    }

    /// `<base>v2/<repository>/<rest>`.
    pub(crate) fn url(base: &Url, image: &ImageRef, rest: &str) -> Result<Url, RegistryError> {
        base.join(&format!("v2/{}/{rest}", image.repository))
            .map_err(|e| RegistryError::Other {
                reference: image.to_string(),
                reason: format!("bad URL: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:80",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "docker.io",
            "localhost.example:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
