//! The development chat page in Chromium (playwright-core from clients/typescript): the demo
//! on a laptop and on phones (`tests/browser/chat.mjs`, screenshots in `target/screenshots/`),
//! and over https (`tests/browser/tls_origin.mjs`). A missing node, Chromium, certutil or
//! `clients/typescript/node_modules` fails the tests (scripts/test.sh installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the browser tests leave their screenshots: `SWITCHBOARD_SCREENSHOTS`, else the
/// workspace's `target/screenshots/` (ignored by git).
fn screenshots() -> PathBuf {
    std::env::var_os("SWITCHBOARD_SCREENSHOTS")
        .map_or_else(|| repo().join("target/screenshots"), PathBuf::from)
}

fn assert_browser_tools() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_ok =
        std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    // A missing dependency is a failure, not a skip: scripts/test.sh installs all three.
    assert!(
        node_ok
            && Path::new(&chromium).exists()
            && repo().join("clients/typescript/node_modules/playwright-core").exists(),
        "the browser test needs node, {chromium} and clients/typescript/node_modules \
         (scripts/test.sh installs them)"
    );
}

#[tokio::test]
async fn the_demo_chat_works_in_chromium_on_a_laptop_and_on_phones() {
    assert_browser_tools();
    let mut server = common::spawn(&["--dev"], &[]).await;
    let addr = server.addr;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chat.mjs");
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .arg(addr.to_string())
        .arg(repo())
        .arg(screenshots())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let mut stdout = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stderr = node.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut seen = Vec::new();
    let run = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line == "RESTART" {
                // The page asks for a restart: SIGTERM, wait for the exit, start again on the
                // same address (the pages reconnect there by themselves).
                let pid = server.child.id().unwrap().to_string();
                assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
                assert_eq!(server.child.wait().await.unwrap().code(), Some(0));
                server = common::spawn_at(&addr.to_string(), &["--dev"], &[]).await;
                stdin.write_all(b"RESTARTED\n").await.unwrap();
                stdin.flush().await.unwrap();
            }
            seen.push(line);
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(240), run)
        .await
        .expect("the browser test finished in time");
    let stderr = errors.await.unwrap();
    let stdout = seen.join("\n");
    assert!(status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser chat ok"), "{stdout}\n{stderr}");
    assert!(screenshots().join("demo-phone-dm.png").exists(), "screenshots in {}", screenshots().display());
}

/// An NSS database in `home/.pki/nssdb` trusting `ca` (what Chromium on Linux reads).
fn trust_in_nss(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new("certutil")
            .args(args)
            .output()
            .expect("certutil (Debian package libnss3-tools; scripts/test.sh installs it)");
        assert!(out.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["-d", &db, "-N", "--empty-password"]);
    run(&["-d", &db, "-A", "-t", "C,,", "-n", "switchboard-test-ca", "-i", ca.to_str().unwrap()]);
}

#[tokio::test]
async fn the_demo_over_https_in_chromium_and_other_origins_refused() {
    assert_browser_tools();
    let repo = repo();
    let pki = common::pki::Pki::new("browser");
    let (cert, key) = pki.server("server");
    let home = pki.dir.join("home");
    trust_in_nss(&home, &pki.ca_file);
    let env = [
        ("SWITCHBOARD_TLS__CERT_FILE", cert.to_str().unwrap()),
        ("SWITCHBOARD_TLS__KEY_FILE", key.to_str().unwrap()),
    ];
    let server = common::spawn(&["--dev"], &env).await;
    let addr = format!("localhost:{}", server.addr.port());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/tls_origin.mjs");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&addr)
            .arg(&repo)
            .env("HOME", &home)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser tls ok"), "{stdout}\n{stderr}");
    // The refusal was the origin check's (403), counted.
    let (status, page) = common::pki::https(server.addr, &pki.connector(), "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let refused = common::metric(&page, "switchboard_origin_refused_total{reason=\"not_allowed\"}").unwrap();
    assert!(refused >= 1.0, "{page}");
}
