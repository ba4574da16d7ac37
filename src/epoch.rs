//! `SOURCE_DATE_EPOCH`: the image's `created` and this build's history entries take the
//! epoch, and the layers this build made are rewritten with every file mtime newer than the
//! epoch clamped to it. (BuildKit clamps layer mtimes only with the exporter option
//! `rewrite-timestamp=true`; kiln always does when the epoch is set, so two builds with the
//! same epoch give the same image.) Cached layers stay as they were made; the rewrite is
//! deterministic, so it is redone at each export.

use std::path::Path;

use kiln_ir::{Graph, LayerRef, Op, SourceOp};
use kiln_oci::layer::{unpack_layer, write_layer, Compression, LayerOptions};
use kiln_oci::store::ContentStore;

use crate::image::StageImage;

/// `secs` since the Unix epoch as RFC 3339 in UTC, seconds precision (`2023-11-14T22:13:20Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Rewrites the layers of `image` that no base image of `graph` provides, with mtimes
/// clamped to `epoch`, updating the layer list and the config's diff ids. `tmp` is a scratch
/// directory on the store's filesystem.
pub(crate) fn clamp_layers(
    image: &mut StageImage,
    graph: &Graph,
    epoch: i64,
    store: &ContentStore,
    tmp: &Path,
) -> Result<(), String> {
    let base: Vec<&kiln_oci::Digest> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Source(SourceOp::Image(r)) => Some(&r.config.rootfs.diff_ids),
            _ => None,
        })
        .flatten()
        .collect();
    let clamp = u64::try_from(epoch).unwrap_or(0);
    for (i, layer) in image.layers.iter_mut().enumerate() {
        if base.contains(&&layer.diff_id) {
            continue;
        }
        let dir = tmp.join(format!("epoch-{}-{i}", std::process::id()));
        let result = rewrite(layer, store, &dir, clamp);
        // The unpacked copy is scratch either way.
        let _ = std::fs::remove_dir_all(&dir);
        let new = result?;
        if let Some(d) = image.config.rootfs.diff_ids.get_mut(i) {
            *d = new.diff_id.clone();
        }
        *layer = new;
    }
    Ok(())
}

/// One layer unpacked and written again with the clamp.
fn rewrite(
    layer: &LayerRef,
    store: &ContentStore,
    dir: &Path,
    clamp: u64,
) -> Result<LayerRef, String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "cannot rewrite layer {} with SOURCE_DATE_EPOCH: {e}",
            layer.diff_id
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    unpack_layer(&store.blob_path(&layer.blob), &layer.media_type, dir).map_err(|e| fail(&e))?;
    let compression = Compression::from_media_type(&layer.media_type).unwrap_or_default();
    let opts = LayerOptions {
        compression,
        mtime_clamp: Some(clamp),
    };
    let written = write_layer(dir, store, &opts)
        .map_err(|e| fail(&e))?
        .ok_or_else(|| fail(&"the layer unpacked to nothing"))?;
    Ok(LayerRef {
        diff_id: written.diff_id,
        blob: written.blob,
        size: written.size,
        media_type: written.media_type,
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
