//! Rootless builds: `kiln build` run by a non-root user (created here, with and without
//! `/etc/subuid` and `/etc/subgid` ranges) goes through a user namespace and must give the
//! same layers (mtimes aside) as the build as root, over overlayfs and with the copy
//! snapshotter (`KILN_SNAPSHOTTER=copy`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kiln_testsupport::{EntryKind, Image, LayerEntry};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::common::{pids_running, Fixture, Outcome};

/// A user with subordinate id ranges (200000:65536 in /etc/subuid and /etc/subgid).
const RANGED_USER: &str = "kiln-rootless";
/// A user without ranges: kiln falls back to the single mapping 0 → the user's id.
const SINGLE_USER: &str = "kiln-rootless1";
const RANGE: &str = "200000:65536";

/// How long one rootless build may take.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Both users, made once per test process before any rootless build runs (a build's
/// newuidmap must never read /etc/subuid while it is being rewritten).
static USERS: OnceLock<[(u32, u32); 2]> = OnceLock::new();

/// (uid, gid) of `name` (one of the two users), creating both users first.
fn ensure_user(name: &str) -> (u32, u32) {
    let users = USERS.get_or_init(|| [make_user(RANGED_USER, true), make_user(SINGLE_USER, false)]);
    if name == RANGED_USER {
        users[0]
    } else {
        users[1]
    }
}

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
fn make_user(name: &str, ranged: bool) -> (u32, u32) {
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
            // Atomically: other processes may read it at any time.
            let tmp = format!("{file}.kiln-test-{}", std::process::id());
            std::fs::write(&tmp, new).unwrap_or_else(|e| panic!("writing {tmp}: {e}"));
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            std::fs::rename(&tmp, file).unwrap_or_else(|e| panic!("replacing {file}: {e}"));
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

    /// `setpriv … kiln build --progress=plain --root ROOT -o type=oci,dest=out/<name>,tar=false
    /// CTX` as `user`, with a clean environment plus `env`.
    fn command(&self, user: &str, name: &str, extra: &[&str]) -> std::process::Command {
        let dest = self.path("out").join(name);
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            format!("--reuid={user}"),
            format!("--regid={user}"),
            "--init-groups".to_string(),
            "--".to_string(),
        ])
        .arg(self.path("kiln"))
        .args(["build", "--progress=plain", "--root"])
        .arg(self.path("root"))
        .args(extra)
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
        .env("NO_COLOR", "1");
        cmd
    }

    /// `kiln build` as `user` with `env`, writing the image as an OCI dir `out/<name>`.
    fn build_as(&self, user: &str, name: &str, env: &[(&str, &str)]) -> Image {
        self.build_as_with(user, name, env, &[])
    }

    /// [`UserDirs::build_as`] with extra `kiln build` arguments.
    fn build_as_with(&self, user: &str, name: &str, env: &[(&str, &str)], extra: &[&str]) -> Image {
        let dest = self.path("out").join(name);
        let mut cmd = assert_cmd::Command::from_std(self.command(user, name, extra));
        cmd.timeout(TIMEOUT);
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
    let (uid, gid) = ensure_user(RANGED_USER);
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
    let (uid, gid) = ensure_user(RANGED_USER);
    let f = multi_stage_fixture();
    let reference = layers(&root_build(&f));
    check_reference(&reference);
    let dirs = UserDirs::new(&f, uid, gid);
    let image = dirs.build_as(RANGED_USER, "copy", &[("KILN_SNAPSHOTTER", "copy")]);
    assert_same_layers("rootless copy snapshotter", &reference, &layers(&image));
}

#[test]
fn rootless_single_id_mapping_builds_run_and_copy() {
    let (uid, gid) = ensure_user(SINGLE_USER);
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

/// What a RUN sees of its namespace and root filesystem.
fn sandbox_view(user: &str, uid: u32, gid: u32, env: &[(&str, &str)]) -> (String, String) {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN cat /proc/self/uid_map > /map && grep ' / ' /proc/self/mountinfo > /rootmount \\\n\
          && grep ' /sys ' /proc/self/mountinfo > /sysmount\n",
    );
    let dirs = UserDirs::new(&f, uid, gid);
    let image = dirs.build_as(user, "view", env);
    let text =
        |p: &str| String::from_utf8_lossy(&image.file(p).expect("layers").expect(p)).into_owned();
    let sys = text("sysmount");
    assert!(
        sys.contains(" ro") && sys.contains("sysfs"),
        "/sys is a read-only sysfs (the host's, bound): {sys}"
    );
    (text("map"), text("rootmount"))
}

#[test]
fn rootless_run_is_in_the_user_namespace_on_overlay_with_userxattr() {
    let (uid, gid) = ensure_user(RANGED_USER);
    let (map, root) = sandbox_view(RANGED_USER, uid, gid, &[]);
    let lines: Vec<Vec<String>> = map
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["0".to_string(), uid.to_string(), "1".to_string()],
            vec!["1".to_string(), "200000".to_string(), "65536".to_string()],
        ],
        "0 → the user, 1.. → the subordinate range"
    );
    assert!(
        root.contains(" - overlay ") && root.contains("userxattr"),
        "the rootfs is overlay mounted with userxattr: {root}"
    );
}

#[test]
fn rootless_copy_snapshotter_is_used_when_asked() {
    let (uid, gid) = ensure_user(RANGED_USER);
    let (_, root) = sandbox_view(RANGED_USER, uid, gid, &[("KILN_SNAPSHOTTER", "copy")]);
    assert!(
        !root.contains(" - overlay "),
        "KILN_SNAPSHOTTER=copy: the rootfs is a bind of a copy, not overlay: {root}"
    );
}

/// Kills the whole process group of a spawned build when dropped.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Starts a rootless build whose RUN sleeps, sends `signal` to the kiln process outside the
/// namespace once the sleep runs, and checks that kiln exits within 5 s and nothing is left
/// (the namespace child dies with its parent).
fn rootless_interrupt(signal: Signal, secs: &str) {
    let (uid, gid) = ensure_user(RANGED_USER);
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!("FROM @BASE@\nRUN echo started; sleep {secs}\n"),
    );
    let dirs = UserDirs::new(&f, uid, gid);
    let kiln = dirs.path("kiln");
    let log = std::fs::File::create(dirs.path("kiln.log")).expect("log");
    let mut cmd = dirs.command(RANGED_USER, "never", &[]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .process_group(0);
    let mut group = Group(cmd.spawn().expect("spawn setpriv kiln"));
    let kiln_log = || std::fs::read_to_string(dirs.path("kiln.log")).unwrap_or_default();
    let sleep = ["sleep", secs];
    let deadline = Instant::now() + Duration::from_secs(180);
    while pids_running(&sleep).is_empty() {
        if let Some(status) = group.0.try_wait().expect("try_wait") {
            panic!(
                "kiln exited ({status}) before the RUN started:\n{}",
                kiln_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "RUN never started:\n{}",
            kiln_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // setpriv execs kiln: the spawned pid is kiln's outer process.
    let outer = Pid::from_raw(i32::try_from(group.0.id()).expect("pid"));
    kill(outer, signal).expect("signal kiln");
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = group.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "kiln still running 5s after {signal}:\n{}",
            kiln_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "an interrupted build must not succeed");
    let exe = kiln.display().to_string();
    let left = || -> Vec<u32> {
        let mut p = pids_running(&sleep);
        p.extend(
            std::fs::read_dir("/proc")
                .expect("read /proc")
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/exe"))
                        .is_ok_and(|e| e.display().to_string() == exe)
                }),
        );
        p
    };
    let gone = Instant::now() + Duration::from_secs(2);
    while !left().is_empty() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        left(),
        Vec::<u32>::new(),
        "processes survived kiln:\n{}",
        kiln_log()
    );
    if signal != Signal::SIGKILL {
        assert!(
            kiln_log().contains("build canceled"),
            "the namespace child got the signal and cancelled:\n{}",
            kiln_log()
        );
    }
}

#[test]
fn rootless_sigterm_is_forwarded_and_cancels_the_build() {
    rootless_interrupt(Signal::SIGTERM, "1043");
}

#[test]
fn rootless_kill_9_leaves_no_process() {
    rootless_interrupt(Signal::SIGKILL, "1047");
}

#[test]
fn rootless_run_mounts_and_network_none_match_the_root_build() {
    let (uid, gid) = ensure_user(RANGED_USER);
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@ AS src\n\
         RUN mkdir /data && echo s > /data/s\n\
         FROM @BASE@\n\
         RUN --mount=type=bind,from=src,source=/data,target=/mnt/data cat /mnt/data/s > /from-stage\n\
         RUN --mount=type=bind,target=/ctx cat /ctx/ctx.txt > /from-ctx\n\
         RUN --mount=type=cache,target=/var/cache/app,uid=1000 \\\n\
          stat -c %u /var/cache/app > /cache-owner && echo c > /var/cache/app/c\n\
         RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /tmpfs\n\
         RUN --mount=type=secret,id=tok,env=TOKEN echo ${#TOKEN} > /secret-len\n\
         RUN --network=none cat /sys/class/net/lo/operstate > /net\n",
    );
    f.write("ctx.txt", "context\n");
    let secret = ["--secret", "id=tok,env=TOK"];
    let dest = f.out("root");
    let d = format!("type=oci,dest={},tar=false", dest.display());
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--progress=plain", "--root"])
        .arg(f.root())
        .args(secret)
        .args(["-o", &d])
        .arg(f.ctx())
        .env("TOK", "twelve chars")
        .env("NO_COLOR", "1")
        .timeout(TIMEOUT)
        .output()
        .expect("run kiln");
    Outcome {
        args: vec!["(root) build".into()],
        output: out,
    }
    .ok();
    let root = Image::from_oci_dir(&dest).expect("read OCI dir");
    let text = |i: &Image, p: &str| {
        String::from_utf8_lossy(&i.file(p).expect("layers").expect(p)).into_owned()
    };
    for (p, want) in [
        ("from-stage", "s\n"),
        ("from-ctx", "context\n"),
        ("cache-owner", "1000\n"),
        ("tmpfs", "t\n"),
        ("secret-len", "12\n"),
    ] {
        assert_eq!(text(&root, p), want, "{p}");
    }
    let reference = layers(&root);
    let dirs = UserDirs::new(&f, uid, gid);
    for (name, env) in [
        ("overlay", vec![("TOK", "twelve chars")]),
        (
            "copy",
            vec![("TOK", "twelve chars"), ("KILN_SNAPSHOTTER", "copy")],
        ),
    ] {
        let image = dirs.build_as_with(RANGED_USER, name, &env, &secret);
        assert_same_layers(&format!("rootless {name}"), &reference, &layers(&image));
    }
}
