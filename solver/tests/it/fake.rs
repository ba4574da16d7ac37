//! A fake worker that records its calls and makes deterministic layers whose blobs it writes
//! into the root's content store (so the solver's blob check sees them).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kiln_ir::{
    ExecIo, ExecOp, FileOp, FileSource, LayerRef, NodeId, ProgressEvent, ProgressSink,
    ResolvedImage, Worker, WorkerError,
};
use kiln_oci::Digest;

/// One recorded call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) kind: &'static str,
    pub(crate) node: NodeId,
    pub(crate) what: String,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// For file ops: the sources the worker was given (`layers:N` or `context:<paths>`).
    pub(crate) sources: Vec<String>,
}

pub(crate) struct FakeWorker {
    blobs: PathBuf,
    pub(crate) calls: Mutex<Vec<Call>>,
    /// Execs whose command contains `meet` wait here until `meet_count` of them arrived (or 10 s).
    meet: (Mutex<usize>, Condvar),
    meet_count: usize,
}

impl FakeWorker {
    pub(crate) fn new(root: &std::path::Path) -> Arc<Self> {
        Self::with_meet(root, 2)
    }

    pub(crate) fn with_meet(root: &std::path::Path, meet_count: usize) -> Arc<Self> {
        let blobs = root.join("content/blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("blobs dir");
        Arc::new(FakeWorker {
            blobs,
            calls: Mutex::new(Vec::new()),
            meet: (Mutex::new(0), Condvar::new()),
            meet_count,
        })
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    pub(crate) fn count(&self, kind: &str) -> usize {
        self.calls().iter().filter(|c| c.kind == kind).count()
    }

    fn layer(&self, seed: &str) -> LayerRef {
        let content = format!("layer for {seed}");
        let blob = Digest::of(content.as_bytes());
        std::fs::write(self.blobs.join(blob.hex()), &content).expect("write blob");
        LayerRef {
            diff_id: Digest::of(format!("diff {seed}").as_bytes()),
            blob,
            size: content.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    fn record(
        &self,
        kind: &'static str,
        node: NodeId,
        what: String,
        start: Instant,
        sources: Vec<String>,
    ) {
        self.calls.lock().expect("calls").push(Call {
            kind,
            node,
            what,
            start,
            end: Instant::now(),
            sources,
        });
    }

    fn rendezvous(&self) {
        let (lock, cvar) = &self.meet;
        let mut n = lock.lock().expect("meet");
        *n += 1;
        cvar.notify_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while *n < self.meet_count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = cvar.wait_timeout(n, left).expect("meet").0;
        }
    }
}

fn stack(rootfs: &[LayerRef]) -> String {
    rootfs
        .iter()
        .map(|l| l.diff_id.hex()[..8].to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Worker for FakeWorker {
    fn pull(
        &self,
        image: &ResolvedImage,
        node: NodeId,
        _progress: &dyn ProgressSink,
    ) -> Result<Vec<LayerRef>, WorkerError> {
        let start = Instant::now();
        let layers = image
            .config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| self.layer(d.as_str()))
            .collect();
        self.record("pull", node, image.reference.clone(), start, Vec::new());
        Ok(layers)
    }

    fn exec(
        &self,
        rootfs: &[LayerRef],
        op: &ExecOp,
        _sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError> {
        let start = Instant::now();
        let cmd = op.args.join(" ");
        io.progress.event(ProgressEvent::Log {
            node: io.node,
            stream: 1,
            data: cmd.clone().into_bytes(),
        });
        if cmd.contains("meet") {
            self.rendezvous();
        }
        if cmd.contains("wait-for-cancel") {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !io.cancel.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.record("exec", io.node, cmd, start, Vec::new());
            return Err(WorkerError::Cancelled);
        }
        let result = if cmd.contains("fail") {
            Err(WorkerError::ExitCode {
                command: cmd.clone(),
                code: 1,
                tail: Vec::new(),
            })
        } else if cmd.contains("nochange") {
            Ok(None)
        } else {
            Ok(Some(self.layer(&format!("{} | {cmd}", stack(rootfs)))))
        };
        self.record("exec", io.node, cmd, start, Vec::new());
        result
    }

    fn file(
        &self,
        rootfs: &[LayerRef],
        op: &FileOp,
        sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError> {
        let start = Instant::now();
        let what = serde_json::to_string(op).expect("op json");
        let described = sources
            .iter()
            .map(|s| match s {
                FileSource::Layers(l) => format!("layers:{}", l.len()),
                FileSource::Context(c) => format!(
                    "context:{}",
                    c.entries
                        .iter()
                        .map(|e| e.path.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            })
            .collect();
        let layer = self.layer(&format!("{} | {what}", stack(rootfs)));
        self.record("file", io.node, what, start, described);
        Ok(Some(layer))
    }
}

/// A progress sink that keeps every event.
#[derive(Default)]
pub(crate) struct Events(pub(crate) Mutex<Vec<ProgressEvent>>);

impl ProgressSink for Events {
    fn event(&self, event: ProgressEvent) {
        self.0.lock().expect("events").push(event);
    }
}
