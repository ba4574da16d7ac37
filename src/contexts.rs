//! Build contexts that are not a local directory: a git URL (`kiln build git://…`) checked
//! out into the store, or `-` (a tar or a lone Dockerfile on stdin) unpacked into it. Each
//! rewrites the options to point at the resulting directory.

use crate::build::Failure;
use crate::cli::BuildOptions;
use crate::progress::Progress;

/// A scratch directory or file of the store, removed when dropped.
pub(crate) struct ScratchDir(pub(crate) std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.0).is_err() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `kiln build -`: stdin is a tar of the context (plain, gzip or zstd; extracted with the
/// layer code's confinement, so no entry lands outside it, and without whiteout meaning) or, when it is no tar, the Dockerfile of an
/// empty context, as `docker build -` takes either. Returns the scratch directory to remove
/// after the build.
pub(crate) fn stdin_context(
    opts: &mut BuildOptions,
    progress: &Progress,
) -> Result<Option<ScratchDir>, Failure> {
    if opts.context.as_os_str() != "-" {
        return Ok(None);
    }
    let v = progress.start("[internal] load build context from stdin");
    let tmp = opts.root.join("tmp");
    let fail =
        |what: &str, e: &dyn std::fmt::Display| Failure(format!("stdin context: {what}: {e}"));
    std::fs::create_dir_all(&tmp).map_err(|e| fail("creating the store", &e))?;
    let scratch = ScratchDir(tmp.join(format!("stdin-context-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let dir = scratch.0.join("context");
    std::fs::create_dir_all(&dir).map_err(|e| fail("creating its directory", &e))?;
    let input = scratch.0.join("input");
    let mut file = std::fs::File::create(&input).map_err(|e| fail("buffering", &e))?;
    let size = std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .map_err(|e| fail("reading stdin", &e))?;
    drop(file);
    let mut head = [0u8; 262];
    let n = std::io::Read::read(
        &mut std::fs::File::open(&input).map_err(|e| fail("reading", &e))?,
        &mut head,
    )
    .map_err(|e| fail("reading", &e))?;
    let compressed =
        head[..n].starts_with(&[0x1f, 0x8b]) || head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let is_tar = n >= 262 && &head[257..262] == b"ustar";
    if compressed || is_tar {
        kiln_oci::layer::extract_tar(&input, &dir).map_err(|e| fail("unpacking the tar", &e))?;
        progress.note(v, &format!("transferring context: {size}B done"));
    } else {
        std::fs::rename(&input, dir.join("Dockerfile")).map_err(|e| fail("Dockerfile", &e))?;
        progress.note(v, "stdin is a Dockerfile: the context is empty");
    }
    let _ = std::fs::remove_file(&input);
    progress.done(v);
    if opts.dockerfile.is_relative() && opts.dockerfile.as_os_str() != "-" {
        opts.dockerfile = dir.join(&opts.dockerfile);
    }
    opts.context = dir;
    Ok(Some(scratch))
}

/// A git URL as the context (`kiln build git://host/repo.git#ref:subdir`, as buildx): checks
/// it out with the system's git into the store's downloads and builds from there; a relative
/// `-f` (default `Dockerfile`) names a file of the checkout.
pub(crate) fn git_context(opts: &mut BuildOptions, progress: &Progress) -> Result<(), Failure> {
    let url = opts.context.to_string_lossy().into_owned();
    let Some(source) = kiln_frontend::git_context(&url) else {
        return Ok(());
    };
    let source = source.map_err(|e| Failure(format!("invalid git context: {e}")))?;
    let v = progress.start(&format!("[internal] load git source {url}"));
    let dir = kiln_executor::fetch_git_context(&opts.root, &source).map_err(|e| {
        let msg = format!("failed to load git context {url}: {e}");
        progress.error(v, &msg);
        Failure(msg)
    })?;
    progress.done(v);
    if opts.dockerfile.is_relative() && opts.dockerfile.as_os_str() != "-" {
        let lower = dir.join("dockerfile");
        opts.dockerfile = if opts.dockerfile.as_os_str() == "Dockerfile"
            && !dir.join("Dockerfile").exists()
            && lower.exists()
        {
            lower
        } else {
            dir.join(&opts.dockerfile)
        };
    }
    opts.context = dir;
    // Without its #ref: the same step of another commit is the one to compare with.
    opts.origin = Some(format!("{}:{}", source.remote, source.subdir));
    Ok(())
}
