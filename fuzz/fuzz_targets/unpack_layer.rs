//! Arbitrary bytes as a layer blob (compression sniffed): unpack_layer must return Ok or an
//! error, never panic, and never write outside the destination.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(base) = tempfile::tempdir() else { return };
    let blob = base.path().join("blob");
    let dest = base.path().join("dest");
    if std::fs::write(&blob, data).is_err() || std::fs::create_dir(&dest).is_err() {
        return;
    }
    let _ = kiln_oci::layer::unpack_layer(&blob, "", &dest);
    let mut names: Vec<_> = std::fs::read_dir(base.path())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["blob", "dest"], "something was written outside dest");
});
