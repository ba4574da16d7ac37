//! Rootless builds: `kiln build` run by a non-root user (created here, with and without
//! `/etc/subuid` and `/etc/subgid` ranges) goes through a user namespace and must give the
//! same layers (mtimes aside) as the build as root, over overlayfs and with the copy
//! snapshotter (`KILN_SNAPSHOTTER=copy`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kiln_testsupport::{EntryKind, Image, LayerEntry};
use tempfile::TempDir;

use crate::common::{Fixture, Outcome};

/// A user with subordinate id ranges (200000:65536 in /etc/subuid and /etc/subgid).
const RANGED_USER: &str = "kiln-rootless";
/// A user without ranges: kiln falls back to the single mapping 0 → the user's id.
const SINGLE_USER: &str = "kiln-rootless1";
const RANGE: &str = "200000:65536";

/// How long one rootless build may take.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Serialises useradd and the /etc/sub[ug]id edits between test threads.
static USERS: Mutex<()> = Mutex::new(());

fn run_checked(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates `name` unless it exists (idempotent), with the subordinate ranges when `ranged`
/// and none otherwise (the files are only rewritten when that changes them). Returns
/// (uid, gid).
fn ensure_user(name: &str, ranged: bool) -> (u32, u32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the rootless tests create users: run them as root (CI does)"
    );
    kiln_testsupport::ensure_tools().expect("test tools (uidmap for newuidmap/newgidmap)");
    for tool in [
        "/usr/bin/newuidmap",
        "/usr/bin/newgidmap",
        "/usr/bin/setpriv",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run testdata/scripts/setup.sh (installs uidmap)"
        );
    }
    let _guard = USERS.lock().unwrap_or_else(|e| e.into_inner());
    let exists = std::process::Command::new("id")
        .arg("-u")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        run_checked(std::process::Command::new("useradd").args([
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]));
    }
    // useradd may have allocated ranges of its own: keep exactly ours (or none).
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mine = format!("{name}:");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&mine))
            .map(str::to_string)
            .collect();
        if ranged {
            lines.push(format!("{name}:{RANGE}"));
        }
        let mut new = lines.join("\n");
        if !new.is_empty() {
            new.push('\n');
        }
        if new != text {
            std::fs::write(file, new).unwrap_or_else(|e| panic!("writing {file}: {e}"));
        }
    }
    let id = |flag: &str| -> u32 {
        run_checked(std::process::Command::new("id").args([flag, name]))
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// A directory tree the user owns under /tmp (the repo may be under a 0700 /root): the
/// kiln binary, the context (copied from the fixture), a store and an output dir.
struct UserDirs {
    tmp: TempDir,
}

impl UserDirs {
    fn new(f: &Fixture<'_>, uid: u32, gid: u32) -> UserDirs {
        let tmp = tempfile::Builder::new()
            .prefix("kiln-rootless-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let base = tmp.path();
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), base.join("kiln")).expect("copy kiln");
        run_checked(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(f.ctx())
                .arg(base.join("ctx")),
        );
        for d in ["root", "out"] {
            std::fs::create_dir(base.join(d)).expect("mkdir");
        }
        run_checked(
            std::process::Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(base),
        );
        UserDirs { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `kiln build` as `user` with `env`, writing the image as an OCI dir `out/<name>`.
    fn build_as(&self, user: &str, name: &str, env: &[(&str, &str)]) -> Image {
        let dest = self.path("out").join(name);
        let mut cmd = assert_cmd::Command::new("setpriv");
        cmd.args([
            format!("--reuid={user}"),
            format!("--regid={user}"),
            "--init-groups".to_string(),
            "--".to_string(),
        ])
        .arg(self.path("kiln"))
        .args(["build", "--progress=plain", "--root"])
        .arg(self.path("root"))
        .arg("-o")
        .arg(format!("type=oci,dest={},tar=false", dest.display()))
        .arg(self.path("ctx"))
        .current_dir(self.tmp.path())
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", self.tmp.path())
        .env("NO_COLOR", "1")
        .timeout(TIMEOUT);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = cmd.output().expect("run setpriv kiln");
        Outcome {
            args: vec![format!("(as {user} {env:?}) build {name}")],
            output,
        }
        .ok();
        Image::from_oci_dir(&dest).expect("read OCI dir")
    }
}

/// Builds as root (overlay, no user namespace) into the fixture's own store.
fn root_build(f: &Fixture<'_>) -> Image {
    let dest = f.out("root");
    let d = format!("type=oci,dest={},tar=false", dest.display());
    f.build(&["-o", &d]).ok();
    Image::from_oci_dir(&dest).expect("read OCI dir")
}

/// Layer entries without mtimes, one list per layer.
fn layers(image: &Image) -> Vec<Vec<LayerEntry>> {
    image
        .layers
        .iter()
        .map(|l| {
            kiln_testsupport::layer_entries(l)
                .expect("layer entries")
                .into_iter()
                .map(|mut e| {
                    e.mtime = 0;
                    e
                })
                .collect()
        })
        .collect()
}

fn find<'a>(layer: &'a [LayerEntry], path: &str) -> &'a LayerEntry {
    layer
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} missing in {layer:#?}"))
}

const MULTI_STAGE: &str = "\
FROM @BASE@ AS files
RUN mkdir -p /out/sub && echo hi > /out/sub/f && chown 1000:1000 /out/sub/f \\
 && chown 33:33 /out/sub && chmod 640 /out/sub/f && ln -s sub/f /out/link

FROM @BASE@
RUN touch /a && chown 1000:1000 /a && mkdir /d && chown 33:33 /d && ln -s /a /d/l \\
 && echo x > /d/x && mkdir -p /var/tmp/v && echo v > /var/tmp/v/f && ln /d/x /d/hard
RUN rm /d/x /bin/ls && rm -rf /var/tmp && mkdir -m 1777 /var/tmp \\
 && echo data > /home/h && chown 65534:65534 /home/h
COPY --from=files /out /copied
COPY --chown=1000:33 ctx.txt /ctx/
USER 1000:1000
RUN id > /tmp/id && touch /tmp/mine
";

fn multi_stage_fixture() -> Fixture<'static> {
    let f = Fixture::empty();
    f.write("Dockerfile", MULTI_STAGE);
    f.write("ctx.txt", "from the context\n");
    f
}

/// The root build's layers must be what the Dockerfile says (so that comparing against
/// them means something).
fn check_reference(layers: &[Vec<LayerEntry>]) {
    assert_eq!(layers.len(), 6, "base + 3 RUN + 2 COPY layers");
    let run1 = &layers[1];
    let a = find(run1, "a");
    assert_eq!((a.uid, a.gid, a.kind), (1000, 1000, EntryKind::File));
    let d = find(run1, "d");
    assert_eq!((d.uid, d.gid, d.kind), (33, 33, EntryKind::Dir));
    assert_eq!(find(run1, "d/l").link.as_deref(), Some("/a"));
    let run2 = &layers[2];
    find(run2, "d/.wh.x");
    find(run2, "bin/.wh.ls");
    find(run2, "var/tmp/.wh..wh..opq");
    assert_eq!(find(run2, "var/tmp").mode, 0o1777);
    assert_eq!(find(run2, "home/h").uid, 65534);
    let from = &layers[3];
    let f = find(from, "copied/sub/f");
    assert_eq!((f.uid, f.gid, f.mode), (1000, 1000, 0o640));
    assert_eq!(find(from, "copied/sub").uid, 33);
    assert_eq!(find(from, "copied/link").link.as_deref(), Some("sub/f"));
    let ctx = find(&layers[4], "ctx/ctx.txt");
    assert_eq!((ctx.uid, ctx.gid), (1000, 33));
    let id = find(&layers[5], "tmp/id");
    assert!(
        String::from_utf8_lossy(&id.content).starts_with("uid=1000 gid=1000"),
        "{:?}",
        String::from_utf8_lossy(&id.content)
    );
    assert_eq!(find(&layers[5], "tmp/mine").uid, 1000);
}

fn assert_same_layers(what: &str, want: &[Vec<LayerEntry>], got: &[Vec<LayerEntry>]) {
    assert_eq!(want.len(), got.len(), "{what}: number of layers");
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w, g, "{what}: layer {i} differs from the root build's");
    }
}

#[test]
fn rootless_multi_stage_build_matches_the_root_build() {
    let (uid, gid) = ensure_user(RANGED_USER, true);
    let f = multi_stage_fixture();
    let reference = layers(&root_build(&f));
    check_reference(&reference);
    let dirs = UserDirs::new(&f, uid, gid);
    let image = dirs.build_as(RANGED_USER, "overlay", &[]);
    assert_same_layers("rootless overlay", &reference, &layers(&image));
    // The store is the user's: every snapshot file belongs to the user or its range.
    for e in std::fs::read_dir(dirs.path("root/snapshots")).expect("snapshots") {
        let m = e.expect("entry").metadata().expect("stat");
        assert!(
            m.uid() == uid || (200000..265536).contains(&m.uid()),
            "snapshot owned by {}",
            m.uid()
        );
    }
}

#[test]
fn rootless_copy_snapshotter_matches_the_root_build() {
    let (uid, gid) = ensure_user(RANGED_USER, true);
    let f = multi_stage_fixture();
    let reference = layers(&root_build(&f));
    check_reference(&reference);
    let dirs = UserDirs::new(&f, uid, gid);
    let image = dirs.build_as(RANGED_USER, "copy", &[("KILN_SNAPSHOTTER", "copy")]);
    assert_same_layers("rootless copy snapshotter", &reference, &layers(&image));
}

#[test]
fn rootless_single_id_mapping_builds_run_and_copy() {
    let (uid, gid) = ensure_user(SINGLE_USER, false);
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN echo hi > /hello && mkdir -p /d && cat /proc/self/uid_map > /d/map\n\
         COPY --chown=1000:1000 ctx.txt /ctx.txt\n\
         RUN rm /etc/group\n",
    );
    f.write("ctx.txt", "ctx\n");
    let dirs = UserDirs::new(&f, uid, gid);
    let image = dirs.build_as(SINGLE_USER, "single", &[]);
    let l = layers(&image);
    assert_eq!(l.len(), 4, "base + RUN + COPY + RUN");
    let hello = find(&l[1], "hello");
    assert_eq!((hello.uid, hello.content.as_slice()), (0, &b"hi\n"[..]));
    let map = String::from_utf8_lossy(&find(&l[1], "d/map").content).into_owned();
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(
        fields,
        ["0", &uid.to_string(), "1"],
        "the single mapping 0 → the user's uid"
    );
    // chown to an id the namespace does not map is ignored: the file stays 0:0.
    let ctx = find(&l[2], "ctx.txt");
    assert_eq!(
        (ctx.uid, ctx.gid, ctx.content.as_slice()),
        (0, 0, &b"ctx\n"[..])
    );
    find(&l[3], "etc/.wh.group");
}
