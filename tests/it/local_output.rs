//! `-o type=local,dest=DIR`, the `-o DIR` shorthand and `-o type=tar,dest=FILE`: the final
//! stage's filesystem itself (layers flattened: deletions applied), as buildx writes it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::Fixture;

const DOCKERFILE: &str = "FROM @BASE@ AS build\n\
    RUN mkdir -p /out && echo built > /out/app && chmod 750 /out/app && chown 1000:33 /out/app\n\
    FROM @BASE@\n\
    COPY --from=build /out/app /usr/local/bin/app\n\
    RUN rm /etc/group && mkdir -p /var/empty && ln -s /usr/local/bin/app /app\n";

fn check_tree(root: &Path) {
    let app = root.join("usr/local/bin/app");
    assert_eq!(std::fs::read_to_string(&app).expect("app"), "built\n");
    let m = std::fs::metadata(&app).expect("stat");
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 1000, 33));
    assert!(root.join("bin/busybox").is_file(), "base layer content");
    assert!(
        std::fs::symlink_metadata(root.join("etc/group")).is_err(),
        "a file deleted by a RUN must not be in the output"
    );
    assert!(root.join("etc/passwd").is_file());
    assert!(root.join("var/empty").is_dir());
    assert_eq!(
        std::fs::read_link(root.join("app")).expect("symlink"),
        Path::new("/usr/local/bin/app")
    );
}

#[test]
fn local_output_is_the_flattened_filesystem() {
    let f = Fixture::empty();
    f.write("Dockerfile", DOCKERFILE);
    let dir = f.out("local");
    // buildx keeps what the destination already holds where the image has nothing.
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("mine.txt"), "kept").expect("write");
    f.build(&["-o", &format!("type=local,dest={}", dir.display())])
        .ok();
    check_tree(&dir);
    assert_eq!(
        std::fs::read_to_string(dir.join("mine.txt")).expect("kept"),
        "kept"
    );
    // No scratch directory is left next to the destination.
    let leftovers: Vec<_> = std::fs::read_dir(dir.parent().expect("parent"))
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".kiln-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // `-o DIR` is short for type=local.
    let short = f.out("short");
    f.build(&["-o", &short.display().to_string()]).ok();
    check_tree(&short);
}

#[test]
fn tar_output_holds_the_filesystem() {
    let f = Fixture::empty();
    f.write("Dockerfile", DOCKERFILE);
    let file = f.out("fs.tar");
    f.build(&["-o", &format!("type=tar,dest={}", file.display())])
        .ok();
    let mut archive = tar::Archive::new(std::fs::File::open(&file).expect("open tar"));
    let mut names = Vec::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        if name == "usr/local/bin/app" {
            let h = entry.header();
            assert_eq!(h.mode().expect("mode") & 0o7777, 0o750);
            assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (1000, 33));
        }
        names.push(name);
    }
    assert!(names.contains(&"bin/busybox".to_string()), "{names:?}");
    assert!(names.contains(&"usr/local/bin/app".to_string()));
    assert!(names.contains(&"app".to_string()));
    assert!(!names.contains(&"etc/group".to_string()));
    // Unpacked, it is the same tree as the local output.
    let unpacked = f.out("unpacked");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    let mut archive = tar::Archive::new(std::fs::File::open(&file).expect("open tar"));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.unpack(&unpacked).expect("unpack");
    check_tree(&unpacked);
}
