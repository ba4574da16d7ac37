//! RUN in the sandbox.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_ir::{ExecIo, NetworkMode, Worker, WorkerError};

use crate::fixture::{mountinfo, pids_with_cmdline, tar_of, Fixture, Logs};

#[test]
fn output_and_exit_codes() {
    let fx = Fixture::new();
    let (r, logs) = fx.run_op(
        &fx.base,
        &Fixture::op(&["sh", "-c", "echo hello; echo oops >&2; exit 3"]),
    );
    match r {
        Err(WorkerError::ExitCode {
            command,
            code,
            tail,
        }) => {
            assert_eq!(command, "sh -c echo hello; echo oops >&2; exit 3");
            assert_eq!(code, 3);
            assert!(
                tail.contains(&"hello".to_string()) && tail.contains(&"oops".to_string()),
                "{tail:?}"
            );
        }
        other => panic!("expected exit code 3, got {other:?}"),
    }
    assert_eq!(logs.stream(1), "hello\n");
    assert_eq!(logs.stream(2), "oops\n");

    // Killed by a signal: 128+n.
    let (r, _) = fx.run_op(&fx.base, &Fixture::op(&["sh", "-c", "kill -9 $$"]));
    assert!(
        matches!(r, Err(WorkerError::ExitCode { code: 137, .. })),
        "{r:?}"
    );

    // Nothing changed: no layer.
    assert_eq!(
        fx.run_op(&fx.base, &Fixture::op(&["true"])).0.unwrap(),
        None
    );

    let (r, _) = fx.run_op(&fx.base, &Fixture::op(&["no-such-tool"]));
    let msg = format!("{}", r.unwrap_err());
    assert!(msg.contains("executable file not found in $PATH"), "{msg}");
}

#[test]
fn env_cwd_and_user() {
    let fx = Fixture::new();
    let mut op = Fixture::op(&[
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G; echo $HOME; umask",
    ]);
    op.env.push("FOO=bar baz".into());
    op.cwd = "/work/dir".into();
    op.user = "app".into();
    let (r, logs) = fx.run_op(&fx.base, &op);
    let layer = r.unwrap().expect("the created cwd is a change");
    assert_eq!(
        logs.stream(1),
        "bar baz\n/work/dir\n1000\n1000\n1000 50\n/home/app\n0022\n"
    );
    let entries = fx.entries(&layer);
    assert!(entries.contains_key("work/dir"), "{:?}", entries.keys());

    let mut op = Fixture::op(&["sh", "-c", "id -u; id -g; echo $HOME"]);
    op.user = "4242:77".into();
    let (r, logs) = fx.run_op(&fx.base, &op);
    r.unwrap();
    assert_eq!(logs.stream(1), "4242\n77\n/\n");

    let mut op = Fixture::op(&["id", "-u"]);
    op.user = "ghost".into();
    let msg = fx.run_op(&fx.base, &op).0.unwrap_err().to_string();
    assert!(msg.contains("unable to find user ghost"), "{msg}");
}

#[test]
fn changes_become_layer_entries_with_whiteouts_and_no_stubs() {
    let fx = Fixture::new();
    let (r, _) = fx.run_op(
        &fx.base,
        &Fixture::op(&[
            "sh",
            "-c",
            "echo hi > /tmp/new; rm /etc/group; cat /etc/hosts > /tmp/hosts",
        ]),
    );
    let layer = r.unwrap().unwrap();
    let entries = fx.entries(&layer);
    assert_eq!(entries["tmp/new"].data, b"hi\n");
    assert!(
        entries.contains_key("etc/.wh.group"),
        "{:?}",
        entries.keys()
    );
    for stub in [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        assert!(
            !entries.contains_key(stub),
            "stub {stub} in layer: {:?}",
            entries.keys()
        );
    }
    let hosts = String::from_utf8_lossy(&entries["tmp/hosts"].data).into_owned();
    assert!(
        hosts.contains("127.0.0.1\tlocalhost buildkitsandbox"),
        "{hosts}"
    );

    // The upper dir became the layer's snapshot: the next RUN sees the change.
    let stack = fx.with(&layer);
    assert_eq!(
        fx.sh_on(&stack, "cat /tmp/new; ls /etc"),
        "hi\nhostname\nhosts\npasswd\nresolv.conf\n"
    );

    // Writing next to the bind-mounted /etc files leaves only the real change.
    let layer = fx
        .run_op(&fx.base, &Fixture::op(&["sh", "-c", "echo x > /etc/fresh"]))
        .0
        .unwrap()
        .unwrap();
    let keys: Vec<String> = fx.entries(&layer).into_keys().collect();
    assert_eq!(keys, ["etc", "etc/fresh"]);
    // No run dirs or temp dirs are left behind.
    let runs = fx.root.path().join("kiln/runs");
    assert_eq!(std::fs::read_dir(runs).unwrap().count(), 0);
    let tmp: Vec<_> = std::fs::read_dir(fx.root.path().join("kiln/snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(tmp.is_empty());
}

#[test]
fn network_none_has_only_loopback_and_hostname() {
    let fx = Fixture::new();
    let mut op = Fixture::op(&["cat", "/proc/net/dev"]);
    op.network = NetworkMode::None;
    let (r, logs) = fx.run_op(&fx.base, &op);
    r.unwrap();
    let ifaces: Vec<String> = logs
        .stream(1)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    assert_eq!(ifaces, ["lo"]);
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count()
        - 2;
    let (_, logs) = fx.run_op(&fx.base, &Fixture::op(&["cat", "/proc/net/dev"]));
    assert_eq!(
        logs.stream(1).lines().count() - 2,
        host_ifaces,
        "host network is shared"
    );
    assert_eq!(
        fx.sh("hostname; cat /etc/hostname"),
        "buildkitsandbox\nbuildkitsandbox\n"
    );
}

#[test]
fn isolation_pids_mounts_capabilities() {
    let fx = Fixture::new();
    let mut host_sleep = std::process::Command::new("sleep")
        .arg("31337")
        .spawn()
        .unwrap();
    let ps = fx.sh("ps");
    let _ = host_sleep.kill();
    let _ = host_sleep.wait();
    assert!(!ps.contains("31337"), "{ps}");
    let first_pid = ps
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(first_pid, "1", "{ps}");

    let allowed = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
    ];
    let mounts = fx.sh("cat /proc/mounts");
    for line in mounts.lines() {
        let point = line.split_whitespace().nth(1).unwrap();
        assert!(
            allowed.contains(&point),
            "unexpected mount {point} in sandbox:\n{mounts}"
        );
    }
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("sysfs /sys sysfs ro,")),
        "{mounts}"
    );

    let status = fx.sh("grep Cap /proc/self/status");
    for set in ["CapBnd", "CapEff", "CapPrm", "CapInh"] {
        assert!(
            status.contains(&format!("{set}:\t00000000a80425fb")),
            "{set}: {status}"
        );
    }
    assert!(status.contains("CapAmb:\t0000000000000000"), "{status}");
    assert!(fx
        .sh("grep NoNewPrivs /proc/self/status")
        .contains("NoNewPrivs:\t0"));
}

#[test]
fn cancellation_kills_the_tree_and_leaves_no_mounts() {
    let fx = Fixture::new();
    let before = mountinfo();
    let cancel = Arc::new(AtomicBool::new(false));
    let logs = Logs::default();
    let io = ExecIo {
        node: 0,
        progress: &logs,
        cancel: Arc::clone(&cancel),
    };
    let flag = Arc::clone(&cancel);
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        flag.store(true, Ordering::SeqCst);
        Instant::now()
    });
    let op = Fixture::op(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let r = fx.exec.exec(&fx.base, &op, &[], &io);
    let cancelled_at = setter.join().unwrap();
    assert!(matches!(r, Err(WorkerError::Cancelled)), "{r:?}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(1);
    while !pids_with_cmdline(&["sleep", "1000"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "sleep 1000 survived the cancellation"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mountinfo(), before);
    assert_eq!(
        std::fs::read_dir(fx.root.path().join("kiln/runs"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn one_hundred_fifty_lower_layers() {
    let fx = Fixture::new();
    let mut stack = fx.base.clone();
    for i in 0..150 {
        let name = format!("layer{i:03}");
        let tar = tar_of(&[(name.as_str(), Some(name.as_bytes()))]);
        stack.push(fx.add_layer(&tar));
    }
    let out = fx.sh_on(&stack, "cat /layer000 /layer149; ls / | grep -c layer");
    assert_eq!(out, "layer000layer149150\n");
}

#[test]
fn file_mounts_are_read_only_scripts_outside_the_layer() {
    let fx = Fixture::new();
    let mut op = Fixture::op(&["/dev/pipes/EOF"]);
    op.mounts.push(kiln_ir::ExecMount::File {
        target: "/dev/pipes/EOF".into(),
        data: "#!/bin/sh\necho from script\necho written > /out\necho x >> \"$0\" || echo ro\n"
            .into(),
        mode: 0o755,
    });
    let (r, logs) = fx.run_op(&fx.base, &op);
    let layer = r.unwrap().expect("/out is a change");
    assert_eq!(logs.stream(1), "from script\nro\n");
    let entries = fx.entries(&layer);
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        vec!["out"],
        "only the script's own change is in the layer"
    );
}
