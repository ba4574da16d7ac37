//! Shared fixtures: one registry with busybox bases per test binary, a context fixture that
//! copies a `testdata/e2e/<case>/` into a temp dir, and a `kiln build` runner.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use kiln_testsupport::{
    busybox_image, busybox_image_docker, busybox_image_index, Image, Registry, RegistryAuth,
};
use tempfile::TempDir;

/// A registry plus the references of the busybox bases pushed to it.
pub struct Bases {
    pub registry: Registry,
    pub oci: String,
    pub docker: String,
    pub index: String,
}

impl Bases {
    /// Start a registry and push the three busybox variants.
    pub fn start() -> Bases {
        let registry = Registry::start(RegistryAuth::None).expect("start registry");
        let oci = busybox_image(&registry).expect("push busybox (OCI)");
        let docker = busybox_image_docker(&registry).expect("push busybox (Docker schema 2)");
        let index = busybox_image_index(&registry).expect("push busybox (index)");
        Bases {
            registry,
            oci,
            docker,
            index,
        }
    }

    fn substitute(&self, text: &str) -> String {
        text.replace("@BASE_DOCKER@", &self.docker)
            .replace("@BASE_INDEX@", &self.index)
            .replace("@BASE@", &self.oci)
            .replace("@REGISTRY@", self.registry.addr())
    }
}

/// The registry shared by every test of this binary (tests run in parallel threads; the
/// registry stops when the process exits).
pub fn shared() -> &'static Bases {
    static BASES: OnceLock<Bases> = OnceLock::new();
    BASES.get_or_init(Bases::start)
}

/// Where the e2e cases live.
pub fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/e2e")
        .join(case)
}

/// A build context in a temp dir, with its own `--root` and an output dir.
pub struct Fixture<'a> {
    pub bases: &'a Bases,
    tmp: TempDir,
}

impl<'a> Fixture<'a> {
    /// An empty context using the shared registry.
    pub fn empty() -> Fixture<'static> {
        Fixture::with_bases(shared())
    }

    /// A copy of `testdata/e2e/<case>/` using the shared registry.
    pub fn case(case: &str) -> Fixture<'static> {
        let f = Fixture::empty();
        f.copy_case(case);
        f
    }

    /// An empty context using `bases`.
    pub fn with_bases(bases: &'a Bases) -> Fixture<'a> {
        let tmp = tempfile::Builder::new()
            .prefix("kiln-e2e-")
            .tempdir()
            .expect("tempdir");
        for d in ["ctx", "root", "out"] {
            std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
        }
        Fixture { bases, tmp }
    }

    /// Copy `testdata/e2e/<case>/` into the context (templating Dockerfiles).
    pub fn copy_case(&self, case: &str) {
        copy_tree(&case_dir(case), &self.ctx(), &|name, bytes| {
            if name.starts_with("Dockerfile") {
                self.bases
                    .substitute(&String::from_utf8_lossy(&bytes))
                    .into_bytes()
            } else {
                bytes
            }
        });
    }

    /// The context directory.
    pub fn ctx(&self) -> PathBuf {
        self.tmp.path().join("ctx")
    }

    /// The `--root` of this fixture's builds.
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A path in the output directory.
    pub fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join("out").join(name)
    }

    /// Write a context file (parents created); Dockerfiles are templated.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.ctx().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let content = if rel.starts_with("Dockerfile") {
            self.bases.substitute(content)
        } else {
            content.to_string()
        };
        std::fs::write(&p, content).expect("write");
        self
    }

    /// `kiln build --progress=plain --root ROOT` with `args`, then the context dir.
    pub fn build(&self, args: &[&str]) -> Outcome {
        self.build_with_root(&self.root(), args)
    }

    /// `kiln build -o type=oci,dest=out/<name>,tar=false` plus `extra`; the build must
    /// succeed. Returns the image read back and the build's output.
    pub fn build_oci(&self, name: &str, extra: &[&str]) -> (Image, Outcome) {
        let dir = self.out(name);
        let dest = format!("type=oci,dest={},tar=false", dir.display());
        let mut args = vec!["-o", dest.as_str()];
        args.extend_from_slice(extra);
        let out = self.build(&args);
        out.ok();
        (Image::from_oci_dir(&dir).expect("read OCI dir"), out)
    }

    /// Like [`Fixture::build`] with another `--root`.
    pub fn build_with_root(&self, root: &Path, args: &[&str]) -> Outcome {
        let mut full: Vec<String> =
            vec!["build".into(), "--progress=plain".into(), "--root".into()];
        full.push(root.display().to_string());
        full.extend(args.iter().map(|a| a.to_string()));
        full.push(self.ctx().display().to_string());
        kiln(&full)
    }
}

/// The topmost layer entry for `path` (the one a container sees), if any layer has it.
pub fn top_entry(image: &Image, path: &str) -> Option<kiln_testsupport::LayerEntry> {
    image
        .entries()
        .expect("layers")
        .into_iter()
        .rev()
        .find(|e| e.path == path)
}

/// Recursively copy `from` into `to`, passing file contents through `map(name, bytes)`.
fn copy_tree(from: &Path, to: &Path, map: &dyn Fn(&str, Vec<u8>) -> Vec<u8>) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.expect("dir entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&src, &dst, map);
        } else {
            let bytes = std::fs::read(&src).expect("read");
            std::fs::write(&dst, map(&e.file_name().to_string_lossy(), bytes)).expect("write");
        }
    }
}

/// How long one `kiln` invocation may take before the test fails.
const KILN_TIMEOUT: Duration = Duration::from_secs(600);

/// Run the kiln binary with `args`.
pub fn kiln(args: &[String]) -> Outcome {
    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .timeout(KILN_TIMEOUT)
        .output()
        .unwrap_or_else(|e| panic!("run kiln {args:?}: {e}"));
    Outcome {
        args: args.to_vec(),
        output,
    }
}

/// What a kiln run produced.
pub struct Outcome {
    pub args: Vec<String>,
    pub output: Output,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// stdout and stderr together (progress may go to either).
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "kiln {:?}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Assert exit code 0; returns self for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(0),
            "expected success\n{}",
            self.describe()
        );
        self.no_panic()
    }

    /// Assert exit `code` and no panic.
    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self.no_panic()
    }

    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.text().contains("panicked"),
            "kiln panicked\n{}",
            self.describe()
        );
        self
    }

    /// The first line of stderr that is neither progress (`#N …`) nor blank: the error line.
    pub fn error_line(&self) -> String {
        self.stderr()
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or_default()
            .to_string()
    }

    /// Assert the error line mentions every needle.
    #[track_caller]
    pub fn error_line_names(&self, needles: &[&str]) -> &Self {
        let line = self.error_line();
        for n in needles {
            assert!(
                line.contains(n),
                "error line {line:?} should name {n:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Assert the combined output contains `needle`.
    #[track_caller]
    pub fn shows(&self, needle: &str) -> &Self {
        assert!(
            self.text().contains(needle),
            "output should contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Plain-progress lines `#N …` as (N, rest).
    pub fn progress(&self) -> Vec<(u32, String)> {
        self.text()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix('#')?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let n = digits.parse().ok()?;
                Some((n, rest[digits.len()..].strip_prefix(' ')?.to_string()))
            })
            .collect()
    }
}

/// Lines of /proc/self/mountinfo that mention `path` (as mount point, source or option).
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Pids of processes whose argv is exactly `argv`.
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want = argv.join("\0");
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).trim_end_matches('\0') == want)
                .unwrap_or(false)
        })
        .collect()
}
