//! Syntax golden cases: `testdata/dockerfiles/syntax/<case>/Dockerfile` with `expected.json`
//! (the AST and the typed stages, serde) or `expected-error.txt` (`line:col: message`).
//! `UPDATE_GOLDEN=1` rewrites the expected files; review the diff before committing.

use std::path::{Path, PathBuf};

use kiln_frontend::{instructions, line_col, parse, ParseError};
use serde_json::json;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles/syntax")
}

fn render(text: &str) -> (&'static str, String) {
    let result = parse(text).and_then(|df| {
        let typed = instructions::parse(&df)?;
        Ok::<_, ParseError>((df, typed))
    });
    match result {
        Ok((df, typed)) => (
            "expected.json",
            serde_json::to_string_pretty(&json!({ "ast": df, "typed": typed })).unwrap() + "\n",
        ),
        Err(e) => {
            let at = e.span().map_or("-".to_string(), |s| {
                let (l, c) = line_col(text, s.start);
                format!("{l}:{c}")
            });
            ("expected-error.txt", format!("{at}: {e}\n"))
        }
    }
}

fn run_case(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("Dockerfile")).map_err(|e| e.to_string())?;
    let (file, actual) = render(&text);
    let path = dir.join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        for stale in ["expected.json", "expected-error.txt"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
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
fn syntax_golden_cases() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("testdata/dockerfiles/syntax must exist")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 40,
        "expected at least 40 syntax cases, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| run_case(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} syntax cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
