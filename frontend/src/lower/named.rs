//! Named build contexts (`--build-context NAME=VALUE`), as BuildKit's dockerfile frontend
//! (`dockerui.NamedContext`, `dockerfile2llb.toDispatchState`) uses them.
//!
//! The precedence kiln follows, BuildKit's:
//!
//! 1. A stage whose `AS` name is a named context is **replaced** by that context: its FROM and
//!    instructions are not run, and `FROM name`, `COPY --from=name`, `COPY --from=<its index>`
//!    and `RUN --mount=from=name` all read the context.
//! 2. `FROM scratch` is never a named context.
//! 3. `FROM name` reads an earlier stage of that name (itself maybe replaced, rule 1), else the
//!    named context, else the image `name`.
//! 4. `--from=name` reads a stage of that name, else the named context, else the image `name`.
//!
//! Names match after image-reference normalisation (BuildKit's `ParseNormalizedNamed`, then
//! the familiar form without `:latest`): a context `alpine` is what `FROM alpine`,
//! `FROM alpine:latest` and `FROM docker.io/library/alpine` name; `FROM alpine:3.19` is not it.
//!
//! A local named context is a solver context of its own ([`local_context_name`]), filtered by
//! the `.dockerignore` at its own root and walked only when a step reads it. `FROM` a local
//! context gives a stage whose filesystem is the directory's contents (one layer) and whose
//! config is `FROM scratch`'s.

use std::collections::BTreeMap;

use kiln_ir::{
    ContextSource, CopyAction, FileAction, FileOp, HistoryStep, NodeId, Op, SourceOp, Span,
};

use super::Lowering;

/// History comment of a layer the Dockerfile has no entry for (BuildKit's exporter).
const EXPORTER_COMMENT: &str = "buildkit.exporter.image.v0";

/// What a named context stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, which the solver knows as [`local_context_name`] of the key.
    Local,
    /// `docker-image://REF`: the image `REF`, as if written in its place.
    Image(String),
}

/// The key a context name is stored and looked up under: the name as an image reference in
/// its familiar form without `:latest` (`docker.io/library/alpine:latest` → `alpine`).
/// Fails for names that are not image references (upper case, empty, `a//b`).
pub fn named_context_key(name: &str) -> Result<String, String> {
    let r: kiln_oci::ImageRef = name.parse().map_err(|e| format!("{e}"))?;
    let familiar = r.familiar();
    Ok(familiar
        .strip_suffix(":latest")
        .unwrap_or(&familiar)
        .to_string())
}

/// The solver's name for the local named context `key`: the key, except `_context` for a
/// context called `context` (the main context's name), as buildx does.
pub fn local_context_name(key: &str) -> String {
    if key == "context" {
        "_context".into()
    } else {
        key.to_string()
    }
}

/// The named context `name` refers to, with its key.
pub(crate) fn lookup<'a>(
    named: &'a BTreeMap<String, NamedContext>,
    name: &str,
) -> Option<(String, &'a NamedContext)> {
    if named.is_empty() {
        return None;
    }
    let key = named_context_key(name).ok()?;
    named.get(&key).map(|c| (key, c))
}

/// The history entry of the layer a `FROM <local context>` starts with. BuildKit's exporter
/// makes one from the snapshot's description (`local source for NAME`) and appends it after
/// the Dockerfile's entries; kiln keeps it first, where its layer is.
pub(crate) fn base_history(key: &str, node: NodeId) -> HistoryStep {
    HistoryStep {
        created_by: format!("local source for {}", local_context_name(key)),
        node: Some(node),
        comment: Some(EXPORTER_COMMENT.into()),
    }
}

impl Lowering<'_> {
    /// The source node of the local named context `key` (BuildKit's `[context NAME] load from
    /// client`), made once.
    pub(crate) fn named_context(&mut self, key: &str, stage: usize) -> NodeId {
        if let Some(n) = self.named_nodes.get(key) {
            return *n;
        }
        let op = Op::Source(SourceOp::Context(ContextSource {
            name: local_context_name(key),
        }));
        let id = self.add_node(
            op,
            vec![],
            format!("[context {key}] load from client"),
            None,
            stage,
        );
        self.named_nodes.insert(key.to_string(), id);
        id
    }

    /// The filesystem of the local named context `key` as a stage base: its files copied onto
    /// scratch (one layer), made once.
    pub(crate) fn named_rootfs(&mut self, key: &str, stage: usize, span: Span) -> NodeId {
        if let Some(n) = self.named_rootfs.get(key) {
            return *n;
        }
        let source = self.named_context(key, stage);
        let scratch = self.add_node(
            Op::Source(SourceOp::Scratch),
            vec![],
            "[internal] scratch".into(),
            Some(span),
            stage,
        );
        let copy = FileAction::Copy(CopyAction {
            source_input: 1,
            sources: vec![".".into()],
            dest: "/".into(),
            chown: None,
            chmod: None,
            chmod_symbolic: None,
            exclude: Vec::new(),
            parents: false,
            link: false,
            unpack: false,
        });
        let id = self.add_node(
            Op::File(FileOp {
                actions: vec![copy],
            }),
            vec![scratch, source],
            format!("[context {key}] FROM {key}"),
            Some(span),
            stage,
        );
        self.named_rootfs.insert(key.to_string(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_familiar_names_without_latest() {
        for (name, key) in [
            ("alpine", "alpine"),
            ("alpine:latest", "alpine"),
            ("docker.io/library/alpine:latest", "alpine"),
            ("alpine:3.19", "alpine:3.19"),
            ("base", "base"),
            ("user/app", "user/app"),
            ("127.0.0.1:5000/x/y:latest", "127.0.0.1:5000/x/y"),
        ] {
            assert_eq!(named_context_key(name).unwrap(), key, "{name}");
        }
        for bad in ["", "Base", "a//b", "-x"] {
            assert!(named_context_key(bad).is_err(), "{bad}");
        }
        assert_eq!(local_context_name("context"), "_context");
        assert_eq!(local_context_name("docs"), "docs");
    }

    #[test]
    fn lookup_normalises() {
        let named = BTreeMap::from([("alpine".to_string(), NamedContext::Local)]);
        assert!(lookup(&named, "docker.io/library/alpine").is_some());
        assert!(lookup(&named, "alpine:3").is_none());
        assert!(lookup(&named, "Alpine").is_none());
    }
}
