//! Layer recompression at export time: zstd / uncompressed / gzip, diff ids, media types,
//! reproducibility, the conversion cache, and the outputs read by skopeo, umoci and Docker.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use kiln_exporter::{
    write_docker_tar, write_oci_layout, Compression, ExportCompression, ExportError, ImageBundle,
};
use kiln_oci::layer::ConvertError;
use kiln_oci::media_types::{OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};
use kiln_oci::{ContentStore, Descriptor, Digest};

use crate::fixture::{image, run_ok, skopeo_inspect, Fixture};

fn opts(compression: Compression, level: Option<i32>, force: bool) -> ExportCompression {
    ExportCompression {
        compression,
        level,
        force,
    }
}

/// The blob's bytes decompressed by magic number, and what the magic said.
fn decompress(store: &ContentStore, d: &Digest) -> (Compression, Vec<u8>) {
    let blob = store.read(d).unwrap();
    let c = Compression::sniff(&blob);
    let mut out = Vec::new();
    match c {
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(blob.as_slice())
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(blob.as_slice())
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::None => out = blob,
    }
    (c, out)
}

/// Every layer is `want`-compressed, has its media type, and decompresses to its diff id.
fn check_layers(f: &Fixture, layers: &[Descriptor], want: Compression) {
    assert_eq!(layers.len(), f.config.rootfs.diff_ids.len());
    for (l, diff_id) in layers.iter().zip(&f.config.rootfs.diff_ids) {
        assert_eq!(l.media_type, want.media_type());
        assert_eq!(f.store.size(&l.digest).unwrap(), l.size);
        let (c, tar) = decompress(&f.store, &l.digest);
        assert_eq!(c, want, "{}", l.digest);
        assert_eq!(Digest::of(&tar), *diff_id);
    }
}

#[test]
fn gzip_to_zstd_to_uncompressed_and_back_keeps_diff_ids() {
    let f = image("convert");
    let plain = f.bundle();
    // The requested compression already: nothing changes.
    let same =
        ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &Default::default()).unwrap();
    assert_eq!(same, plain);

    let zstd = ImageBundle::new_with(
        &f.config,
        f.layers.clone(),
        &f.store,
        &opts(Compression::Zstd, None, false),
    )
    .unwrap();
    check_layers(&f, &zstd.layers, Compression::Zstd);
    assert_eq!(zstd.layers[0].media_type, OCI_LAYER_ZSTD);
    assert_eq!(zstd.config_digest, plain.config_digest);
    assert_ne!(zstd.manifest_digest, plain.manifest_digest);
    let m: serde_json::Value = serde_json::from_slice(&zstd.manifest_bytes).unwrap();
    assert_eq!(m["layers"][1]["mediaType"], OCI_LAYER_ZSTD);

    // zstd → uncompressed: the blob is the tar itself, its digest the diff id.
    let raw = ImageBundle::new_with(
        &f.config,
        zstd.layers.clone(),
        &f.store,
        &opts(Compression::None, Some(5), false),
    )
    .unwrap();
    check_layers(&f, &raw.layers, Compression::None);
    assert_eq!(raw.layers[0].media_type, OCI_LAYER_TAR);
    let digests: Vec<Digest> = raw.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(digests, f.config.rootfs.diff_ids);

    // uncompressed → gzip.
    let back = ImageBundle::new_with(
        &f.config,
        raw.layers.clone(),
        &f.store,
        &opts(Compression::Gzip, Some(9), false),
    )
    .unwrap();
    check_layers(&f, &back.layers, Compression::Gzip);
    assert_eq!(back.layers[0].media_type, OCI_LAYER_GZIP);

    // force recompresses gzip layers too.
    let forced = ImageBundle::new_with(
        &f.config,
        f.layers.clone(),
        &f.store,
        &opts(Compression::Gzip, Some(9), true),
    )
    .unwrap();
    check_layers(&f, &forced.layers, Compression::Gzip);
    assert_ne!(forced.layers, f.layers, "force did not recompress");
}

#[test]
fn conversions_are_reproducible_across_stores_and_levels_matter() {
    let a = image("repro");
    let b = image("repro");
    let z = opts(Compression::Zstd, None, false);
    let ba = ImageBundle::new_with(&a.config, a.layers.clone(), &a.store, &z).unwrap();
    let bb = ImageBundle::new_with(&b.config, b.layers.clone(), &b.store, &z).unwrap();
    assert_eq!(ba.manifest_digest, bb.manifest_digest);
    for l in &ba.layers {
        assert_eq!(
            a.store.read(&l.digest).unwrap(),
            b.store.read(&l.digest).unwrap()
        );
    }
    let z19 = opts(Compression::Zstd, Some(19), false);
    let b19 = ImageBundle::new_with(&a.config, a.layers.clone(), &a.store, &z19).unwrap();
    check_layers(&a, &b19.layers, Compression::Zstd);
    assert_ne!(b19.manifest_digest, ba.manifest_digest, "level ignored");
}

#[test]
fn second_export_reuses_the_converted_blobs() {
    let f = image("cache");
    let z = opts(Compression::Zstd, Some(7), false);
    let first = ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &z).unwrap();
    let entry = f
        .store
        .root()
        .join("conversions")
        .join(format!("{}.zstd.7", f.config.rootfs.diff_ids[0].hex()));
    let cached: Descriptor = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    assert_eq!(cached, first.layers[0]);
    let mtimes: Vec<_> = first
        .layers
        .iter()
        .map(|l| {
            std::fs::metadata(f.store.blob_path(&l.digest))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    // Without the source blobs a conversion would fail: a second export must not read them.
    for l in &f.layers {
        std::fs::remove_file(f.store.blob_path(&l.digest)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &z).unwrap();
    assert_eq!(second, first);
    for (l, m) in second.layers.iter().zip(&mtimes) {
        let now = std::fs::metadata(f.store.blob_path(&l.digest))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(now, *m, "{} rewritten", l.digest);
    }
    // A cache entry whose blob has gone is ignored (and the missing source is reported).
    std::fs::remove_file(f.store.blob_path(&first.layers[0].digest)).unwrap();
    let err = ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &z).unwrap_err();
    assert!(err.to_string().contains(f.layers[0].digest.hex()), "{err}");
}

#[test]
fn a_wrong_diff_id_fails_and_caches_nothing() {
    let mut f = image("wrongdiff");
    f.config.rootfs.diff_ids[1] = Digest::of(b"something else");
    let err = ImageBundle::new_with(
        &f.config,
        f.layers.clone(),
        &f.store,
        &opts(Compression::Zstd, None, false),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            ExportError::Convert(ConvertError::DiffIdMismatch { blob, .. }) if *blob == f.layers[1].digest
        ),
        "{err:?}"
    );
    let entries: Vec<_> = std::fs::read_dir(f.store.root().join("conversions"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    f.config.rootfs.diff_ids.pop();
    let err = ImageBundle::new_with(
        &f.config,
        f.layers.clone(),
        &f.store,
        &opts(Compression::Zstd, None, false),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::LayerCount {
                layers: 2,
                diff_ids: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn buildkit_attributes_parse() {
    let o = ExportCompression::from_attrs(Some("zstd"), Some("19"), Some("true")).unwrap();
    assert_eq!(o, opts(Compression::Zstd, Some(19), true));
    let o = ExportCompression::from_attrs(Some("uncompressed"), None, Some("")).unwrap();
    assert_eq!(o, opts(Compression::None, None, true));
    assert_eq!(
        ExportCompression::from_attrs(None, None, None).unwrap(),
        ExportCompression::default()
    );
    for (c, l, f) in [
        (Some("lz4"), None, None),
        (Some("gzip"), Some("10"), None),
        (Some("zstd"), Some("x"), None),
        (None, None, Some("yes")),
    ] {
        let err = ExportCompression::from_attrs(c, l, f).unwrap_err();
        assert!(matches!(err, ExportError::BadOption { .. }), "{err:?}");
    }
}

#[test]
fn zstd_layout_reads_with_skopeo_and_unpacks_with_umoci() {
    let f = image("zstdlayout");
    let z = opts(Compression::Zstd, None, false);
    let bundle = ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &z).unwrap();

    let archive = f.dir.path().join("z.tar");
    write_oci_layout(&bundle, &["app:1".to_string()], &f.store, &archive, true).unwrap();
    let v = skopeo_inspect(&[&format!("oci-archive:{}", archive.display())]);
    assert_eq!(v["Digest"], bundle.manifest_digest.as_str());
    let raw = skopeo_inspect(&["--raw", &format!("oci-archive:{}", archive.display())]);
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{raw}");
    for l in layers {
        assert_eq!(l["mediaType"], OCI_LAYER_ZSTD, "{raw}");
    }

    // umoci 0.4.7 refuses zstd layers ("blob is not correct mediatype"), so skopeo (which
    // decompresses and verifies every layer) copies the layout to gzip, and umoci unpacks that.
    let dir = f.dir.path().join("layout");
    write_oci_layout(&bundle, &["app:1".to_string()], &f.store, &dir, false).unwrap();
    let gz = f.dir.path().join("gz");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-compress-format", "gzip"])
            .arg(format!("oci:{}:1", dir.display()))
            .arg(format!("oci:{}:1", gz.display())),
    );
    let raw = skopeo_inspect(&["--raw", &format!("oci:{}:1", gz.display())]);
    assert_eq!(raw["layers"][0]["mediaType"], OCI_LAYER_GZIP, "{raw}");
    unpack_and_check(&gz, &f.dir.path().join("bundle"), "zstdlayout");

    // The uncompressed layout unpacks with umoci directly.
    let none = opts(Compression::None, None, false);
    let plain = ImageBundle::new_with(&f.config, bundle.layers.clone(), &f.store, &none).unwrap();
    let dir = f.dir.path().join("plain");
    write_oci_layout(&plain, &["app:1".to_string()], &f.store, &dir, false).unwrap();
    unpack_and_check(&dir, &f.dir.path().join("bundle2"), "zstdlayout");
}

/// `umoci unpack` of `<layout>:1` has the fixture's files for `seed`.
fn unpack_and_check(layout: &std::path::Path, to: &std::path::Path, seed: &str) {
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:1", layout.display()))
            .arg(to),
    );
    assert_eq!(
        std::fs::read_to_string(to.join("rootfs/hello.txt")).unwrap(),
        format!("hello from {seed}\n")
    );
    assert_eq!(
        std::fs::read_to_string(to.join("rootfs/etc/motd")).unwrap(),
        format!("second layer of {seed}\n")
    );
}

/// The members of a tar file.
fn tar_members(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.insert(name, v);
    }
    out
}

#[test]
fn docker_tar_of_a_zstd_image_has_gzip_layers_and_loads() {
    let f = image("zstddocker");
    let z = opts(Compression::Zstd, None, false);
    let bundle = ImageBundle::new_with(&f.config, f.layers.clone(), &f.store, &z).unwrap();
    let dest = f.dir.path().join("d.tar");
    write_docker_tar(&bundle, &["kiln-zstd-test:1".into()], &f.store, &dest).unwrap();
    let members = tar_members(&dest);
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    for l in layers {
        let blob = &members[l.as_str().unwrap()];
        assert_eq!(Compression::sniff(blob), Compression::Gzip, "{l}");
    }
    let v = skopeo_inspect(&[&format!("docker-archive:{}", dest.display())]);
    // skopeo lists a docker-archive's layers by diff id.
    assert_eq!(
        v["Layers"],
        serde_json::json!(f.config.rootfs.diff_ids),
        "{v}"
    );
    let d = kiln_testsupport::Dockerd::start().unwrap();
    let out = d.docker(&["load", "-i", dest.to_str().unwrap()]).unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let out = d
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "kiln-zstd-test:1",
        ])
        .unwrap();
    // Converting layers keeps the config, so the image id.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        bundle.config_digest.as_str()
    );
}
