//! A loopback `docker-registry` (distribution 2.8) per test, plain HTTP, basic auth or TLS.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::guard::{sh_quote, Guard};
use crate::{ensure_tools, run, Error, Result};

/// How clients must authenticate to a [`Registry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anonymous, plain HTTP.
    None,
    /// HTTP basic auth (bcrypt htpasswd file), plain HTTP.
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// Anonymous over HTTPS with a self-signed certificate for IP 127.0.0.1.
    Tls,
}

/// A running registry on `127.0.0.1:PORT`; stopped and its data removed on drop.
#[derive(Debug)]
pub struct Registry {
    addr: String,
    dir: PathBuf,
    auth: RegistryAuth,
    guard: Guard,
}

impl Registry {
    /// Start a registry with `auth` on a free port and wait until `/v2/` answers.
    pub fn start(auth: RegistryAuth) -> Result<Registry> {
        ensure_tools()?;
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .map_err(|e| Error::io("create tempdir", std::env::temp_dir(), e))?
            .keep();
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog: {{level: info}}\n\
             storage: {{filesystem: {{rootdirectory: {data}}}, delete: {{enabled: true}}}}\n\
             http:\n  addr: {addr}\n",
            data = dir.join("data").display(),
        );
        match &auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic { user, pass } => {
                let out = run(Command::new("htpasswd").args(["-Bbn", user, pass]))?;
                let htpasswd = dir.join("htpasswd");
                std::fs::write(&htpasswd, &out.stdout)
                    .map_err(|e| Error::io("write", &htpasswd, e))?;
                config.push_str(&format!(
                    "auth: {{htpasswd: {{realm: basic-realm, path: {}}}}}\n",
                    htpasswd.display()
                ));
            }
            RegistryAuth::Tls => {
                let (crt, key) = (dir.join("certs/ca.crt"), dir.join("key.pem"));
                let certs = dir.join("certs");
                std::fs::create_dir_all(&certs).map_err(|e| Error::io("mkdir", &certs, e))?;
                run(Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&crt)
                    .args(["-subj", "/CN=127.0.0.1"])
                    .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]))?;
                config.push_str(&format!(
                    "  tls: {{certificate: {}, key: {}}}\n",
                    crt.display(),
                    key.display()
                ));
            }
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| Error::io("write", &config_path, e))?;
        let argv = vec![
            "docker-registry".to_string(),
            "serve".to_string(),
            config_path.to_string_lossy().into_owned(),
        ];
        let log = dir.join("registry.log");
        let cleanup = format!("rm -rf {}", sh_quote(&dir.to_string_lossy()));
        let guard = Guard::spawn(&argv, &log, &dir, &cleanup)?;
        let registry = Registry {
            addr,
            dir,
            auth,
            guard,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Any HTTP status line means it listens (a TLS port answers plain HTTP with 400).
            if self.v2_status().is_ok() {
                return Ok(());
            }
            if self.guard.daemon_pid().is_some() && !self.guard.daemon_alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Timeout {
            what: format!("registry on {}", self.addr),
            secs: 30,
            log: self.access_log(),
        })
    }

    /// `HOST:PORT` of the registry, e.g. `127.0.0.1:41234`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The authentication mode it was started with.
    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// The pid of the `docker-registry` process.
    pub fn pid(&self) -> Option<i32> {
        self.guard.daemon_pid()
    }

    /// The state directory (config, data, log); removed when the registry stops.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For [`RegistryAuth::Tls`]: the self-signed certificate clients must trust. It lives in a
    /// directory usable as skopeo's `--cert-dir` ([`Registry::cert_dir`]).
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        (self.auth == RegistryAuth::Tls).then(|| self.dir.join("certs/ca.crt"))
    }

    /// For [`RegistryAuth::Tls`]: a directory holding only `ca.crt`, for `--cert-dir` options.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        (self.auth == RegistryAuth::Tls).then(|| self.dir.join("certs"))
    }

    /// skopeo options that reach this registry as a source (`"src"`), destination (`"dest"`)
    /// or, with `""`, for single-image commands such as `skopeo inspect`.
    pub fn skopeo_opts(&self, side: &str) -> Vec<String> {
        let side = if side.is_empty() {
            String::new()
        } else {
            format!("{side}-")
        };
        let mut opts = Vec::new();
        match &self.auth {
            RegistryAuth::Tls => {
                if let Some(d) = self.cert_dir() {
                    opts.push(format!("--{side}cert-dir={}", d.display()));
                }
            }
            RegistryAuth::None => opts.push(format!("--{side}tls-verify=false")),
            RegistryAuth::Basic { user, pass } => {
                opts.push(format!("--{side}tls-verify=false"));
                opts.push(format!("--{side}creds={user}:{pass}"));
            }
        }
        opts
    }

    /// The registry's whole log: the access log lines (`"GET /v2/... HTTP/1.1" 200 ...`) and
    /// its own messages.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Blob downloads served: the `GET /v2/<name>/blobs/sha256:<hex>` request paths that
    /// answered 200 or 307, in log order.
    pub fn blob_gets(&self) -> Vec<String> {
        parse_blob_gets(&self.access_log())
    }

    /// The HTTP status of a plain-HTTP `GET /v2/` without credentials (400 for a TLS registry).
    pub fn v2_status(&self) -> Result<u16> {
        http_status(&self.addr, "/v2/")
    }
}

/// The status code of `GET path` over plain HTTP/1.0 to `addr`.
fn http_status(addr: &str, path: &str) -> Result<u16> {
    let io = |e| Error::io("connect", addr, e);
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(io)?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).map_err(io)?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::invalid("HTTP response", format!("{line:?} from {addr}")))
}

fn parse_blob_gets(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once("\"GET ")?.1;
            let (path, after) = rest.split_once(' ')?;
            let status = after.split_once("\" ")?.1.split_whitespace().next()?;
            let is_blob = path.starts_with("/v2/") && path.contains("/blobs/sha256:");
            (is_blob && (status == "200" || status == "307")).then(|| path.to_string())
        })
        .collect()
}

/// A port that was free a moment ago (bind port 0, read it, release it).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind", "127.0.0.1:0", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("local_addr", "127.0.0.1:0", e))
}

#[cfg(test)]
mod tests {
    use super::parse_blob_gets;

    #[test]
    fn blob_gets_are_parsed_from_access_log() {
        let log = "127.0.0.1 - - [25/Nov/2026:12:41:22 +0000] \"GET /v2/x/blobs/sha256:aa HTTP/1.1\" 200 2 \"\" \"c\"\n\
                   127.0.0.1 - - [x] \"GET /v2/x/blobs/sha256:bb HTTP/1.1\" 404 157 \"\" \"c\"\n\
                   127.0.0.1 - - [x] \"HEAD /v2/x/blobs/sha256:cc HTTP/1.1\" 200 0 \"\" \"c\"\n\
                   127.0.0.1 - - [x] \"GET /v2/x/manifests/latest HTTP/1.1\" 200 9 \"\" \"c\"\n";
        assert_eq!(
            parse_blob_gets(log),
            vec!["/v2/x/blobs/sha256:aa".to_string()]
        );
    }
}
