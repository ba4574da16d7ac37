//! `kiln build --explain`: why a step missed the cache, from the preimages of its key now and
//! the last time the same step was built.
//!
//! Keys are hashes of canonical JSON preimages ([`crate::key`]), and every record keeps its
//! preimage, so comparing the two documents field by field names what changed: the command,
//! environment variables (names only: values may be build arguments a user would rather not
//! see in logs), the files a COPY or a RUN mount reads from a context, or the step before it.

use std::collections::HashMap;

use kiln_ir::{Graph, NodeId, Op, ProgressEvent};
use serde_json::Value;

use crate::error::SolveErrorKind;
use crate::node::NodeEnv;

/// The longest command shown in a reason.
const MAX_SHOWN: usize = 80;

/// Names the steps of `graph` for `--explain`: the build's identity (its Dockerfile and
/// target), the stage and the step's position in it, so the same step of the next build of
/// the same Dockerfile is found again even when its command changed.
pub(crate) fn step_names(graph: &Graph, build: &str) -> HashMap<NodeId, String> {
    let mut per_stage: HashMap<usize, usize> = HashMap::new();
    let mut out = HashMap::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        if !matches!(node.op, Op::Exec(_) | Op::File(_)) {
            continue;
        }
        let n = per_stage.entry(node.stage).or_default();
        *n += 1;
        let stage = graph
            .stages
            .get(node.stage)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| node.stage.to_string());
        out.insert(id, format!("{build}\n{stage}\n{n}"));
    }
    out
}

/// After node `id` was solved with `key`: on a miss, says why in the step's log (compared
/// with the key the same step had last time); then remembers `key` for the step.
pub(crate) fn after_step(
    env: &NodeEnv,
    id: NodeId,
    key: &str,
    cached: bool,
) -> Result<(), SolveErrorKind> {
    let Some(step) = env.step_names.get(&id) else {
        return Ok(());
    };
    if !cached {
        let lines = match env.index.step_key(step)? {
            None => vec!["first build of this step".to_string()],
            Some(prev) if prev == key => vec!["its cache record was missing or ignored".into()],
            Some(prev) => match (env.index.get(&prev)?, env.index.get(key)?) {
                (Some(old), Some(new)) => {
                    let r = reasons(&old.preimage, &new.preimage);
                    if r.is_empty() {
                        vec!["its cache key changed".into()]
                    } else {
                        r
                    }
                }
                _ => vec!["the earlier build's record is gone (pruned)".into()],
            },
        };
        let text: String = lines
            .iter()
            .map(|l| format!("explain: missed: {l}\n"))
            .collect();
        env.progress.event(ProgressEvent::Log {
            node: id,
            stream: 2,
            data: text.into_bytes(),
        });
    }
    env.index.set_step_key(step, key)?;
    Ok(())
}

/// Phrases saying how the preimage `new` differs from `old` (both JSON); empty when they are
/// the same or cannot be read.
pub(crate) fn reasons(old: &str, new: &str) -> Vec<String> {
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) else {
        return Vec::new();
    };
    if old.get("kind") != new.get("kind") {
        return vec!["the instruction changed".into()];
    }
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (old.get(k), new.get(k));
        if a == b {
            continue;
        }
        match k.as_str() {
            "parent" => out.push("the step before it changed".into()),
            "args" => out.push(format!(
                "the command changed: {} -> {}",
                shown(&command(a)),
                shown(&command(b))
            )),
            "env" => out.push(env_change(a, b)),
            "sources" => out.extend(source_changes(a, b)),
            "op" => out.push("the instruction's arguments changed".into()),
            "cwd" => out.push("the working directory changed".into()),
            "user" => out.push("the user changed".into()),
            "network" => out.push("the network mode changed".into()),
            "security" => out.push("the security mode changed".into()),
            "mounts" => out.push("its --mount options changed".into()),
            "hostname" => out.push("the sandbox hostname changed".into()),
            "extra_hosts" => out.push("the --add-host entries changed".into()),
            "digest" => out.push("the fetched content changed".into()),
            "chain_id" => out.push("the base image changed".into()),
            other => out.push(format!("{other} changed")),
        }
    }
    out
}

fn command(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" "),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn shown(s: &str) -> String {
    if s.chars().count() > MAX_SHOWN {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("`{cut}…`")
    } else {
        format!("`{s}`")
    }
}

/// `KEY=VALUE` strings of an env array, by name.
fn env_map(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    if let Some(Value::Array(a)) = v {
        for e in a.iter().filter_map(Value::as_str) {
            let (k, val) = e.split_once('=').unwrap_or((e, ""));
            m.insert(k.to_string(), val.to_string());
        }
    }
    m
}

fn env_change(a: Option<&Value>, b: Option<&Value>) -> String {
    let (old, new) = (env_map(a), env_map(b));
    let mut parts = Vec::new();
    for (k, v) in &new {
        match old.get(k) {
            None => parts.push(format!("{k} set")),
            Some(o) if o != v => parts.push(format!("{k} changed")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        parts.push(format!("{k} unset"));
    }
    if parts.is_empty() {
        "the environment's order changed".into()
    } else {
        format!("the environment changed: {}", parts.join(", "))
    }
}

/// Differences of the `sources` arrays: context selections and other steps it reads.
fn source_changes(a: Option<&Value>, b: Option<&Value>) -> Vec<String> {
    let empty = Vec::new();
    let (old, new) = (
        a.and_then(Value::as_array).unwrap_or(&empty),
        b.and_then(Value::as_array).unwrap_or(&empty),
    );
    let mut out = Vec::new();
    for i in 0..old.len().max(new.len()) {
        let (o, n) = (old.get(i), new.get(i));
        if o == n {
            continue;
        }
        match (
            o.and_then(|v| v.get("context")),
            n.and_then(|v| v.get("context")),
        ) {
            (Some(oc), Some(nc)) if oc.get("name") == nc.get("name") => {
                let name = nc.get("name").and_then(Value::as_str).unwrap_or("context");
                out.extend(path_changes(name, oc.get("paths"), nc.get("paths")));
            }
            _ => out.push(match n.and_then(|v| v.get("node")) {
                Some(_) => "a stage or image it copies from changed".into(),
                None => "what it reads changed".into(),
            }),
        }
    }
    out
}

fn path_changes(context: &str, a: Option<&Value>, b: Option<&Value>) -> Vec<String> {
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let (old, new) = (obj(a), obj(b));
    let label = |p: &str| {
        // A wildcard or --exclude selection's name is "prefix\0source[\0excludes]": show the
        // source as written.
        let p = p.split('\u{0}').nth(1).unwrap_or(p);
        if p.is_empty() {
            format!("files in the {context} root")
        } else {
            format!("`{p}` in the {context}")
        }
    };
    let mut out = Vec::new();
    for (p, d) in &new {
        match old.get(p) {
            Some(o) if o == d => {}
            Some(_) => out.push(format!("{} changed", label(p))),
            None => out.push(format!("it now reads {}", label(p))),
        }
    }
    for p in old.keys().filter(|p| !new.contains_key(*p)) {
        out.push(format!("it no longer reads {}", label(p)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn exec(parent: &str, args: &[&str], env: &[&str]) -> String {
        serde_json::json!({
            "kind": "exec", "parent": parent, "args": args, "env": env,
            "cwd": "/", "user": "", "network": "default"
        })
        .to_string()
    }

    #[test]
    fn names_what_changed_in_a_run() {
        let a = exec("p1", &["/bin/sh", "-c", "make"], &["A=1", "B=2"]);
        assert!(reasons(&a, &a).is_empty());
        let b = exec("p1", &["/bin/sh", "-c", "make all"], &["A=1", "B=3", "C=4"]);
        assert_eq!(
            reasons(&a, &b),
            [
                "the command changed: `/bin/sh -c make` -> `/bin/sh -c make all`",
                "the environment changed: B changed, C set",
            ]
        );
        let c = exec("p2", &["/bin/sh", "-c", "make"], &["A=1"]);
        assert_eq!(
            reasons(&a, &c),
            [
                "the environment changed: B unset",
                "the step before it changed"
            ]
        );
        assert_eq!(reasons("{", &a), Vec::<String>::new());
    }

    #[test]
    fn names_context_paths_of_a_copy() {
        let file = |paths: Value| {
            serde_json::json!({
                "kind": "file", "parent": "p", "op": {"actions": []},
                "sources": [{"context": {"name": "context", "paths": paths}}]
            })
            .to_string()
        };
        let a = file(serde_json::json!({"src": "d1", "": "r1", "go.mod": "m1"}));
        let b = file(serde_json::json!({"src": "d2", "": "r1", "docs": "x"}));
        assert_eq!(
            reasons(&a, &b),
            [
                "it now reads `docs` in the context",
                "`src` in the context changed",
                "it no longer reads `go.mod` in the context",
            ]
        );
        let w = file(serde_json::json!({"\u{0}*.txt": "w1"}));
        let w2 = file(serde_json::json!({"\u{0}*.txt": "w2"}));
        assert_eq!(reasons(&w, &w2), ["`*.txt` in the context changed"]);
    }

    #[test]
    fn other_kinds() {
        let img = |c: &str| serde_json::json!({"kind": "image", "chain_id": c}).to_string();
        assert_eq!(reasons(&img("a"), &img("b")), ["the base image changed"]);
        assert_eq!(
            reasons(&img("a"), &exec("p", &["x"], &[])),
            ["the instruction changed"]
        );
    }
}
