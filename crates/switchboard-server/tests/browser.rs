//! The development chat page in Chromium (playwright-core from clients/typescript). Skipped,
//! with a message, where node, Chromium or the client's node_modules are missing.

mod common;

use std::path::Path;

#[tokio::test]
async fn the_demo_chat_works_in_chromium() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_ok =
        std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    // A missing dependency is a failure, not a skip: scripts/test.sh installs all three.
    assert!(
        node_ok
            && Path::new(&chromium).exists()
            && repo.join("clients/typescript/node_modules/playwright-core").exists(),
        "the browser test needs node, {chromium} and clients/typescript/node_modules \
         (scripts/test.sh installs them)"
    );
    let server = common::spawn(&["--dev"], &[]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chat.mjs");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(server.addr.to_string())
            .arg(&repo)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser chat ok"), "{stdout}\n{stderr}");
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
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        repo.join("clients/typescript/node_modules/playwright-core").exists(),
        "the browser test needs clients/typescript/node_modules (scripts/test.sh installs them)"
    );
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
