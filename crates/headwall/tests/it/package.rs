//! The Debian package (docs/operations.md, "Installing the Debian package"): `scripts/package`
//! builds it with cargo-deb from this build's binary; unpacked, the binary runs, the shipped
//! configuration checks and starts, the unit verifies, and lintian finds no error.

use std::path::Path;
use std::process::{Command, Output};

use headwall_testkit::ServeProcess;

use crate::{binary, repo_root};

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_deb_unpacks_to_a_binary_config_unit_man_pages_and_completions_that_work() {
    let built = run(
        Command::new(repo_root().join("scripts/package"))
            .arg("--binary")
            .arg(binary()),
        "scripts/package (cargo-deb)",
    );
    let deb = String::from_utf8_lossy(&built.stdout)
        .lines()
        .rev()
        .find(|line| line.ends_with(".deb"))
        .map(str::to_owned)
        .expect("scripts/package prints the .deb's path");
    let deb = Path::new(&deb);

    let lint = run(
        Command::new("lintian")
            .args(["--fail-on", "error", "--allow-root"])
            .arg(deb),
        "lintian (Debian package lintian; scripts/test installs it)",
    );
    let lint = String::from_utf8_lossy(&lint.stdout);
    assert!(!lint.lines().any(|line| line.starts_with("E:")), "{lint}");

    let root = headwall_testkit::temp_dir();
    run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()),
        "dpkg-deb -x",
    );
    for file in [
        "usr/bin/headwall",
        "etc/headwall/headwall.toml",
        "usr/lib/systemd/system/headwall.service",
        "usr/share/man/man1/headwall.1.gz",
        "usr/share/man/man1/headwall-serve.1.gz",
        "usr/share/bash-completion/completions/headwall",
        "usr/share/zsh/vendor-completions/_headwall",
        "usr/share/fish/vendor_completions.d/headwall.fish",
        "usr/share/doc/headwall/operations.md",
        "usr/share/doc/headwall/config.md",
        "usr/share/doc/headwall/copyright",
        "usr/share/doc/headwall/examples/headwall.toml",
    ] {
        assert!(root.path().join(file).is_file(), "the package lacks {file}");
    }

    // The unpacked binary runs and names its build.
    let headwall = root.path().join("usr/bin/headwall");
    let version = run(
        Command::new(&headwall).arg("--version"),
        "headwall --version",
    );
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.contains("(commit "), "{version}");
    let completion = run(
        Command::new(&headwall).args(["completions", "bash"]),
        "completions",
    );
    assert!(String::from_utf8_lossy(&completion.stdout).contains("complete -F"));

    // The unit's Documentation= resolves inside the package, and it verifies with the
    // unpacked binary where /usr/bin/headwall will be.
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/headwall.service"))
        .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/headwall serve --config /etc/headwall/headwall.toml")
    );
    let documentation = unit
        .lines()
        .find_map(|line| line.strip_prefix("Documentation=file://"))
        .expect("a Documentation= line");
    assert!(
        root.path()
            .join(documentation.trim_start_matches('/'))
            .is_file(),
        "{documentation} is not in the package"
    );
    let verify = root.path().join("headwall.service");
    std::fs::write(
        &verify,
        unit.replace("/usr/bin/headwall", &headwall.display().to_string()),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verify)
        .output()
        .expect("systemd-analyze");
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // The shipped configuration: absolute state paths under /var/lib/headwall; moved into a
    // temporary folder (and onto free ports) it passes check and starts.
    let shipped = std::fs::read_to_string(root.path().join("etc/headwall/headwall.toml")).unwrap();
    assert!(
        shipped.contains("\"/var/lib/headwall/audit.db\""),
        "{shipped}"
    );
    let state = root.path().join("var/lib/headwall");
    let local = shipped
        .replace("/var/lib/headwall", &state.display().to_string())
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0");
    let config = root.path().join("local.toml");
    std::fs::write(&config, &local).unwrap();
    run(
        Command::new(&headwall)
            .arg("check")
            .arg("--config")
            .arg(&config),
        "check of the shipped configuration",
    );
    let gateway = ServeProcess::start(&headwall, &local);
    drop(gateway);
    assert!(state.join("audit.db").is_file(), "state went elsewhere");
}
