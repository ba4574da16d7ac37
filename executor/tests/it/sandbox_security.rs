//! The RUN sandbox's capabilities, seccomp filter and `--security=insecure`.

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_executor::Entitlements;
use kiln_ir::{ExecOp, LayerRef, SecurityMode, WorkerError};

use crate::fixture::Fixture;

/// A static probe that makes syscalls busybox has no applet for and prints
/// `name=<errno>` (0 on success), or its effective uid.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc) { printf("%s=%d\n", name, rc < 0 ? errno : 0); }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "euid") == 0) {
        printf("euid=%d uid=%d\n", (int)geteuid(), (int)getuid());
        return 0;
    }
    errno = 0;
    report("clone3", syscall(435, (void *)0, (size_t)0));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1 /* thread */, 0));
    report("add_key", syscall(SYS_add_key, "user", "kiln", "x", 1, -2 /* process */));
    report("mount", mount("none", "/tmp", "tmpfs", 0, ""));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("personality_bad", syscall(SYS_personality, 0x0400000));
    report("personality_query", syscall(SYS_personality, 0xffffffffUL));
    report("chroot", chroot("/"));
    fflush(stdout);
    return 0;
}
"#;

/// The probe binary, compiled once with the host's gcc (`-static`, so it runs on the busybox
/// rootfs).
fn probe_binary() -> &'static [u8] {
    static BIN: OnceLock<Vec<u8>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("probe.c");
        let out: PathBuf = dir.path().join("probe");
        std::fs::write(&src, PROBE_C).unwrap();
        let status = std::process::Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("this test needs gcc with a static libc (libc6-dev) to build its probe");
        assert!(status.success(), "gcc -static failed to build the probe");
        std::fs::read(&out).unwrap()
    })
}

/// A layer with `/bin/probe` (setuid root when `setuid`).
fn probe_layer(fx: &Fixture, setuid: bool) -> LayerRef {
    let bin = probe_binary();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/probe").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(if setuid { 0o4755 } else { 0o755 });
    h.set_size(bin.len() as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, bin).unwrap();
    fx.add_layer(&b.into_inner().unwrap())
}

fn insecure(args: &[&str]) -> ExecOp {
    let mut op = Fixture::op(args);
    op.security = SecurityMode::Insecure;
    op
}

fn allow_insecure() -> Fixture {
    Fixture::with_allow(Entitlements {
        insecure: true,
        network_host: false,
    })
}

/// `key=value` lines of the probe's output.
fn probe_results(out: &str) -> std::collections::BTreeMap<String, i32> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap()))
        .collect()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} missing from\n{status}"))
        .trim()
        .to_string()
}

#[test]
fn default_capabilities_seccomp_and_no_new_privs() {
    let fx = Fixture::new();
    let status = fx.sh("cat /proc/self/status");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapPrm"), "00000000a80425fb");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    // Two filters: the allowlist and the clone3 → ENOSYS one.
    assert_eq!(status_field(&status, "Seccomp_filters"), "2");
}

#[test]
fn blocked_syscalls_fail_like_docker() {
    let fx = Fixture::new();
    let layers = fx.with(&probe_layer(&fx, false));
    let out = fx.sh_on(&layers, "probe");
    let r = probe_results(&out);
    let (eperm, enosys) = (libc::EPERM, libc::ENOSYS);
    assert_eq!(r["clone3"], enosys, "{out}");
    assert_eq!(r["keyctl"], eperm, "{out}");
    assert_eq!(r["add_key"], eperm, "{out}");
    assert_eq!(r["mount"], eperm, "{out}");
    assert_eq!(r["unshare_user"], eperm, "{out}");
    assert_eq!(r["personality_bad"], eperm, "{out}");
    assert_eq!(r["personality_query"], 0, "{out}");
    // CAP_SYS_CHROOT is in Docker's default set, so chroot is allowed.
    assert_eq!(r["chroot"], 0, "{out}");

    // busybox's unshare applet (unshare(CLONE_NEWUSER)) fails too.
    let (res, logs) = fx.run_op(
        &fx.base,
        &Fixture::op(&["busybox", "unshare", "-U", "true"]),
    );
    assert!(
        matches!(res, Err(WorkerError::ExitCode { .. })),
        "unshare -U succeeded: {res:?} {}",
        logs.stream(2)
    );
    assert!(
        logs.stream(2).contains("Operation not permitted"),
        "{}",
        logs.stream(2)
    );
}

#[test]
fn setuid_programs_work_without_no_new_privs() {
    let fx = Fixture::new();
    let layers = fx.with(&probe_layer(&fx, true));
    let mut op = Fixture::op(&["probe", "euid"]);
    op.user = "app".into();
    let (r, logs) = fx.run_op(&layers, &op);
    r.unwrap();
    assert_eq!(logs.stream(1), "euid=0 uid=1000\n");
}

#[test]
fn busybox_tools_work_under_the_filter() {
    let fx = Fixture::new();
    let out = fx.sh(
        "set -e; busybox mkdir -p /work/d; cd /work; echo hi > d/f; busybox cp -a d e; \
         busybox chmod 0640 e/f; busybox chown 1000:1000 e/f; busybox ls -ln e; id -u; \
         sleep 0.1 & wait; ps -o pid,comm | busybox wc -l; busybox stat -c %a e/f; \
         busybox touch -d @0 e/f; busybox find /work -type f | busybox sort; \
         busybox tar -cf /tmp/t.tar -C /work e; busybox tar -tf /tmp/t.tar | busybox sort; \
         busybox ln -s e /work/link; busybox readlink /work/link; busybox rm -rf /work",
    );
    assert!(out.contains("1000     1000"), "{out}");
    for want in [
        "\n0\n",
        "640\n",
        "/work/d/f\n/work/e/f\n",
        "e/\ne/f\n",
        "\ne\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

#[test]
fn insecure_needs_the_entitlement() {
    let fx = Fixture::new();
    let (r, _) = fx.run_op(&fx.base, &insecure(&["true"]));
    match r {
        Err(WorkerError::Other(m)) => assert_eq!(m, "security.insecure is not allowed"),
        other => panic!("expected the entitlement error, got {other:?}"),
    }
}

#[test]
fn insecure_gets_every_capability_and_no_filter() {
    let fx = allow_insecure();
    let (r, logs) = fx.run_op(&fx.base, &insecure(&["cat", "/proc/self/status"]));
    r.unwrap();
    let status = logs.stream(1);
    // Every capability kiln has (here: the test process's bounding set).
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let want = status_field(&ours, "CapBnd");
    assert_ne!(want, "00000000a80425fb");
    assert_eq!(status_field(&status, "CapBnd"), want);
    assert_eq!(status_field(&status, "CapEff"), want);
    assert_eq!(status_field(&status, "Seccomp"), "0");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");

    let (r, logs) = fx.run_op(&fx.base, &insecure(&["busybox", "unshare", "-U", "true"]));
    assert!(r.is_ok(), "{r:?} {}", logs.stream(2));

    let layers = fx.with(&probe_layer(&fx, false));
    let (r, logs) = fx.run_op(&layers, &insecure(&["probe"]));
    r.unwrap();
    let out = logs.stream(1);
    let res = probe_results(&out);
    assert_ne!(res["clone3"], libc::ENOSYS, "{out}");
    // keyctl/add_key reach the kernel (whatever it answers, it is not the filter's EPERM).
    assert_ne!(res["keyctl"], libc::EPERM, "{out}");
    assert_eq!(res["add_key"], 0, "{out}");
    assert_eq!(res["mount"], 0, "{out}");

    // The same fixture still filters RUNs that do not ask.
    let status = fx.sh("cat /proc/self/status");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
}
