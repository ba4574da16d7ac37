//! The registry client against a real docker-registry: plain, basic auth, TLS.

use std::collections::BTreeMap;

use kiln_exporter::push;
use kiln_oci::media_types::OCI_INDEX;
use kiln_oci::registry::{Credentials, RegistryClient, RegistryError, RegistryOptions};
use kiln_oci::{ContentStore, Digest, Index, Platform};
use kiln_testsupport::{Registry, RegistryAuth};

use crate::fixture::{image, image_for, reference};

fn anonymous() -> RegistryOptions {
    RegistryOptions {
        no_docker_config: true,
        ..Default::default()
    }
}

/// Pushes the "resolve" image, resolves it back, fetches its layers into a new store.
async fn round_trip(reg: &Registry, opts: RegistryOptions) {
    let f = image("resolve");
    let bundle = f.bundle();
    let image_ref = reference(&format!("{}/round/trip:1", reg.addr()));
    let client = RegistryClient::try_new(opts).unwrap();
    push(&bundle, &image_ref, &client, &f.store).await.unwrap();

    let r = client
        .resolve(&image_ref, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(r.digest, bundle.manifest_digest);
    assert_eq!(r.config_bytes, bundle.config_bytes);
    assert_eq!(r.config, f.config);
    assert_eq!(r.manifest.layers, f.layers);

    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    for l in &r.manifest.layers {
        client.fetch_blob(&image_ref, l, &store).await.unwrap();
        assert_eq!(
            std::fs::read(store.blob_path(&l.digest)).unwrap(),
            std::fs::read(f.store.blob_path(&l.digest)).unwrap()
        );
    }
    // Present blobs are not fetched again.
    let gets = reg.blob_gets().len();
    client
        .fetch_blob(&image_ref, &r.manifest.layers[0], &store)
        .await
        .unwrap();
    assert_eq!(reg.blob_gets().len(), gets);

    // By digest too.
    let mut by_digest = image_ref.clone();
    by_digest.tag = None;
    by_digest.digest = Some(bundle.manifest_digest.clone());
    let r2 = client
        .resolve(&by_digest, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(r2.digest, bundle.manifest_digest);
}

#[tokio::test]
async fn plain_http_round_trip() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    round_trip(&reg, anonymous()).await;
}

#[tokio::test]
async fn tls_round_trip_with_custom_ca_and_failure_without() {
    let reg = Registry::start(RegistryAuth::Tls).unwrap();
    let ca = reg.ca_cert_path().unwrap();
    round_trip(
        &reg,
        RegistryOptions {
            ca_files: vec![ca],
            ..anonymous()
        },
    )
    .await;
    let client = RegistryClient::new(anonymous());
    let r = reference(&format!("{}/round/trip:1", reg.addr()));
    let err = client
        .resolve(&r, &Platform::linux_amd64())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(reg.addr()), "{err}");
}

#[tokio::test]
async fn basic_auth_from_options_and_docker_config() {
    let (user, pass) = ("kiln", "s3cret:pw");
    let reg = Registry::start(RegistryAuth::Basic {
        user: user.into(),
        pass: pass.into(),
    })
    .unwrap();
    // Without credentials: unauthorized, naming the reference.
    let f = image("noauth");
    let r = reference(&format!("{}/secret/img:1", reg.addr()));
    let err = push(&f.bundle(), &r, &RegistryClient::new(anonymous()), &f.store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");

    let creds = BTreeMap::from([(
        reg.addr().to_string(),
        Credentials {
            username: user.into(),
            password: pass.into(),
        },
    )]);
    round_trip(
        &reg,
        RegistryOptions {
            credentials: creds,
            ..anonymous()
        },
    )
    .await;

    // ~/.docker/config.json style `auths`.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let auth = base64_encode(format!("{user}:{pass}").as_bytes());
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr()),
    )
    .unwrap();
    let client = RegistryClient::new(RegistryOptions {
        docker_config: Some(cfg),
        ..Default::default()
    });
    let got = client
        .resolve(
            &reference(&format!("{}/round/trip:1", reg.addr())),
            &Platform::linux_amd64(),
        )
        .await
        .unwrap();
    assert_eq!(got.config.os, "linux");
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn index_resolves_to_linux_amd64() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let client = RegistryClient::new(anonymous());
    let arm = image_for("arm", "arm64");
    let amd = image_for("amd", "amd64");
    let (arm_b, amd_b) = (arm.bundle(), amd.bundle());
    let repo = format!("{}/multi", reg.addr());
    push(
        &arm_b,
        &reference(&format!("{repo}:arm")),
        &client,
        &arm.store,
    )
    .await
    .unwrap();
    push(
        &amd_b,
        &reference(&format!("{repo}:amd")),
        &client,
        &amd.store,
    )
    .await
    .unwrap();
    let entry = |b: &kiln_exporter::ImageBundle, arch: &str, variant: Option<&str>| {
        let mut d = b.manifest_descriptor();
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(String::from),
        });
        d
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: vec![
            entry(&arm_b, "arm64", Some("v8")),
            entry(&amd_b, "amd64", None),
        ],
        annotations: None,
    };
    let bytes = serde_json::to_vec(&index).unwrap();
    let index_ref = reference(&format!("{repo}:latest"));
    let d = client
        .push_manifest(&index_ref, OCI_INDEX, &bytes)
        .await
        .unwrap();
    assert_eq!(d, Digest::of(&bytes));

    let r = client
        .resolve(&index_ref, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(r.digest, amd_b.manifest_digest);
    assert_eq!(r.config.architecture, "amd64");
    let arm64 = Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: None,
    };
    let r = client.resolve(&index_ref, &arm64).await.unwrap();
    assert_eq!(r.digest, arm_b.manifest_digest);
    let s390 = Platform {
        architecture: "s390x".into(),
        os: "linux".into(),
        variant: None,
    };
    let err = client.resolve(&index_ref, &s390).await.unwrap_err();
    assert!(err.to_string().contains("linux/s390x"), "{err}");
    assert!(
        err.to_string().contains("linux/arm64/v8, linux/amd64"),
        "{err}"
    );
}

#[tokio::test]
async fn not_found_and_connection_refused_name_the_reference() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let client = RegistryClient::new(anonymous());
    for name in [
        "nosuch/repo:1",
        "nosuch/repo@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let r = reference(&format!("{}/{name}", reg.addr()));
        let err = client
            .resolve(&r, &Platform::linux_amd64())
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("{}/nosuch/repo", reg.addr())),
            "{err}"
        );
    }
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = reference(&format!("127.0.0.1:{port}/a:1"));
    let err = client
        .resolve(&r, &Platform::linux_amd64())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
}

/// Overwrites a blob in the registry's storage with other bytes of the same length.
fn corrupt(reg: &Registry, digest: &Digest) {
    let path = reg
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
        .join("data");
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for b in bytes.iter_mut() {
        *b = b.wrapping_add(1);
    }
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test]
async fn wrong_digests_are_detected() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let client = RegistryClient::new(anonymous());
    let f = image("corrupt");
    let bundle = f.bundle();
    let r = reference(&format!("{}/bad:1", reg.addr()));
    push(&bundle, &r, &client, &f.store).await.unwrap();

    corrupt(&reg, &f.layers[0].digest);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let err = client
        .fetch_blob(&r, &f.layers[0], &store)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!store.has(&f.layers[0].digest));

    corrupt(&reg, &bundle.config_digest);
    let err = client
        .resolve(&r, &Platform::linux_amd64())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(bundle.config_digest.as_str()),
        "{err}"
    );
}

#[tokio::test]
async fn blobs_mount_across_repositories_without_upload() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let client = RegistryClient::new(anonymous());
    let f = image("mount");
    let from = reference(&format!("{}/src/img:1", reg.addr()));
    push(&f.bundle(), &from, &client, &f.store).await.unwrap();
    let to = reference(&format!("{}/dst/img:1", reg.addr()));
    let layer = &f.layers[0];
    assert!(!client.blob_exists(&to, &layer.digest).await.unwrap());
    client
        .push_blob_mount(&to, layer, &f.store.blob_path(&layer.digest), "src/img")
        .await
        .unwrap();
    assert!(client.blob_exists(&to, &layer.digest).await.unwrap());
    let log = reg.access_log();
    assert!(
        log.contains("\"POST /v2/dst/img/blobs/uploads/?mount="),
        "{log}"
    );
    assert!(!log.contains("\"PUT /v2/dst/img/blobs/uploads/"), "{log}");
}

#[tokio::test]
async fn resolves_busybox_as_oci_docker_v2s2_and_index() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let client = RegistryClient::new(anonymous());
    for name in [
        kiln_testsupport::busybox_image(&reg).unwrap(),
        kiln_testsupport::busybox_image_docker(&reg).unwrap(),
        kiln_testsupport::busybox_image_index(&reg).unwrap(),
    ] {
        let r = client
            .resolve(&reference(&name), &Platform::linux_amd64())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.config.architecture, "amd64", "{name}");
        assert_eq!(r.manifest.layers.len(), 1, "{name}");
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        client
            .fetch_blob(&reference(&name), &r.manifest.layers[0], &store)
            .await
            .unwrap();
        assert!(store.has(&r.manifest.layers[0].digest));
    }
}
