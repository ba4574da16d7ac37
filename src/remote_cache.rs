//! `--cache-from` and `--cache-to` around a build: read the caches before the solve, write
//! them after the outputs, with BuildKit's progress lines (see [`kiln_solver::remote_cache`]
//! for the format).

use std::sync::Arc;

use kiln_ir::Graph;
use kiln_oci::registry::RegistryClient;
use kiln_oci::ContentStore;
use kiln_solver::remote_cache::{self, CacheExport, CacheImport, CacheImports, ImportedCache};
use kiln_solver::{Lease, SolveResult};

use crate::build::Failure;
use crate::progress::Progress;

/// Reads every `--cache-from` manifest (`#N importing cache manifest from …`); one that is
/// missing or unreadable is a warning and the build goes on without it, as buildx's.
pub(crate) async fn import(
    from: &[CacheImport],
    client: &RegistryClient,
    store: &ContentStore,
    progress: &Progress,
) -> Arc<CacheImports> {
    let mut caches = Vec::new();
    for import in from {
        let v = progress.start(&format!(
            "importing cache manifest from {}",
            import.location
        ));
        match ImportedCache::load(import, client).await {
            Ok(cache) => {
                progress.note(
                    v,
                    &format!(
                        "{} cache records in {} done",
                        cache.len(),
                        cache.manifest_digest()
                    ),
                );
                caches.push(cache);
            }
            Err(e) => progress.note(
                v,
                &format!(
                    "WARNING: cannot import cache from {} (building without it): {e}",
                    import.location
                ),
            ),
        }
        progress.done(v);
    }
    Arc::new(CacheImports::new(
        caches,
        store.clone(),
        client.clone(),
        tokio::runtime::Handle::current(),
    ))
}

/// Writes every `--cache-to` (`#N exporting cache to …`). A failure fails the build (after
/// its outputs were written) unless the export says `ignore-error=true`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn export(
    to: &[CacheExport],
    graph: &Graph,
    result: &SolveResult,
    imports: &CacheImports,
    store: &ContentStore,
    client: &RegistryClient,
    lease: &Lease,
    progress: &Progress,
) -> Result<(), Failure> {
    let rewrite = imports.bad_blobs();
    for target in to {
        let v = progress.start(&format!("exporting cache to {}", target.location));
        let records = remote_cache::select_records(graph, result, target.mode);
        let note = |line: String| progress.note(v, &line);
        let res =
            remote_cache::export(target, &records, store, client, lease, &rewrite, &note).await;
        match res {
            Ok(_) => progress.done(v),
            Err(e) if target.ignore_error => {
                progress.note(
                    v,
                    &format!("WARNING: cache export to {} failed: {e}", target.location),
                );
                progress.done(v);
            }
            Err(e) => {
                let msg = format!("failed to export cache to {}: {e}", target.location);
                progress.error(v, &msg);
                return Err(Failure(msg));
            }
        }
    }
    Ok(())
}
