//! `push` against a real registry, checked with skopeo.

use kiln_exporter::push;
use kiln_oci::registry::{RegistryClient, RegistryOptions};
use kiln_testsupport::{Registry, RegistryAuth};

use crate::fixture::{image, reference, skopeo_inspect};

#[tokio::test]
async fn push_is_inspectable_and_second_push_uploads_nothing() {
    let reg = Registry::start(RegistryAuth::None).unwrap();
    let f = image("push");
    let bundle = f.bundle();
    let name = format!("{}/app:1", reg.addr());
    let client = RegistryClient::new(RegistryOptions::default());
    let digest = push(&bundle, &reference(&name), &client, &f.store)
        .await
        .unwrap();
    assert_eq!(digest, bundle.manifest_digest);
    let v = skopeo_inspect(&["--tls-verify=false", &format!("docker://{name}")]);
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Env"], serde_json::json!(["SEED=push"]));

    let puts_before = reg
        .access_log()
        .matches("\"PUT /v2/app/blobs/uploads/")
        .count();
    assert_eq!(puts_before, 3, "two layers and a config");
    let again = push(
        &bundle,
        &reference(&format!("{}/app:2", reg.addr())),
        &client,
        &f.store,
    )
    .await
    .unwrap();
    assert_eq!(again, digest);
    let puts_after = reg
        .access_log()
        .matches("\"PUT /v2/app/blobs/uploads/")
        .count();
    assert_eq!(puts_after, puts_before, "existing blobs are skipped");
}
