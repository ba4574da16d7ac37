//! `kiln-testbed`: the test bed for shell scripts.
//!
//! `kiln-testbed registry [REF_FILE]` starts a loopback registry, pushes the busybox base image
//! (OCI manifest, Docker schema 2 and index variants), prints their references (one per line,
//! the OCI one first) to stdout and to REF_FILE if given, then runs until killed. The registry
//! stops and its data is removed when this process dies (kill it by pid).

use std::io::Write;

use kiln_testsupport::{
    busybox_image, busybox_image_docker, busybox_image_index, Registry, RegistryAuth,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("registry") || args.len() > 2 {
        eprintln!("usage: kiln-testbed registry [REF_FILE]");
        std::process::exit(2);
    }
    let result = (|| -> kiln_testsupport::Result<(Registry, Vec<String>)> {
        let registry = Registry::start(RegistryAuth::None)?;
        let refs = vec![
            busybox_image(&registry)?,
            busybox_image_docker(&registry)?,
            busybox_image_index(&registry)?,
        ];
        Ok((registry, refs))
    })();
    let (_registry, refs) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kiln-testbed: {e}");
            std::process::exit(1);
        }
    };
    let text = refs.join("\n") + "\n";
    if let Some(path) = args.get(1) {
        // Write then rename, so a script polling for the file never reads half of it.
        let tmp = format!("{path}.tmp");
        if let Err(e) = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path)) {
            eprintln!("kiln-testbed: write {path}: {e}");
            std::process::exit(1);
        }
    }
    print!("{text}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
