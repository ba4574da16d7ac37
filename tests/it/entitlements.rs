//! `kiln build --allow`: RUN --security=insecure and --network=host need their entitlement,
//! and RUN is filtered by Docker's seccomp profile otherwise.

use kiln_testsupport::Image;

use crate::common::Fixture;

fn oci(f: &Fixture<'_>, name: &str, extra: &[&str]) -> Image {
    let dir = f.out(name);
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    f.build(&args).ok();
    Image::from_oci_dir(&dir).expect("read OCI dir")
}

fn text(image: &Image, path: &str) -> String {
    let bytes = image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("{path} missing"));
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn security_insecure_needs_allow_and_gets_every_capability() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status > /default\n\
         RUN --security=insecure grep -E '^(CapEff|Seccomp):' /proc/self/status > /insecure\n",
    );
    f.build(&[])
        .fails_with(1)
        .error_line_names(&["security.insecure is not allowed"]);
    let image = oci(&f, "img", &["--allow", "security.insecure"]);
    assert_eq!(
        text(&image, "default"),
        "CapEff:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n"
    );
    let insecure = text(&image, "insecure");
    assert!(insecure.contains("Seccomp:\t0\n"), "{insecure}");
    assert!(!insecure.contains("a80425fb"), "{insecure}");
}

#[test]
fn network_host_needs_allow() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM @BASE@\nRUN --network=host true\n");
    f.build(&[])
        .fails_with(1)
        .error_line_names(&["network.host is not allowed"]);
    f.build(&["--allow", "network.host"]).ok();
    f.build(&["--allow", "device"])
        .fails_with(2)
        .shows("invalid entitlement: device");
}
