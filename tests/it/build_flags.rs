//! buildx-compatible `kiln build` flags: `--add-host`, `--platform`, `--pull`, `--iidfile`,
//! `--metadata-file` and `-q`.

use kiln_testsupport::Image;

use crate::common::Fixture;

fn text(image: &Image, path: &str) -> String {
    String::from_utf8(image.file(path).expect("read").expect(path)).expect("utf8")
}

#[test]
fn add_host_reaches_etc_hosts_and_the_cache_key() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN grep -c dbhost42 /etc/hosts > /count; (grep dbhost42 /etc/hosts || true) > /h\n",
    );
    let (image, _) = f.build_oci("plain", &[]);
    assert_eq!(text(&image, "count"), "0\n");
    let (image, _) = f.build_oci(
        "hosts",
        &[
            "--add-host",
            "dbhost42:10.1.2.3",
            "--add-host",
            "v6=[2001:db8::33]",
        ],
    );
    assert_eq!(text(&image, "count"), "1\n", "a new host re-runs the RUN");
    assert_eq!(text(&image, "h"), "10.1.2.3\tdbhost42\n");
    let bad = f.build(&["--add-host", "db:nope"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.text());
    assert!(bad.text().contains("invalid IP address"), "{}", bad.text());
}

#[test]
fn platform_pull_iidfile_metadata_and_quiet() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM @BASE@\nRUN echo hi > /hi\n");
    let bad = f.build(&["--platform", "linux/arm64"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.text());
    assert!(
        bad.text().contains("linux/amd64 images only"),
        "{}",
        bad.text()
    );

    let iid = f.out("iid");
    let meta = f.out("meta.json");
    std::fs::create_dir_all(iid.parent().expect("parent")).expect("mkdir");
    let (image, out) = f.build_oci(
        "img",
        &[
            "--platform",
            "linux/amd64",
            "--pull",
            "-q",
            "-t",
            "kiln-e2e/flags:1",
            "--iidfile",
            &iid.display().to_string(),
            "--metadata-file",
            &meta.display().to_string(),
        ],
    );
    let config_digest = image.manifest["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(&iid).expect("iidfile"),
        config_digest
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).expect("metadata")).expect("json");
    assert_eq!(m["containerimage.config.digest"], config_digest.as_str());
    assert_eq!(
        m["containerimage.digest"],
        format!(
            "sha256:{}",
            image.manifest_digest.trim_start_matches("sha256:")
        )
        .as_str()
    );
    assert_eq!(m["image.name"], "kiln-e2e/flags:1");
    // -q: the image ID alone on stdout, no progress on stderr.
    assert_eq!(out.stdout(), format!("{config_digest}\n"));
    assert!(!out.text().contains("#1 "), "{}", out.text());
}
