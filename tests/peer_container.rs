//! The container image, built and run here: samples/container/build.sh
//! builds it with buildah (vfs storage in a temp dir, no registry), from
//! this build's pushkit binary. The test checks the image's config (user
//! 65532, port 9529, the entrypoint, the data volume), runs it with
//! `buildah run --isolation chroot` as user 65532 (`--version`, then the
//! agent: a push into it, `/metrics` read back, its process's uid), and
//! runs it once more from `buildah mount`'s tree under
//! `bwrap --ro-bind`, a read-only root with only /var/lib/pushkit
//! writable: pushkit needs nothing else (buildah 1.28's `run` cannot make
//! the root read-only).
//!
//! Inside the image pushkit listens on every interface; here `ENV_HTTP_LISTEN`
//! moves it to a free loopback port (buildah's chroot isolation shares the
//! host's network).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// Waits for the agent on `port`, pushes a group, reads it back from
/// `/metrics`, and returns the uids of its process.
fn push_and_read(port: u16, marker: &str, guard: &mut ChildGuard) -> String {
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    wait_for(
        "pushkit in the image to be ready",
        Duration::from_secs(60),
        || {
            guard.assert_running();
            get(&ready).ok().filter(|r| r.status == 200)
        },
    );
    let url = format!("http://127.0.0.1:{port}/metrics/job/image_test/instance/c1");
    let r = http(
        "PUT",
        &url,
        &[],
        b"# TYPE from_image gauge\nfrom_image 42\n",
    )
    .expect("PUT");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = get(&format!("http://127.0.0.1:{port}/metrics"))
        .expect("GET")
        .text();
    assert!(
        text.lines()
            .any(|l| l == "from_image{instance=\"c1\",job=\"image_test\"} 42"),
        "{text}"
    );
    let pid = pushkit_pid(marker).expect("the image's pushkit process");
    uids(pid)
}

#[test]
#[ignore = "needs buildah and bubblewrap: run via .ci/run"]
fn the_image_builds_runs_as_nonroot_and_needs_no_writable_root() {
    let dir = tempfile::Builder::new()
        .prefix("pushkit-image-")
        .tempdir()
        .expect("temp dir");
    let buildah = Buildah::new(dir.path());
    buildah.build_image(env!("CARGO_BIN_EXE_pushkit"));

    // The image's config, as the Dockerfile's final stage has it.
    let inspect: serde_json::Value =
        serde_json::from_str(&buildah.run(&["inspect", "--type", "image", IMAGE])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert!(config["ExposedPorts"].get("9529/tcp").is_some(), "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(ENTRYPOINT),
        "{config}"
    );
    assert!(
        config["Volumes"].get("/var/lib/pushkit").is_some(),
        "{config}"
    );
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    for line in [
        "USER 65532:65532",
        "EXPOSE 9529",
        "VOLUME [\"/var/lib/pushkit\"]",
    ] {
        assert!(
            dockerfile.lines().any(|l| l == line),
            "Dockerfile lacks {line}"
        );
    }
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("the Dockerfile's ENTRYPOINT");
    let entrypoint: serde_json::Value = serde_json::from_str(entrypoint).unwrap();
    assert_eq!(entrypoint, serde_json::json!(ENTRYPOINT));

    let ctr = buildah.run(&["from", IMAGE]);
    let as_nonroot = |extra: &[&str], argv: &[&str]| {
        let mut args = vec!["run", "--isolation", "chroot", "--user", "65532:65532"];
        args.extend_from_slice(extra);
        args.push(&ctr);
        args.push("--");
        args.extend_from_slice(argv);
        buildah.cmd(&args)
    };
    let (status, out, err) = run_bounded(
        "pushkit --version in the image",
        as_nonroot(&[], &["/usr/local/bin/pushkit", "--version"]),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{status}\n{out}\n{err}");
    assert_eq!(out.trim(), format!("pushkit {}", env!("CARGO_PKG_VERSION")));

    // The agent, as the image runs it.
    let port = free_port();
    let listen = format!("ENV_HTTP_LISTEN=127.0.0.1:{port}");
    let _reaper = Reaper(listen.clone());
    let mut guard = spawn_logged(
        "buildah-run",
        as_nonroot(&["--env", &listen], ENTRYPOINT),
        dir.path(),
    );
    let ids = push_and_read(port, &listen, &mut guard);
    assert_eq!(
        ids, "65532 65532 65532 65532",
        "uids of pushkit in the image"
    );
    drop(guard);
    drop(_reaper);

    // A read-only root, with only the data volume writable.
    let tree = buildah.run(&["mount", &ctr]);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let port = free_port();
    let listen_addr = format!("127.0.0.1:{port}");
    let marker = format!("ENV_HTTP_LISTEN={listen_addr}");
    let _reaper = Reaper(marker.clone());
    let mut bwrap = Command::new(peer_binary("PUSHKIT_BWRAP", "/usr/bin/bwrap", "bubblewrap"));
    bwrap
        .args(["--ro-bind", &tree, "/"])
        .args(["--dev", "/dev", "--proc", "/proc"])
        .arg("--bind")
        .arg(&data)
        .arg("/var/lib/pushkit")
        .args(["--unshare-user", "--uid", "65532", "--gid", "65532"])
        .args(["--setenv", "ENV_HTTP_LISTEN", &listen_addr])
        .args(ENTRYPOINT);
    let mut guard = spawn_logged("bwrap", bwrap, dir.path());
    push_and_read(port, &marker, &mut guard);
    // It wrote its store, and only there.
    let store: Vec<String> = std::fs::read_dir(data.join("store"))
        .expect("the store's directory in the volume")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(store.iter().any(|n| n.starts_with("log-")), "{store:?}");
    drop(guard);
    drop(_reaper);
    buildah.run(&["umount", &ctr]);
    buildah.run(&["rm", &ctr]);
    buildah.run(&["rmi", IMAGE]);
}
