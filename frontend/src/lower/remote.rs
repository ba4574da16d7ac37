//! ADD's remote sources: which sources are HTTP(S) URLs or git repositories (BuildKit's
//! `gitutil.ParseGitRef` and `isHTTPSource`), the downloaded file's name and the git
//! reference forms (`#ref:subdir`, `?ref= ?tag= ?branch= ?commit= ?subdir=`).

use kiln_ir::{GitSource, HttpSource};

/// What an ADD source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Remote {
    /// A path of the build context (or of `--from`).
    Local,
    /// A file to download.
    Http(HttpSource),
    /// A repository to check out (keep_git_dir and checksum filled by the caller).
    Git(GitSource),
}

/// BuildKit's name for a download whose URL path has no basename.
const UNNAMED: &str = "__unnamed__";

fn is_http(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Is `src` a URL of any kind (COPY refuses these)?
pub(super) fn is_remote(src: &str) -> bool {
    is_http(src) || src.starts_with("git@") || src.starts_with("git://")
}

/// The URL's path (after the host, before `?` and `#`), `/`-prefixed, possibly empty.
fn url_path(url: &str) -> &str {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let end = after.find(['?', '#']).unwrap_or(after.len());
    let after = &after[..end];
    after.find('/').map_or("", |i| &after[i..])
}

/// `path.Base` of the URL's path, `__unnamed__` when there is none.
pub(super) fn http_filename(url: &str) -> String {
    let path = url_path(url).trim_end_matches('/');
    match path.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_string(),
        _ => UNNAMED.to_string(),
    }
}

/// A build context given as a git URL (`kiln build git://host/repo.git#ref:subdir`, as
/// buildx takes one): `None` when `context` is not a git URL, else the parsed source or why
/// it is malformed.
pub fn git_context(context: &str) -> Option<Result<GitSource, String>> {
    match classify(context) {
        Ok(Remote::Git(g)) => Some(Ok(g)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Classifies an ADD source; malformed git references are errors.
pub(super) fn classify(src: &str) -> Result<Remote, String> {
    let git_transport = src.starts_with("git://")
        || src.starts_with("git@")
        || src.starts_with("ssh://")
        || src.starts_with("github.com/");
    let git_http = is_http(src) && url_path(src).ends_with(".git");
    if git_transport || git_http {
        return parse_git(src).map(Remote::Git);
    }
    if is_http(src) {
        return Ok(Remote::Http(HttpSource {
            url: src.to_string(),
            checksum: None,
            filename: http_filename(src),
        }));
    }
    Ok(Remote::Local)
}

fn parse_git(src: &str) -> Result<GitSource, String> {
    let src = if src.starts_with("github.com/") {
        format!("https://{src}")
    } else {
        src.to_string()
    };
    let (base, fragment) = match src.split_once('#') {
        Some((b, f)) => (b.to_string(), Some(f.to_string())),
        None => (src.clone(), None),
    };
    let (remote, query) = match base.split_once('?') {
        Some((r, q)) => (r.to_string(), Some(q.to_string())),
        None => (base, None),
    };
    let mut reference = None;
    let mut subdir = String::new();
    if let Some(f) = &fragment {
        let (r, d) = f.split_once(':').unwrap_or((f.as_str(), ""));
        if !r.is_empty() {
            reference = Some(r.to_string());
        }
        subdir = d.to_string();
    }
    let mut remote = remote;
    if let Some(q) = query {
        if fragment.is_some() {
            return Err(format!(
                "git URL {src}: the query form and a #fragment cannot be combined"
            ));
        }
        let mut rest = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "ref" | "tag" | "branch" | "commit" => {
                    if reference.is_some() {
                        return Err(format!("git URL {src}: more than one ref given"));
                    }
                    let v = match k {
                        "tag" => format!("refs/tags/{v}"),
                        "branch" => format!("refs/heads/{v}"),
                        _ => v.to_string(),
                    };
                    reference = Some(v);
                }
                "subdir" => subdir = v.to_string(),
                _ => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            remote = format!("{remote}?{}", rest.join("&"));
        }
    }
    let subdir = subdir.trim_matches('/').to_string();
    if subdir.split('/').any(|c| c == "..") {
        return Err(format!(
            "git URL {src}: subdir {subdir} escapes the repository"
        ));
    }
    Ok(GitSource {
        remote,
        reference,
        subdir,
        keep_git_dir: false,
        checksum: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(s: &str) -> GitSource {
        match classify(s) {
            Ok(Remote::Git(g)) => g,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn http_names() {
        assert_eq!(http_filename("https://h/a/b.tgz"), "b.tgz");
        assert_eq!(http_filename("https://h/a/b.tgz?x=1#y"), "b.tgz");
        assert_eq!(http_filename("https://h/dir/"), "dir");
        assert_eq!(http_filename("https://h"), UNNAMED);
        assert_eq!(http_filename("https://h/"), UNNAMED);
        assert!(matches!(classify("http://h/f"), Ok(Remote::Http(_))));
        assert_eq!(classify("dir/file"), Ok(Remote::Local));
    }

    #[test]
    fn git_forms() {
        let g = git("https://h/r.git#v1:sub/dir");
        assert_eq!(g.remote, "https://h/r.git");
        assert_eq!(g.reference.as_deref(), Some("v1"));
        assert_eq!(g.subdir, "sub/dir");
        let g = git("git://127.0.0.1:9/r.git");
        assert_eq!((g.reference, g.subdir.as_str()), (None, ""));
        let g = git("https://h/r.git?tag=v1&subdir=s");
        assert_eq!(g.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(g.subdir, "s");
        let g = git("https://h/r.git?commit=abc");
        assert_eq!(g.reference.as_deref(), Some("abc"));
        let g = git("github.com/o/r#main");
        assert_eq!(g.remote, "https://github.com/o/r");
        assert!(classify("https://h/r.git?ref=a#b").is_err());
        assert!(classify("https://h/r.git#a:../x").is_err());
    }
}
