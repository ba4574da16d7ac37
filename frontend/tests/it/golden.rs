//! Golden cases: `testdata/dockerfiles/<case>/Dockerfile` with `expected.json` (a summary of
//! the graph) or `expected-error.txt` (`line:col: message`), and an optional `options.json`
//! (`{"build_args": {…}, "target": "…"}`). `UPDATE_GOLDEN=1` rewrites the expected files;
//! review the diff before committing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_frontend::{build_graph, line_col, LowerOptions};
use kiln_ir::{Graph, Op, SourceOp};
use serde_json::{json, Value};

use crate::fake::FakeResolver;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles")
}

fn options(dir: &Path) -> LowerOptions {
    let Ok(text) = std::fs::read_to_string(dir.join("options.json")) else {
        return LowerOptions::default();
    };
    let v: Value = serde_json::from_str(&text).unwrap();
    let build_args: BTreeMap<String, String> = v
        .get("build_args")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    LowerOptions {
        build_args,
        target: v.get("target").and_then(Value::as_str).map(String::from),
        ..Default::default()
    }
}

/// A readable, stable summary of a graph.
pub(crate) fn summary(g: &Graph, text: &str) -> Value {
    let nodes: Vec<Value> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let op = match &n.op {
                Op::Source(SourceOp::Image(r)) => json!({ "image": r.reference }),
                other => serde_json::to_value(other).unwrap(),
            };
            let span = n.span.map(|s| {
                let (l, c) = line_col(text, s.start);
                format!("{l}:{c}")
            });
            json!({ "id": i, "name": n.name, "stage": n.stage, "inputs": n.inputs, "op": op, "at": span })
        })
        .collect();
    let stages: Vec<Value> = g
        .stages
        .iter()
        .map(|s| {
            let history: Vec<String> = s
                .history
                .iter()
                .map(|h| match h.node {
                    Some(n) => format!("{} <node {n}>", h.created_by),
                    None => h.created_by.clone(),
                })
                .collect();
            json!({
                "name": s.name,
                "base": s.base,
                "last": s.last,
                "config": serde_json::to_value(&s.config.config).unwrap(),
                "author": s.config.author,
                "platform": format!("{}/{}", s.config.os, s.config.architecture),
                "history": history,
            })
        })
        .collect();
    json!({ "target": g.target, "nodes": nodes, "stages": stages })
}

fn run_case(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("Dockerfile")).map_err(|e| e.to_string())?;
    let resolver = FakeResolver::default();
    let result = build_graph(&text, &options(dir), &resolver);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let (file, actual) = match &result {
        Ok(g) => (
            "expected.json",
            serde_json::to_string_pretty(&summary(g, &text)).unwrap() + "\n",
        ),
        Err(e) => {
            let at = e.span().map_or("-".to_string(), |s| {
                let (l, c) = line_col(&text, s.start);
                format!("{l}:{c}")
            });
            ("expected-error.txt", format!("{at}: {e}\n"))
        }
    };
    let path = dir.join(file);
    if update {
        std::fs::write(&path, &actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (got {file}:\n{actual})", path.display()))?;
    if expected != actual {
        return Err(format!(
            "{}: mismatch\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
    Ok(())
}

#[test]
fn golden_dockerfiles() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("testdata/dockerfiles must exist")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected at least 10 golden cases, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| run_case(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
