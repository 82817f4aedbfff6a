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
