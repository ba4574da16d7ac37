//! The RUN sandbox and scheduler: concurrent stages, cancellation, network isolation, and a
//! long Dockerfile.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_testsupport::Image;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::{mounts_mentioning, pids_running, Fixture};

fn seconds(image: &Image, path: &str) -> f64 {
    let bytes = image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("{path} missing"));
    let text = String::from_utf8_lossy(&bytes);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let f = Fixture::case("parallel");
    let image = f.build_oci("out", &[]).0;
    let (a0, a1) = (seconds(&image, "a.start"), seconds(&image, "a.end"));
    let (b0, b1) = (seconds(&image, "b.start"), seconds(&image, "b.end"));
    assert!(
        a1 - a0 >= 1.9 && b1 - b0 >= 1.9,
        "each RUN sleeps 2s: a {a0}..{a1}, b {b0}..{b1}"
    );
    assert!(
        a0.max(b0) < a1.min(b1),
        "stage RUNs did not overlap: a {a0}..{a1}, b {b0}..{b1}"
    );
}

#[test]
fn sigint_during_run_stops_everything_and_leaves_no_mounts() {
    interrupted_run_leaves_nothing(Signal::SIGINT, "1037");
}

#[test]
fn kill_9_during_run_leaves_no_process_and_no_mount() {
    // kiln gets no chance to clean up: the sandbox must die with it (PDEATHSIG + pid namespace)
    // and its mounts must vanish with its private mount namespace.
    interrupted_run_leaves_nothing(Signal::SIGKILL, "1039");
}

/// Starts a build whose RUN sleeps, sends `signal` to kiln once the sleep runs, and checks
/// that kiln exits within 5 s, no sleep survives, no mount is left and the store still works.
fn interrupted_run_leaves_nothing(signal: Signal, secs: &str) {
    let sleep: [&str; 2] = ["sleep", secs];
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!("FROM @BASE@\nRUN echo started; sleep {secs}\n"),
    );
    let mounts_before = mounts_mentioning(&f.root());
    let log = std::fs::File::create(f.out("kiln.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--progress=plain", "--root"])
        .arg(f.root())
        .arg("-o")
        .arg(format!("type=oci,dest={}", f.out("never.tar").display()))
        .arg(f.ctx())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn kiln");
    let kiln_log = || std::fs::read_to_string(f.out("kiln.log")).unwrap_or_default();

    // Wait until the RUN's `sleep 1037` is running.
    let deadline = Instant::now() + Duration::from_secs(180);
    while pids_running(&sleep).is_empty() {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "kiln exited ({status}) before the RUN started:\n{}",
                kiln_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "RUN sleep {secs} never started:\n{}",
            kiln_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, signal).expect("send the signal");
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kiln still running 5s after {signal}:\n{}", kiln_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !status.success(),
        "an interrupted build must not report success"
    );
    assert!(!kiln_log().contains("panicked"), "{}", kiln_log());

    // The sandbox's processes die with it (allow the kernel a moment to reap the namespace).
    let gone = Instant::now() + Duration::from_secs(2);
    while !pids_running(&sleep).is_empty() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pids_running(&sleep),
        Vec::<u32>::new(),
        "`sleep {secs}` survived kiln"
    );
    assert_eq!(
        mounts_mentioning(&f.root()),
        mounts_before,
        "mounts left behind under --root"
    );

    // The store is still usable.
    f.write("Dockerfile", "FROM @BASE@\nRUN echo after > /after\n");
    let image = f.build_oci("after", &[]).0;
    assert_eq!(
        image.file("after").expect("read layers").as_deref(),
        Some(&b"after\n"[..])
    );
}

/// Interface names listed in a /proc/net/dev dump.
fn interfaces(dump: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(dump)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

#[test]
fn network_none_sees_only_loopback() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN cat /proc/net/dev > /netdev\n",
    );
    let image = f.build_oci("none", &["--network", "none"]).0;
    let dump = image
        .file("netdev")
        .expect("read layers")
        .expect("/netdev in the image");
    assert_eq!(
        interfaces(&dump),
        vec!["lo".to_string()],
        "{}",
        String::from_utf8_lossy(&dump)
    );

    // The default network is the host's (as BuildKit without CNI): it shows the host's interfaces.
    let host = interfaces(&std::fs::read("/proc/net/dev").expect("read /proc/net/dev"));
    let image = f.build_oci("default", &["--network", "default"]).0;
    let dump = image
        .file("netdev")
        .expect("read layers")
        .expect("/netdev in the image");
    let mut seen = interfaces(&dump);
    seen.sort();
    let mut host_sorted = host.clone();
    host_sorted.sort();
    assert_eq!(
        seen, host_sorted,
        "--network default should share the host's network"
    );
}

#[test]
fn dockerfile_with_150_steps_builds() {
    const STEPS: usize = 150;
    let f = Fixture::empty();
    let mut dockerfile = String::from("FROM @BASE@\n");
    for i in 1..=STEPS {
        dockerfile.push_str(&format!("RUN echo {i} > /step-{i}\n"));
    }
    f.write("Dockerfile", &dockerfile);
    let image = f.build_oci("out", &[]).0;
    let entries = image.entries().expect("read layers");
    for i in 1..=STEPS {
        let path = format!("step-{i}");
        let e = entries
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("/{path} missing"));
        assert_eq!(e.content, format!("{i}\n").into_bytes(), "/{path}");
    }
    image
        .check_diff_ids()
        .expect("diff_ids match layers and history");
    assert!(
        image.layers.len() > STEPS,
        "one layer per RUN on top of the base: {}",
        image.layers.len()
    );
}

#[test]
fn the_same_layer_twice_in_a_stack_mounts() {
    // Two identical COPY steps give one layer twice; overlayfs refuses a repeated lower dir
    // (ELOOP), so the RUN after them only works when the stack is de-duplicated.
    let f = Fixture::empty();
    f.write("f", "same\n");
    f.write(
        "Dockerfile",
        "FROM @BASE@\nCOPY f /t/\nCOPY f /t/\nRUN cat /t/f > /seen\n",
    );
    let image = f.build_oci("twice", &[]).0;
    assert_eq!(
        image.file("seen").expect("read layers").as_deref(),
        Some(&b"same\n"[..])
    );
}

/// 6.11: the sandbox hostname defaults to `buildkitsandbox` (in /etc/hostname and
/// /etc/hosts too); `--build-arg BUILDKIT_SANDBOX_HOSTNAME` changes it and the RUN's cache key.
#[test]
fn sandbox_hostname_default_and_build_arg() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN hostname > /h; cat /etc/hostname > /eh; grep -c \"$(hostname)\" /etc/hosts > /hosts\n",
    );
    let text = |image: &Image, p: &str| {
        String::from_utf8(image.file(p).expect("read").expect(p)).expect("utf8")
    };
    let image = f.build_oci("default", &[]).0;
    assert_eq!(text(&image, "h"), "buildkitsandbox\n");
    assert_eq!(text(&image, "eh"), "buildkitsandbox\n");
    assert_eq!(text(&image, "hosts"), "1\n");
    let image = f
        .build_oci(
            "custom",
            &["--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=kiln-box"],
        )
        .0;
    assert_eq!(
        text(&image, "h"),
        "kiln-box\n",
        "a new name re-runs the RUN"
    );
    assert_eq!(text(&image, "eh"), "kiln-box\n");
    assert_eq!(text(&image, "hosts"), "1\n");
}
