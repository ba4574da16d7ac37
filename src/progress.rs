//! Progress output in BuildKit's plain format.
//!
//! Every step is a numbered block: `#5 [build 2/4] RUN make`, its output lines as
//! `#5 0.532 <line>` (seconds since the step started), then `#5 DONE 1.2s`, `#5 CACHED` or
//! `#5 ERROR: …`. The numbers follow the order in which steps start, as BuildKit's do.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_ir::{NodeId, ProgressEvent, ProgressSink};

/// Lines of output kept per step for the error summary.
const TAIL_LINES: usize = 10;

/// A step's number in the log.
pub(crate) type VertexId = usize;

struct Vertex {
    name: String,
    started: Instant,
    partial: Vec<u8>,
    tail: VecDeque<String>,
    finished: bool,
    bar: Option<ProgressBar>,
}

#[derive(Default)]
struct State {
    vertices: Vec<Vertex>,
    by_node: BTreeMap<NodeId, VertexId>,
}

/// The progress printer; shared by the solver (through [`ProgressSink`]) and the build driver.
pub(crate) struct Progress {
    state: Mutex<State>,
    out: Mutex<Box<dyn Write + Send>>,
    /// Live view for terminals; `None` prints the plain log.
    tty: Option<MultiProgress>,
}

impl Progress {
    /// A printer writing to stderr, plain or live.
    pub(crate) fn stderr(plain: bool) -> Self {
        let tty = (!plain).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            state: Mutex::new(State::default()),
            out: Mutex::new(Box::new(std::io::stderr())),
            tty,
        }
    }

    /// A printer that shows nothing (`--quiet`); output tails are still kept for errors.
    pub(crate) fn quiet() -> Self {
        Progress {
            state: Mutex::new(State::default()),
            out: Mutex::new(Box::new(std::io::sink())),
            tty: None,
        }
    }

    /// A printer writing to any sink (tests).
    #[cfg(test)]
    fn to(out: Box<dyn Write + Send>) -> Self {
        Progress {
            state: Mutex::new(State::default()),
            out: Mutex::new(out),
            tty: None,
        }
    }

    fn print(&self, text: &str) {
        if self.tty.is_some() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Progress is best effort: a closed stderr must not fail the build.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a step and prints its header.
    pub(crate) fn start(&self, name: &str) -> VertexId {
        let bar = self.tty.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        let id = {
            let mut st = self.lock();
            let id = st.vertices.len() + 1;
            if let Some(b) = &bar {
                b.set_prefix(format!("#{id} {name}"));
            }
            st.vertices.push(Vertex {
                name: name.to_string(),
                started: Instant::now(),
                partial: Vec::new(),
                tail: VecDeque::new(),
                finished: false,
                bar,
            });
            id
        };
        self.print(&format!("#{id} {name}\n"));
        id
    }

    /// Prints a line of the step's own (kiln's) output.
    pub(crate) fn note(&self, v: VertexId, text: &str) {
        self.print(&format!("#{v} {text}\n"));
    }

    /// Feeds raw output bytes; complete lines are printed with their time offset.
    pub(crate) fn output(&self, v: VertexId, data: &[u8]) {
        let mut lines = Vec::new();
        {
            let mut st = self.lock();
            let Some(vx) = st.vertices.get_mut(v - 1) else {
                return;
            };
            vx.partial.extend_from_slice(data);
            while let Some(pos) = vx.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = vx.partial.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                let secs = vx.started.elapsed().as_secs_f64();
                vx.tail.push_back(text.clone());
                if vx.tail.len() > TAIL_LINES {
                    vx.tail.pop_front();
                }
                if let Some(b) = &vx.bar {
                    b.set_message(text.clone());
                }
                lines.push(format!("#{v} {secs:.3} {text}\n"));
            }
        }
        self.print(&lines.concat());
    }

    fn flush_partial(&self, v: VertexId) {
        let rest = {
            let mut st = self.lock();
            let Some(vx) = st.vertices.get_mut(v - 1) else {
                return;
            };
            std::mem::take(&mut vx.partial)
        };
        if !rest.is_empty() {
            let mut rest = rest;
            rest.push(b'\n');
            self.output(v, &rest);
        }
    }

    fn finish(&self, v: VertexId, line: String) {
        self.flush_partial(v);
        {
            let mut st = self.lock();
            match st.vertices.get_mut(v - 1) {
                Some(vx) if !vx.finished => {
                    vx.finished = true;
                    if let Some(b) = vx.bar.take() {
                        let status = line.split_once(' ').map_or("", |(_, s)| s);
                        b.set_style(
                            ProgressStyle::with_template("{prefix} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        b.finish_with_message(status.to_string());
                    }
                }
                _ => return,
            }
        }
        self.print(&format!("{line}\n\n"));
    }

    /// Marks a step done, with its duration.
    pub(crate) fn done(&self, v: VertexId) {
        let secs = self
            .lock()
            .vertices
            .get(v - 1)
            .map(|x| x.started.elapsed().as_secs_f64());
        self.finish(v, format!("#{v} DONE {:.1}s", secs.unwrap_or(0.0)));
    }

    /// Marks a step as answered from the cache.
    pub(crate) fn cached(&self, v: VertexId) {
        self.finish(v, format!("#{v} CACHED"));
    }

    /// Marks a step failed.
    pub(crate) fn error(&self, v: VertexId, msg: &str) {
        self.finish(v, format!("#{v} ERROR: {msg}"));
    }

    /// The step's name and its last output lines (for the error summary).
    pub(crate) fn tail_of_node(&self, node: NodeId) -> Option<(String, Vec<String>)> {
        let st = self.lock();
        let v = *st.by_node.get(&node)?;
        let vx = st.vertices.get(v - 1)?;
        Some((vx.name.clone(), vx.tail.iter().cloned().collect()))
    }

    fn vertex_of(&self, node: NodeId) -> Option<VertexId> {
        self.lock().by_node.get(&node).copied()
    }
}

impl ProgressSink for Progress {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Started { node, name } => {
                if self.vertex_of(node).is_none() {
                    let v = self.start(&name);
                    self.lock().by_node.insert(node, v);
                }
            }
            ProgressEvent::Log { node, data, .. } => {
                if let Some(v) = self.vertex_of(node) {
                    self.output(v, &data);
                }
            }
            ProgressEvent::Cached { node } => {
                if let Some(v) = self.vertex_of(node) {
                    self.cached(v);
                }
            }
            ProgressEvent::Done { node } => {
                if let Some(v) = self.vertex_of(node) {
                    self.done(v);
                }
            }
            ProgressEvent::Failed { node, error } => {
                if let Some(v) = self.vertex_of(node) {
                    self.error(v, &error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_format_matches_buildkit_shape() {
        let buf = Buf::default();
        let p = Progress::to(Box::new(buf.clone()));
        p.event(ProgressEvent::Started {
            node: 7,
            name: "[build 2/4] RUN make".into(),
        });
        p.event(ProgressEvent::Log {
            node: 7,
            stream: 1,
            data: b"hello\nwor".to_vec(),
        });
        p.event(ProgressEvent::Log {
            node: 7,
            stream: 1,
            data: b"ld\n".to_vec(),
        });
        p.event(ProgressEvent::Done { node: 7 });
        p.event(ProgressEvent::Started {
            node: 8,
            name: "[build 3/4] COPY . /".into(),
        });
        p.event(ProgressEvent::Cached { node: 8 });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [build 2/4] RUN make");
        assert!(
            lines[1].starts_with("#1 0.") && lines[1].ends_with(" hello"),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with(" world"));
        assert!(lines[3].starts_with("#1 DONE ") && lines[3].ends_with('s'));
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "#2 [build 3/4] COPY . /");
        assert_eq!(lines[6], "#2 CACHED");
        assert_eq!(p.tail_of_node(7).unwrap().1, vec!["hello", "world"]);
    }
}
