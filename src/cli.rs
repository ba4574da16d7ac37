//! Command-line flags (clap) and their resolution into validated options.
//!
//! Two steps, as ripgrep does: clap fills [`Cli`], then [`BuildArgs::resolve`] turns it into
//! [`BuildOptions`] with defaults applied and every value checked. Clap types stop here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kiln_exporter::ExportCompression;

/// kiln: a daemonless Dockerfile image builder.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<BuildArgs>),
    /// Print the Dockerfile's syntax tree as JSON.
    Parse(InspectArgs),
    /// Show the build ARGs, secrets and ssh ids a build of the target takes.
    Outline(TargetArgs),
    /// List the stages that can be built.
    Targets(InspectArgs),
    /// Run the build checks (lint rules) on the Dockerfile.
    Lint(TargetArgs),
    /// Show the disk space kiln's store uses and what `kiln prune` would free.
    Du(DuArgs),
    /// Remove build cache nothing needs (with --all: every cache record too).
    Prune(PruneArgs),
}

/// Flags of `kiln du`.
#[derive(Debug, clap::Args)]
pub(crate) struct DuArgs {
    /// Directory of kiln's store (default /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

impl DuArgs {
    /// The store directory.
    pub(crate) fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(default_root)
    }
}

/// Flags of `kiln prune`.
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// Directory of kiln's store (default /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Also remove every cache record and the cache mounts no RUN is using.
    #[arg(long, short = 'a')]
    pub(crate) all: bool,
    /// Remove least recently used cache records until the store is at most this big
    /// (`10GB`, `1.5GiB`, `0`).
    #[arg(long, value_name = "SIZE")]
    pub(crate) keep_storage: Option<String>,
    /// Keep what was used within this long (`until=24h`, `until=90m`).
    #[arg(long = "filter", value_name = "until=DURATION")]
    pub(crate) filters: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'f')]
    pub(crate) force: bool,
}

/// Validated `kiln prune` options.
#[derive(Debug, Clone)]
pub(crate) struct PruneOptions {
    pub(crate) root: PathBuf,
    pub(crate) gc: kiln_solver::gc::PruneOptions,
    pub(crate) force: bool,
}

impl PruneArgs {
    /// Applies defaults and checks every value.
    pub(crate) fn resolve(self) -> Result<PruneOptions, UsageError> {
        let keep_storage = match &self.keep_storage {
            Some(s) => Some(
                kiln_solver::gc::parse_size(s)
                    .map_err(|e| UsageError(format!("--keep-storage: {e}")))?,
            ),
            None => None,
        };
        let mut until = None;
        for f in &self.filters {
            let Some(value) = f.strip_prefix("until=") else {
                return Err(UsageError(format!(
                    "--filter {f:?}: unknown filter (kiln prune supports until=DURATION)"
                )));
            };
            until = Some(
                kiln_solver::gc::parse_duration(value)
                    .map_err(|e| UsageError(format!("--filter: {e}")))?,
            );
        }
        Ok(PruneOptions {
            root: self.root.unwrap_or_else(default_root),
            gc: kiln_solver::gc::PruneOptions {
                all: self.all,
                keep_storage,
                until,
            },
            force: self.force,
        })
    }
}

/// Output format of the inspection commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Flags of `kiln parse` and `kiln targets`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Output format (`kiln parse` always prints JSON).
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// The build context directory.
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub(crate) context: PathBuf,
}

impl InspectArgs {
    /// The Dockerfile to read.
    pub(crate) fn dockerfile(&self) -> PathBuf {
        match &self.file {
            Some(f) => f.clone(),
            None => default_dockerfile(&self.context),
        }
    }
}

/// `CONTEXT/Dockerfile`, or `CONTEXT/dockerfile` when only the lower-case name exists (as
/// BuildKit falls back to it). Symlinks are followed when the file is read.
fn default_dockerfile(context: &std::path::Path) -> PathBuf {
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

/// Flags of `kiln outline` and `kiln lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) inspect: InspectArgs,
    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub(crate) build_args: Vec<String>,
    /// The stage to inspect (default: the last).
    #[arg(long, value_name = "STAGE")]
    pub(crate) target: Option<String>,
}

impl TargetArgs {
    /// The frontend's options for these flags.
    // The frontend's options may grow; the rest stay at their defaults.
    #[allow(clippy::needless_update)]
    pub(crate) fn lower_options(&self) -> Result<kiln_frontend::LowerOptions, UsageError> {
        Ok(kiln_frontend::LowerOptions {
            build_args: build_arg_map(&self.build_args)?,
            target: self.target.clone(),
            ..Default::default()
        })
    }
}

/// `--build-arg` values as a map (`K` alone takes the value from the environment).
fn build_arg_map(args: &[String]) -> Result<BTreeMap<String, String>, UsageError> {
    let mut build_args = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(UsageError(format!("invalid --build-arg {a:?}: empty name"))),
            None => {
                // `--build-arg K` takes the value from the environment, as docker does.
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(build_args)
}

/// Progress output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// BuildKit's plain log format.
    Plain,
    /// A compact live view.
    Tty,
}

/// RUN's default network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NetworkArg {
    /// The host's network (as BuildKit without CNI).
    Default,
    /// Only a loopback interface.
    None,
}

/// `kiln build` flags as written.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Name and optionally a tag (`name:tag`) of the image.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub(crate) tags: Vec<String>,
    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub(crate) build_args: Vec<String>,
    /// Set a label on the image (`K=V`); it overrides a Dockerfile LABEL of that name.
    #[arg(long = "label", value_name = "K=V")]
    pub(crate) labels: Vec<String>,
    /// The stage to build.
    #[arg(long, value_name = "STAGE")]
    pub(crate) target: Option<String>,
    /// An additional named context (`NAME=DIR` or `NAME=docker-image://REF`), for `FROM NAME`,
    /// `COPY --from=NAME` and `RUN --mount=from=NAME`.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// Output destination (`type=docker|oci|image,dest=…,name=…,push=true,tar=false`).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,
    /// Push the image named with -t (shorthand for `-o type=image,push=true`).
    #[arg(long)]
    pub(crate) push: bool,
    /// Load the image into Docker (`docker load` of a docker-save tar; the `docker` on PATH,
    /// honouring DOCKER_HOST).
    #[arg(long)]
    pub(crate) load: bool,
    /// Do not use the cache.
    #[arg(long = "no-cache")]
    pub(crate) no_cache: bool,
    /// Say in each step's log why it missed the cache (compared with its last build).
    #[arg(long)]
    pub(crate) explain: bool,
    /// Export the build cache: `type=local,dest=DIR` or `type=registry,ref=REF`, with
    /// `mode=min` (the image's steps, default) or `mode=max` (every stage's).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub(crate) cache_to: Vec<String>,
    /// Import build cache: `type=local,src=DIR` or `type=registry,ref=REF` (repeatable).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// Do not use the cache for these stages (and the steps that depend on them); repeatable,
    /// or comma-separated.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub(crate) no_cache_filter: Vec<String>,
    /// Allow an extra privileged entitlement: `security.insecure` (RUN --security=insecure)
    /// or `network.host` (RUN --network=host).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub(crate) allow: Vec<String>,
    /// Run the build checks and exit without building (exit code 1 if `# check=error=true`
    /// and a check fails).
    #[arg(long)]
    pub(crate) check: bool,
    /// Network for RUN instructions.
    #[arg(long, value_enum, default_value = "default")]
    pub(crate) network: NetworkArg,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: ProgressMode,
    /// Directory of kiln's store (default /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Reach this registry over plain HTTP (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub(crate) insecure_registries: Vec<String>,
    /// A secret for `RUN --mount=type=secret` (`id=x,src=FILE` or `id=x,env=VAR`).
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub(crate) secrets: Vec<String>,
    /// An SSH agent socket for `RUN --mount=type=ssh` (`default`, `default=SOCKET`; without a
    /// socket, `$SSH_AUTH_SOCK`).
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub(crate) ssh: Vec<String>,
    /// Add an `/etc/hosts` entry for RUN steps (`HOST:IP` or `HOST=IP`; repeatable).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub(crate) add_hosts: Vec<String>,
    /// Target platform; kiln builds `linux/amd64` only.
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// Accepted for buildx compatibility: kiln resolves every tag at the start of each build.
    #[arg(long)]
    pub(crate) pull: bool,
    /// Write the image ID (the config digest) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,
    /// Write the build result's metadata (digests, names) as JSON to FILE.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Print nothing but the image ID on success (errors still go to stderr).
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub(crate) context: PathBuf,
}

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

/// Validated `kiln build` options.
#[derive(Debug, Clone)]
pub(crate) struct BuildOptions {
    pub(crate) dockerfile: PathBuf,
    pub(crate) context: PathBuf,
    pub(crate) tags: Vec<String>,
    pub(crate) build_args: BTreeMap<String, String>,
    /// `--label K=V` (a bare `K` is an empty label, as buildx).
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) target: Option<String>,
    /// `--build-context`, by the frontend's key of the name.
    pub(crate) build_contexts: BTreeMap<String, BuildContext>,
    pub(crate) outputs: Vec<Output>,
    pub(crate) no_cache: bool,
    /// `--no-cache-filter` stage names.
    pub(crate) no_cache_filter: Vec<String>,
    /// `--explain`.
    pub(crate) explain: bool,
    /// `--cache-to`.
    pub(crate) cache_to: Vec<kiln_solver::remote_cache::CacheExport>,
    /// `--cache-from`.
    pub(crate) cache_from: Vec<kiln_solver::remote_cache::CacheImport>,
    pub(crate) check: bool,
    /// `--allow` entitlements.
    pub(crate) allow: kiln_executor::Entitlements,
    pub(crate) network_none: bool,
    pub(crate) plain: bool,
    pub(crate) root: PathBuf,
    pub(crate) insecure_registries: Vec<String>,
    /// `--secret` and `--ssh`.
    pub(crate) session: kiln_executor::Session,
    /// `--add-host`: (host, ip).
    pub(crate) extra_hosts: Vec<(String, String)>,
    pub(crate) iidfile: Option<PathBuf>,
    pub(crate) metadata_file: Option<PathBuf>,
    pub(crate) quiet: bool,
}

/// A flag value that does not make sense; reported as a usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

impl BuildArgs {
    /// Applies defaults and checks every value.
    pub(crate) fn resolve(self) -> Result<BuildOptions, UsageError> {
        let dockerfile = match &self.file {
            Some(f) => f.clone(),
            None => default_dockerfile(&self.context),
        };
        let build_args = build_arg_map(&self.build_args)?;
        let mut outputs = Vec::new();
        for spec in &self.outputs {
            outputs.push(parse_output(spec, &self.tags)?);
        }
        if self.push {
            if self.tags.is_empty() {
                return Err(UsageError("--push needs an image name: add -t NAME".into()));
            }
            if !outputs
                .iter()
                .any(|o| matches!(o, Output::Image { push: true, .. }))
            {
                outputs.push(Output::Image {
                    names: self.tags.clone(),
                    push: true,
                    compression: ExportCompression::default(),
                });
            }
        }
        if let Some(p) = &self.platform {
            check_platform(p)?;
        }
        let extra_hosts = self
            .add_hosts
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<Result<_, _>>()?;
        if self.load && !outputs.contains(&Output::Load) {
            outputs.push(Output::Load);
        }
        let mut allow = kiln_executor::Entitlements::default();
        for name in &self.allow {
            allow.allow(name).map_err(UsageError)?;
        }
        let root = match self.root {
            Some(r) => r,
            None => default_root(),
        };
        let plain = match self.progress {
            ProgressMode::Plain => true,
            ProgressMode::Tty => false,
            ProgressMode::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        Ok(BuildOptions {
            dockerfile,
            context: self.context,
            tags: self.tags,
            build_args,
            labels: self
                .labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (l.clone(), String::new()),
                })
                .collect(),
            target: self.target,
            build_contexts: self
                .build_contexts
                .iter()
                .map(|s| parse_build_context(s))
                .collect::<Result<_, _>>()?,
            outputs,
            no_cache: self.no_cache,
            no_cache_filter: self.no_cache_filter,
            explain: self.explain,
            cache_to: self
                .cache_to
                .iter()
                .map(|s| kiln_solver::remote_cache::parse_cache_to(s))
                .collect::<Result<_, _>>()
                .map_err(|e| UsageError(e.to_string()))?,
            cache_from: self
                .cache_from
                .iter()
                .map(|s| kiln_solver::remote_cache::parse_cache_from(s))
                .collect::<Result<_, _>>()
                .map_err(|e| UsageError(e.to_string()))?,
            check: self.check,
            allow,
            network_none: self.network == NetworkArg::None,
            plain,
            root,
            insecure_registries: self.insecure_registries,
            session: session(&self.secrets, &self.ssh)?,
            extra_hosts,
            iidfile: self.iidfile,
            metadata_file: self.metadata_file,
            quiet: self.quiet,
        })
    }
}

/// `--platform`: one platform, and it must be `linux/amd64` (no emulation here).
fn check_platform(value: &str) -> Result<(), UsageError> {
    let norm = value.trim().to_ascii_lowercase();
    match norm.trim_end_matches("/v1") {
        "linux/amd64" | "linux/x86_64" | "linux/x86-64" => Ok(()),
        _ => Err(UsageError(format!(
            "invalid --platform {value:?}: kiln builds linux/amd64 images only"
        ))),
    }
}

/// `--add-host HOST:IP` (or `HOST=IP`; an IPv6 address may be in brackets), as buildx.
fn parse_add_host(value: &str) -> Result<(String, String), UsageError> {
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

/// `/var/lib/kiln` as root, `$XDG_DATA_HOME/kiln` (or `~/.local/share/kiln`) otherwise.
fn default_root() -> PathBuf {
    // kiln's rootless child is uid 0 of its user namespace but keeps the user's default.
    if nix::unistd::geteuid().is_root() && !kiln_executor::is_rootless_child() {
        return PathBuf::from("/var/lib/kiln");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("kiln");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/kiln")
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
