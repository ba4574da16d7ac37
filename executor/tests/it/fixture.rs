//! A kiln root with a busybox base layer, and helpers to run ops and read layers.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln_executor::{Entitlements, Executor, ExecutorOptions, InitCommand};
use kiln_ir::{
    ExecIo, ExecOp, FileOp, FileSource, LayerRef, NetworkMode, ProgressEvent, ProgressSink, Worker,
    WorkerError,
};
use kiln_oci::layer::Compression;
use kiln_oci::registry::{RegistryClient, RegistryOptions};

pub(crate) const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
pub(crate) const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\n";
const APPLETS: [&str; 18] = [
    "sh", "echo", "cat", "ls", "id", "sleep", "head", "ps", "hostname", "mount", "date", "grep",
    "rm", "ln", "mkdir", "pwd", "touch", "true",
];

/// Collects log output.
#[derive(Default)]
pub(crate) struct Logs {
    pub(crate) out: Mutex<Vec<(u8, Vec<u8>)>>,
}

impl ProgressSink for Logs {
    fn event(&self, event: ProgressEvent) {
        if let ProgressEvent::Log { stream, data, .. } = event {
            self.out.lock().unwrap().push((stream, data));
        }
    }
}

impl Logs {
    pub(crate) fn stream(&self, s: u8) -> String {
        let out = self.out.lock().unwrap();
        let bytes: Vec<u8> = out
            .iter()
            .filter(|(k, _)| *k == s)
            .flat_map(|(_, d)| d.clone())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// One entry of a layer tar.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) kind: tar::EntryType,
    pub(crate) data: Vec<u8>,
    pub(crate) link: Option<String>,
}

pub(crate) struct Fixture {
    pub(crate) root: tempfile::TempDir,
    pub(crate) exec: Executor,
    pub(crate) base: Vec<LayerRef>,
    _rt: tokio::runtime::Runtime,
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// An uncompressed layer tar: dirs end with `/`, `Some(target)` with `@` prefix is a symlink.
pub(crate) fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        match content {
            None => {
                let h = header(path, tar::EntryType::Directory, 0o755, 0);
                b.append(&h, std::io::empty()).unwrap();
            }
            Some(c) if c.starts_with(b"@") => {
                let mut h = header(path, tar::EntryType::Symlink, 0o777, 0);
                h.set_link_name(std::str::from_utf8(&c[1..]).unwrap())
                    .unwrap();
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            Some(c) => {
                let mode = if path.starts_with("bin/") {
                    0o755
                } else {
                    0o644
                };
                let h = header(path, tar::EntryType::Regular, mode, c.len() as u64);
                b.append(&h, *c).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self::with_allow(Default::default())
    }

    /// A fixture whose executor has the given entitlements.
    pub(crate) fn with_allow(allow: Entitlements) -> Self {
        let root = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let exec = Executor::new(ExecutorOptions {
            root: root.path().join("kiln"),
            init: InitCommand::program(env!("CARGO_BIN_EXE_kiln-sandbox-init").into()),
            registry: RegistryClient::new(RegistryOptions::default()),
            runtime: rt.handle().clone(),
            compression: Compression::Gzip,
            allow,
        })
        .unwrap();
        let busybox = std::fs::read("/bin/busybox")
            .expect("busybox-static must be installed at /bin/busybox");
        let mut entries: Vec<(String, Option<Vec<u8>>)> = vec![
            ("bin/".into(), None),
            ("bin/busybox".into(), Some(busybox)),
            ("etc/".into(), None),
            ("etc/passwd".into(), Some(PASSWD.as_bytes().to_vec())),
            ("etc/group".into(), Some(GROUP.as_bytes().to_vec())),
            ("tmp/".into(), None),
        ];
        for a in APPLETS {
            entries.push((format!("bin/{a}"), Some(b"@busybox".to_vec())));
        }
        let refs: Vec<(&str, Option<&[u8]>)> = entries
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_deref()))
            .collect();
        let mut fx = Fixture {
            root,
            exec,
            base: Vec::new(),
            _rt: rt,
        };
        fx.base = vec![fx.add_layer(&tar_of(&refs))];
        fx
    }

    /// Stores an uncompressed tar as a layer.
    pub(crate) fn add_layer(&self, tar: &[u8]) -> LayerRef {
        let digest = self.exec.store().write_bytes(tar).unwrap();
        LayerRef {
            diff_id: digest.clone(),
            blob: digest,
            size: tar.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }

    pub(crate) fn op(args: &[&str]) -> ExecOp {
        ExecOp {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Host,
            mounts: Vec::new(),
            security: Default::default(),
            hostname: None,
            extra_hosts: Vec::new(),
        }
    }

    /// Runs an op on `layers`; returns the result and stdout+stderr logs.
    pub(crate) fn run_op(
        &self,
        layers: &[LayerRef],
        op: &ExecOp,
    ) -> (Result<Option<LayerRef>, WorkerError>, Arc<Logs>) {
        let logs = Arc::new(Logs::default());
        let io = ExecIo {
            node: 0,
            progress: &*logs,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let r = self.exec.exec(layers, op, &[], &io);
        (r, logs)
    }

    /// `sh -c script` on the base; panics on failure; returns stdout.
    pub(crate) fn sh(&self, script: &str) -> String {
        self.sh_on(&self.base, script)
    }

    pub(crate) fn sh_on(&self, layers: &[LayerRef], script: &str) -> String {
        let (r, logs) = self.run_op(layers, &Self::op(&["sh", "-c", script]));
        if let Err(e) = r {
            panic!("{script}: {e:?}\nstderr: {}", logs.stream(2));
        }
        logs.stream(1)
    }

    pub(crate) fn file(
        &self,
        layers: &[LayerRef],
        op: FileOp,
        sources: &[FileSource],
    ) -> Result<Option<LayerRef>, WorkerError> {
        let logs = Logs::default();
        let io = ExecIo {
            node: 0,
            progress: &logs,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        self.exec.file(layers, &op, sources, &io)
    }

    /// Entries of a layer blob by path (no leading `./` or `/`, no trailing `/`).
    pub(crate) fn entries(&self, layer: &LayerRef) -> BTreeMap<String, Entry> {
        let blob = self.exec.store().read(&layer.blob).unwrap();
        let raw: Box<dyn Read> = if layer.media_type.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(&blob[..]))
        } else {
            Box::new(&blob[..])
        };
        let mut archive = tar::Archive::new(raw);
        let mut out = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(
                path,
                Entry {
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    kind: h.entry_type(),
                    data,
                    link: e
                        .link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                },
            );
        }
        out
    }

    pub(crate) fn with(&self, extra: &LayerRef) -> Vec<LayerRef> {
        let mut v = self.base.clone();
        v.push(extra.clone());
        v
    }
}

/// Mount points of the current process.
pub(crate) fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Pids whose cmdline is exactly `argv`.
pub(crate) fn pids_with_cmdline(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
                .is_ok_and(|c| c == want)
        })
        .collect()
}
