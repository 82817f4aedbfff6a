//! JWT identification: HS256, RS256 with a JWKS file, ES256 with a PEM key; claims, groups, expiry.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Client, api, config, fixture, start_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// 32 bytes: the shortest HS256 secret the server accepts.
const SECRET: &str = "an-hs256-secret-of-32-bytes-ok!!";

const HS_CONFIG: &str = r#"
[jwt]
algorithm = "HS256"
secret = "an-hs256-secret-of-32-bytes-ok!!"
alias_claim = "name"
public_claim = "profile"
groups_claim = "groups"
"#;

#[tokio::test]
async fn hs256_tokens_give_user_alias_public_data_and_groups() {
    let server = start_with(&config("jwt", HS_CONFIG), &[], &[]).await;
    let addr = server.addr;
    let token = hs256(
        &json!({"sub": "u1", "name": "Ada", "profile": {"color": "teal"}, "groups": ["group/staff"], "exp": now() + 600}),
        SECRET,
    );
    let (mut ada, welcome) = Client::identified(addr, json!(token)).await;
    assert_eq!(welcome["user"], "u1");
    let (mut bob, _) = Client::identified(
        addr,
        json!({"token": hs256(&json!({"sub": "u2", "name": "Bob", "exp": now() + 600}), SECRET)}),
    )
    .await;
    let who = bob.call("~who", json!({})).await.unwrap();
    let ada_peer = who["peers"].as_array().unwrap().iter().find(|p| p["user"] == "u1").cloned().unwrap();
    assert_eq!(ada_peer["alias"], "Ada");
    assert_eq!(ada_peer["public"]["color"], "teal");

    // The group is joined server-side shortly after identification.
    let mut joined = false;
    for _ in 0..100 {
        let info = api(addr, "GET", "/api/info", None).await;
        if info["topics"].as_u64() == Some(1) {
            joined = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(joined, "the group was joined");
    api(addr, "POST", "/api/publish", Some(json!({"topic": "group/staff", "data": "memo"}))).await;
    assert_eq!(ada.expect("~msg").await[1]["topic"], "group/staff");
    // Clients cannot subscribe to groups themselves.
    assert_eq!(bob.call("~sub", json!({"topic": "group/staff"})).await.unwrap_err()["code"], "FORBIDDEN");
    // own-user topics: only u2 may subscribe to private/u2.
    bob.call("~sub", json!({"topic": "private/u2"})).await.unwrap();
    assert_eq!(ada.call("~sub", json!({"topic": "private/u2"})).await.unwrap_err()["code"], "FORBIDDEN");
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let server = start_with(&config("jwt", HS_CONFIG), &[], &[]).await;
    for identity in [
        json!(hs256(&json!({"sub": "u1", "exp": now() + 600}), "wrong")),
        json!(hs256(&json!({"sub": "u1", "exp": now() - 600}), SECRET)),
        json!(hs256(&json!({"name": "no sub", "exp": now() + 600}), SECRET)),
        json!("not a token"),
        json!({"name": "dev identity"}),
    ] {
        let mut c = Client::connect(server.addr).await;
        let err = c.call("~hello", json!({"identity": identity})).await.unwrap_err();
        assert_eq!(err["code"], "NOT_AUTHORIZED", "{identity}");
        assert_eq!(c.closed().await, Some(4500));
    }
}

#[tokio::test]
async fn expiry_closes_with_4003_unless_refreshed() {
    let server = start_with(&config("jwt", HS_CONFIG), &[], &[]).await;
    let short = hs256(&json!({"sub": "u1", "exp": now() + 2}), SECRET);
    let (mut c, _) = Client::identified(server.addr, json!(short)).await;
    let longer = hs256(&json!({"sub": "u1", "exp": now() + 5}), SECRET);
    let (mut r, _) = Client::identified(server.addr, json!(longer)).await;
    let fresh = hs256(&json!({"sub": "u1", "exp": now() + 600}), SECRET);
    r.call("~refresh", json!({"identity": fresh})).await.unwrap();
    let other = hs256(&json!({"sub": "u2", "exp": now() + 600}), SECRET);
    assert!(r.call("~refresh", json!({"identity": other})).await.is_err());
    assert_eq!(c.closed().await, Some(4003));
    // The refreshed connection lives on.
    assert!(r.call("~ping", Value::Null).await.is_ok());
}

#[tokio::test]
async fn rs256_with_jwks_and_es256_with_pem() {
    let rs = format!(
        "[jwt]\nalgorithm = \"RS256\"\njwks_file = \"{}\"\nissuer = \"me\"\naudience = \"switchboard\"\n",
        fixture("rs256.jwks.json")
    );
    let server = start_with(&config("jwt", &rs), &[], &[]).await;
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rs256-private.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rsa".into());
    let claims = json!({"sub": "r1", "iss": "me", "aud": "switchboard", "exp": now() + 600});
    let (_, welcome) = Client::identified(server.addr, json!(encode(&header, &claims, &key).unwrap())).await;
    assert_eq!(welcome["user"], "r1");
    let wrong_aud = json!({"sub": "r1", "iss": "me", "aud": "other", "exp": now() + 600});
    let mut c = Client::connect(server.addr).await;
    let err =
        c.call("~hello", json!({"identity": encode(&header, &wrong_aud, &key).unwrap()})).await.unwrap_err();
    assert_eq!(err["code"], "NOT_AUTHORIZED");

    let es = format!("[jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"{}\"\n", fixture("es256-public.pem"));
    let server = start_with(&config("jwt", &es), &[], &[]).await;
    let key = EncodingKey::from_ec_pem(&std::fs::read(fixture("es256-private.pem")).unwrap()).unwrap();
    let token =
        encode(&Header::new(Algorithm::ES256), &json!({"sub": "e1", "exp": now() + 600}), &key).unwrap();
    let (_, welcome) = Client::identified(server.addr, json!({"token": token})).await;
    assert_eq!(welcome["user"], "e1");
}

#[tokio::test]
async fn time_claims_are_checked_with_a_leeway_and_refusals_reveal_nothing() {
    // Default leeway: 30 s.
    let server = start_with(&config("jwt", HS_CONFIG), &[], &[]).await;
    let refused = |claims: Value, key: &'static str| {
        let addr = server.addr;
        async move {
            let mut c = Client::connect(addr).await;
            c.call("~hello", json!({"identity": hs256(&claims, key)})).await.unwrap_err()
        }
    };
    for claims in [
        json!({"sub": "u", "nbf": now() + 600}),
        json!({"sub": "u", "iat": now() + 600}),
        json!({"sub": "u", "iat": "yesterday"}),
        json!({"sub": ""}),
    ] {
        let err = refused(claims.clone(), SECRET).await;
        assert_eq!(err["message"], "the token is not valid", "{claims}: {err}");
    }
    let err = refused(json!({"sub": "u", "exp": now() - 600}), SECRET).await;
    assert_eq!(err["message"], "the token has expired", "{err}");
    // The signature is checked before the expiry: an expired forgery is just not valid.
    let err = refused(json!({"sub": "u", "exp": now() - 600}), "forged-with-another-secret-of-32b").await;
    assert_eq!(err["message"], "the token is not valid", "{err}");
    // Within the leeway: accepted.
    for claims in [
        json!({"sub": "u", "nbf": now() + 10, "iat": now() + 10, "exp": now() + 600}),
        json!({"sub": "u", "exp": now() - 10}),
    ] {
        let (_, welcome) = Client::identified(server.addr, json!(hs256(&claims, SECRET))).await;
        assert_eq!(welcome["user"], "u", "{claims}");
    }
    // Whatever the garbage, the reply names no library error.
    for identity in [
        json!("not a token"),
        json!("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0."),
        json!("e30.e30.x"),
        json!("eyJhbGciOiJIUzI1NiJ9.!!!.x"),
    ] {
        let mut c = Client::connect(server.addr).await;
        let err = c.call("~hello", json!({"identity": identity})).await.unwrap_err();
        let message = err["message"].as_str().unwrap();
        assert_eq!(message, "the token is not valid", "{identity}");
    }

    // A leeway of 0 is exact.
    let strict = HS_CONFIG.replace("[jwt]\n", "[jwt]\nleeway_secs = 0\n");
    let server = start_with(&config("jwt", &strict), &[], &[]).await;
    let mut c = Client::connect(server.addr).await;
    let token = hs256(&json!({"sub": "u", "nbf": now() + 10}), SECRET);
    let err = c.call("~hello", json!({"identity": token})).await.unwrap_err();
    assert_eq!(err["message"], "the token is not valid");
}
