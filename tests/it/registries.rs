//! `kiln build` against registries that are not plain anonymous HTTP: TLS with a self-signed
//! CA (`--registry-ca`) and HTTP basic auth (credentials from the Docker config file), both
//! for pulling the base image and for pushing the result.

use kiln_testsupport::{busybox_image, pull_to_layout, Image, Registry, RegistryAuth};

use crate::common::Fixture;

/// `kiln build --root … ARGS… CONTEXT` with extra environment variables.
fn kiln_env(f: &Fixture<'_>, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["build", "--progress=plain", "--root"])
        .arg(f.root())
        .args(args)
        .arg(f.ctx());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kiln")
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tls_registry_with_a_self_signed_ca() {
    let reg = Registry::start(RegistryAuth::Tls).expect("start TLS registry");
    let base = busybox_image(&reg).expect("push busybox over TLS");
    let ca = reg.ca_cert_path().expect("CA");
    let f = Fixture::empty();
    f.write("Dockerfile", &format!("FROM {base}\nRUN echo tls > /t\n"));
    let target = format!("{}/e2e/tls:1", reg.addr());
    // Without the CA: the certificate is not trusted, and the error says where.
    let out = kiln_env(&f, &["--push", "-t", &target], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(reg.addr()), "{}", text(&out));
    // With it: pulled and pushed over TLS.
    let ca_arg = ca.display().to_string();
    let out = kiln_env(
        &f,
        &["--registry-ca", &ca_arg, "--push", "-t", &target],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let layout = pull_to_layout(&reg, &target, "pulled").expect("skopeo copy over TLS");
    let image = Image::from_oci_dir(layout.path()).expect("read pulled image");
    assert_eq!(image.file("t").expect("read"), Some(b"tls\n".to_vec()));
    // A missing CA file is a usage error.
    let out = kiln_env(&f, &["--registry-ca", "/nonexistent.pem"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn basic_auth_registry_with_docker_config_credentials() {
    let (user, pass) = ("kiln", "s3cret:pw");
    let reg = Registry::start(RegistryAuth::Basic {
        user: user.into(),
        pass: pass.into(),
    })
    .expect("start auth registry");
    let base = busybox_image(&reg).expect("push busybox with credentials");
    let f = Fixture::empty();
    f.write("Dockerfile", &format!("FROM {base}\nRUN echo auth > /a\n"));
    let target = format!("{}/e2e/auth:1", reg.addr());
    let empty = tempfile::tempdir().expect("tempdir");
    // No credentials anywhere: unauthorized, naming the image.
    let out = kiln_env(
        &f,
        &["--push", "-t", &target],
        &[("DOCKER_CONFIG", empty.path().display().to_string())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out).to_lowercase();
    assert!(err.contains("unauthorized") || err.contains("401"), "{err}");
    // `auths` in $DOCKER_CONFIG/config.json, as `docker login` writes it.
    let config = tempfile::tempdir().expect("tempdir");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{pass}"),
    );
    std::fs::write(
        config.path().join("config.json"),
        serde_json::json!({"auths": {reg.addr(): {"auth": auth}}}).to_string(),
    )
    .expect("write config.json");
    let out = kiln_env(
        &f,
        &["--push", "-t", &target],
        &[("DOCKER_CONFIG", config.path().display().to_string())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let layout = pull_to_layout(&reg, &target, "pulled").expect("skopeo copy with creds");
    let image = Image::from_oci_dir(layout.path()).expect("read pulled image");
    assert_eq!(image.file("a").expect("read"), Some(b"auth\n".to_vec()));
    // The password is in no log line.
    assert!(!text(&out).contains(pass));
}
