//! Safe defaults at start: development mode only when asked for, a configuration must identify
//! users, secrets and keys checked (exit 2, one line naming the setting), `checkconfig` and
//! `gentoken`.

mod common;

use std::process::Stdio;

use common::{Client, fixture, start_with};
use serde_json::json;

/// Runs the binary to its exit with `args` and `env` (and no other `SWITCHBOARD_*`): exit code,
/// stdout, stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A server that starts by mistake must not hang the test.
    cmd.env("RUST_LOG", "warn");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let guard = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().unwrap();
    drop(guard);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("sb-startup-{}-{}-{name}", std::process::id(), common::rand_id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Exit 2 with exactly one line on stderr, which contains every one of `words`.
fn refused(args: &[&str], env: &[(&str, &str)], words: &[&str]) {
    let (code, out, err) = run(args, env);
    assert_eq!(code, 2, "{args:?} {env:?}: exit {code}\n{out}\n{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for w in words {
        assert!(err.contains(w), "{args:?} {env:?}: `{w}` missing in: {err}");
    }
    assert!(!out.contains("listening on"), "{out}");
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_configuration_without_identification_does_not_start_development_mode() {
    // The example: an API key and a public address are configuration, not a wish for
    // development mode.
    refused(
        &[],
        &[("SWITCHBOARD_API_KEY", "k"), ("SWITCHBOARD_LISTEN", "0.0.0.0:0")],
        &["namespace", "--dev"],
    );
    refused(&["--listen", "127.0.0.1:0"], &[("SWITCHBOARD_LOG_FORMAT", "json")], &["namespace"]);
    refused(&["--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1"], &[], &["namespace"]);
    let file = write("only-key.toml", "api_key = \"k\"\n");
    refused(&["--listen", "127.0.0.1:0", "--config", &file], &[], &["namespace"]);
    // Development mode asked for, but exposed by a setting rather than by --listen.
    refused(
        &[],
        &[("SWITCHBOARD_DEV", "true"), ("SWITCHBOARD_LISTEN", "0.0.0.0:0")],
        &["loopback", "listen"],
    );
}

#[test]
fn weak_secrets_empty_keys_and_unknown_algorithms_are_refused() {
    let jwt = write("jwt.toml", "[namespaces.main]\nidentify = \"jwt\"\n[jwt]\nalgorithm = \"HS256\"\n");
    let args = ["--listen", "127.0.0.1:0", "--config", jwt.as_str()];
    refused(&args, &[("SWITCHBOARD_JWT__SECRET", "")], &["jwt.secret", "empty"]);
    refused(&args, &[("SWITCHBOARD_JWT__SECRET", "x")], &["jwt.secret", "32"]);
    refused(&args, &[("SWITCHBOARD_JWT__SECRET", &SECRET[..31])], &["jwt.secret", "31 bytes"]);
    refused(&args, &[], &["jwt.secret"]);
    refused(
        &args,
        &[("SWITCHBOARD_JWT__SECRET", SECRET), ("SWITCHBOARD_JWT__ALGORITHM", "HS512")],
        &["jwt.secret", "64"],
    );
    refused(
        &args,
        &[("SWITCHBOARD_JWT__SECRET", SECRET), ("SWITCHBOARD_JWT__ALGORITHM", "none")],
        &["ALGORITHM", "none"],
    );
    refused(
        &args,
        &[("SWITCHBOARD_JWT__SECRET", SECRET), ("SWITCHBOARD_API_KEY", "  ")],
        &["api_key", "empty"],
    );
    let missing = "[namespaces.main]\nidentify = \"jwt\"\n[jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"/nonexistent/key.pem\"\n";
    let file = write("missing-key.toml", missing);
    refused(
        &["--listen", "127.0.0.1:0", "--config", &file],
        &[],
        &["jwt.public_key_file", "/nonexistent/key.pem"],
    );
    let tls = format!(
        "{}\n[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\n",
        common::config("anonymous", "")
    );
    let file = write("missing-cert.toml", &tls);
    refused(&["--listen", "127.0.0.1:0", "--config", &file], &[], &["tls", "/nonexistent/c.pem"]);
}

#[test]
fn checkconfig_prints_a_summary_or_the_problems() {
    let toml = format!(
        "allowed_origins = [\"https://*.example.com\"]\n{}\n[jwt]\nalgorithm = \"RS256\"\njwks_file = \"{}\"\n",
        common::config("jwt", ""),
        fixture("rs256.jwks.json")
    );
    let file = write("good.toml", &toml);
    let (code, out, err) = run(&["checkconfig", "--config", &file], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("configuration ok"), "{out}");
    for part in
        ["RS256 with a JWKS file of 1 keys", "https://*.example.com", "development mode: off", "main (jwt"]
    {
        assert!(out.contains(part), "`{part}` missing in:\n{out}");
    }
    let (code, out, err) = run(&["checkconfig"], &[("SWITCHBOARD_API_KEY", "k")]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("namespace"), "{err}");
}

#[tokio::test]
async fn gentoken_mints_tokens_the_server_accepts() {
    let hs = format!("[jwt]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\nissuer = \"me\"\n");
    let toml = common::config("jwt", &hs);
    let file = write("gentoken.toml", &toml);
    let (code, token, err) = run(&["gentoken", "--config", &file, "--user", "ada", "--ttl", "600"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("HS256") && err.contains("ada"), "{err}");
    let server = start_with(&toml, &[], &[]).await;
    let (_, welcome) = Client::identified(server.addr, json!(token.trim())).await;
    assert_eq!(welcome["user"], "ada");

    // RS256: the private key is given, the kid picks the JWKS key.
    let rs = format!("[jwt]\nalgorithm = \"RS256\"\njwks_file = \"{}\"\n", fixture("rs256.jwks.json"));
    let toml = common::config("jwt", &rs);
    let file = write("gentoken-rs.toml", &toml);
    let key = fixture("rs256-private.pem");
    let (code, token, err) =
        run(&["gentoken", "--config", &file, "-u", "bob", "--private-key", &key, "--kid", "test-rsa"], &[]);
    assert_eq!(code, 0, "{err}");
    let server = start_with(&toml, &[], &[]).await;
    let (_, welcome) = Client::identified(server.addr, json!(token.trim())).await;
    assert_eq!(welcome["user"], "bob");
    // Without the key, no token.
    let (code, _, err) = run(&["gentoken", "--config", &file, "-u", "bob"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--private-key"), "{err}");
}

#[tokio::test]
async fn development_refusals_say_what_is_expected_not_what_a_decoder_found() {
    let server = common::spawn(&["--dev"], &[]).await;
    for identity in [json!(42), json!({"name": 7}), json!({"nom": "x"}), json!({"name": ""})] {
        let mut c = Client::connect(server.addr).await;
        let err = c.call("~hello", json!({"identity": identity})).await.unwrap_err();
        assert_eq!(err["code"], "NOT_AUTHORIZED");
        assert_eq!(err["message"], "identify with {\"name\": N}, a name of 1 to 64 bytes", "{identity}");
    }
}
