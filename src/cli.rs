//! Command-line flags (clap) and their resolution into validated options.
//!
//! Two steps, as ripgrep does: clap fills [`Cli`], then [`BuildArgs::resolve`] turns it into
//! [`BuildOptions`] with defaults applied and every value checked. Clap types stop here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kiln_exporter::ExportCompression;

mod values;

use values::{check_platform, parse_add_host};
pub(crate) use values::{parse_build_context, parse_output, session, BuildContext, Output};

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
    /// Trust the CA certificates in this PEM file for registries (repeatable), besides the
    /// system's.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub(crate) registry_cas: Vec<PathBuf>,
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
    /// `--registry-ca` files.
    pub(crate) registry_cas: Vec<PathBuf>,
    /// `--secret` and `--ssh`.
    pub(crate) session: kiln_executor::Session,
    /// `--add-host`: (host, ip).
    pub(crate) extra_hosts: Vec<(String, String)>,
    pub(crate) iidfile: Option<PathBuf>,
    pub(crate) metadata_file: Option<PathBuf>,
    pub(crate) quiet: bool,
    /// Where a context that is not a local directory came from (its git URL), to name
    /// `--explain`'s steps the same way across checkouts.
    pub(crate) origin: Option<String>,
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
            // A git URL context, or `-` (a tar or a Dockerfile on stdin): the build finds
            // `Dockerfile` in the checkout or the unpacked tar.
            None if self.context.as_os_str() == "-"
                || kiln_frontend::git_context(&self.context.to_string_lossy()).is_some() =>
            {
                PathBuf::from("Dockerfile")
            }
            None => default_dockerfile(&self.context),
        };
        if self.context.as_os_str() == "-" && dockerfile.as_os_str() == "-" {
            return Err(UsageError(
                "the context and the Dockerfile cannot both come from stdin (- and -f -)".into(),
            ));
        }
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
            registry_cas: self
                .registry_cas
                .iter()
                .map(|p| {
                    if p.is_file() {
                        Ok(p.clone())
                    } else {
                        Err(UsageError(format!(
                            "invalid --registry-ca {}: not a file",
                            p.display()
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
            session: session(&self.secrets, &self.ssh)?,
            extra_hosts,
            iidfile: self.iidfile,
            metadata_file: self.metadata_file,
            quiet: self.quiet,
            origin: None,
        })
    }
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
