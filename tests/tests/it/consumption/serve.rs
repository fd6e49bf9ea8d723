//! `cdplake serve` over real HTTP on 127.0.0.1, and the `profile` Lambda handler: look-ups by
//! several id types agree with the lake's tables; 404, 400, health; a new profiles version is
//! picked up by the background refresh.

use std::sync::Arc;
use std::time::Duration;

use cdplake_app::lambda::{Handler, invoke};
use cdplake_profiles::{RefreshOptions, refresh};
use cdplake_serving::serve::http::{ServeOptions, Server};
use cdplake_serving::serve::{IndexHolder, Permissions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AS_OF, at, lake_with_everything, text_rows};
use crate::support::{Backend, on_every_backend};
use cdplake_zones::tables::CUSTOMER_PROFILES;

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
async fn http(addr: std::net::SocketAddr, method: &str, target: &str, body: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no body in {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{target}: {e}: {body}")))
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

async fn serves_profiles_by_any_identifier(backend: Backend) {
    let (_t, ws) = lake_with_everything(backend, 120).await;
    let holder = Arc::new(IndexHolder::open(ws.clone(), 20).await.unwrap());
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        permissions: Permissions::default(),
        refresh_every: Duration::from_millis(500),
    };
    let server = Server::bind(holder.clone(), &options).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Health: the index holds every active identifier and person.
    let (status, health) = http(addr, "GET", "/v1/health", "").await;
    assert_eq!(status, 200, "{health}");
    let counts =
        text_rows(&ws, "SELECT count(*), count(DISTINCT one_id) FROM curated.id_mapping WHERE is_active").await;
    assert_eq!(health["index"]["identifiers"].as_u64().unwrap().to_string(), counts[0][0]);
    assert_eq!(health["index"]["persons"].as_u64().unwrap().to_string(), counts[0][1]);
    assert_eq!(health["read_only"], true);

    // Look-ups by several id types agree with the tables.
    let picks = text_rows(
        &ws,
        "SELECT id_type, id_value, one_id, user_int_id FROM (SELECT *, row_number() OVER (PARTITION BY id_type \
         ORDER BY id_value) AS n FROM curated.id_mapping WHERE is_active AND id_type IN \
         ('member_id', 'customer_id', 'email_hash', 'device_id', 'mobile_hash')) WHERE n = 2 ORDER BY id_type",
    )
    .await;
    assert!(picks.len() >= 4, "identifiers of at least four id types: {picks:?}");
    for pick in &picks {
        let (id_type, id_value, one_id, user_int_id) = (&pick[0], &pick[1], &pick[2], &pick[3]);
        let (status, answer) =
            http(addr, "GET", &format!("/v1/profiles/{id_type}/{}?events=5", encode(id_value)), "").await;
        assert_eq!(status, 200, "{id_type}:{id_value}: {answer}");
        assert_eq!(answer["one_id"], one_id.as_str());
        assert_eq!(answer["matched"]["id_type"], id_type.as_str());
        assert_eq!(answer["user_int_id"].to_string(), *user_int_id);
        // Identifiers: exactly the person's active ones.
        let expected = text_rows(
            &ws,
            &format!(
                "SELECT id_type, id_value, CAST(first_seen AS VARCHAR) AS seen FROM curated.id_mapping \
                 WHERE is_active AND one_id = '{one_id}' ORDER BY id_type, id_value"
            ),
        )
        .await;
        let got: Vec<(String, String)> = answer["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id_type"].as_str().unwrap().to_string(), i["id_value"].as_str().unwrap().to_string()))
            .collect();
        let want: Vec<(String, String)> = expected.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
        assert_eq!(got, want, "{id_type}:{id_value}");
        assert!(
            answer["identifiers"][0]["first_seen"].is_string() && answer["identifiers"][0]["last_seen"].is_string()
        );
        // Profile row: the lake's.
        let profile = text_rows(
            &ws,
            &format!(
                "SELECT lifecycle_stage, CAST(total_orders AS VARCHAR), rfm_segment FROM curated.customer_profiles \
                 WHERE one_id = '{one_id}'"
            ),
        )
        .await;
        assert_eq!(answer["profile"]["one_id"], one_id.as_str());
        let field = |name: &str| match &answer["profile"][name] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(vec![field("lifecycle_stage"), field("total_orders"), field("rfm_segment")], profile[0]);
        // Segments: the tags whose bitmap holds the person, as of the latest build.
        let tags: Vec<String> = text_rows(
            &ws,
            &format!(
                "SELECT segment_tag FROM curated.segment_bitmaps WHERE as_of = '{AS_OF}' \
                 AND bitmap_contains(bitmap, {user_int_id}) ORDER BY segment_tag"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
        let mut got_tags: Vec<String> =
            answer["segments"]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        got_tags.sort();
        assert_eq!(got_tags, tags);
        assert_eq!(answer["segments"]["as_of"], AS_OF);
        let in_audience = !text_rows(
            &ws,
            &format!(
                "SELECT 1 FROM curated.audience_packages WHERE one_id = '{one_id}' AND package_name = 'not_first'"
            ),
        )
        .await
        .is_empty();
        let audiences = answer["audiences"].as_array().unwrap();
        assert_eq!(audiences.iter().any(|a| a["package_name"] == "not_first"), in_audience, "{answer}");
        // Events: the latest five, newest first.
        let events = text_rows(
            &ws,
            &format!(
                "SELECT CAST(event_time AS VARCHAR) AS t FROM curated.user_events WHERE one_id = '{one_id}' \
                 ORDER BY event_time DESC NULLS LAST LIMIT 5"
            ),
        )
        .await;
        let got_events = answer["events"].as_array().unwrap();
        assert_eq!(got_events.len(), events.len(), "{id_type}:{id_value}");
        let times: Vec<&str> = got_events.iter().filter_map(|e| e["event_time"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    }

    // Unknown identifier, unknown type: 404 saying what was not found.
    let (status, body) = http(addr, "GET", "/v1/profiles/member_id/NOBODY-0000", "").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("member_id:NOBODY-0000"), "{body}");
    let (status, body) = http(addr, "GET", "/v1/profiles/loyalty_card/123", "").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("member_id"), "lists the known types: {body}");
    // Malformed: 400.
    for target in [
        "/v1/profiles/Member%20Id/x",
        "/v1/profiles/member_id",
        "/v1/profiles/member_id/a/b",
        "/v1/profiles/member_id/%20",
        "/v1/profiles/member_id/x%zz",
        "/v1/profiles/member_id/x?events=lots",
        "/v1/profiles/member_id/x?events=500",
    ] {
        let (status, body) = http(addr, "GET", target, "").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("malformed")), "{target}: {body}");
    }
    // Read-only: no SQL without --allow-sql, no other endpoints, no writes.
    let (status, _) = http(addr, "POST", "/v1/query", r#"{"sql": "SELECT 1"}"#).await;
    assert_eq!(status, 403);
    let (status, _) = http(addr, "GET", "/v1/tables", "").await;
    assert_eq!(status, 404);
    let (status, _) = http(addr, "DELETE", "/v1/profiles/member_id/x", "").await;
    assert_eq!(status, 405);

    // The Lambda handler answers a function URL event the same way.
    let (id_type, id_value, one_id) = (&picks[0][0], &picks[0][1], &picks[0][2]);
    let event = serde_json::json!({
        "version": "2.0", "rawPath": format!("/v1/profiles/{id_type}/{}", encode(id_value)), "rawQueryString": "events=2",
        "requestContext": { "http": { "method": "GET", "path": "/" } }, "isBase64Encoded": false
    });
    assert_eq!(Handler::detect(&event), Some(Handler::Profile));
    let response = invoke(&ws, Handler::Profile, event, at(2)).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["one_id"], one_id.as_str());
    assert!(body["events"].as_array().unwrap().len() <= 2);
    let rest = serde_json::json!({ "httpMethod": "GET", "path": "/v1/profiles/member_id/NOBODY", "queryStringParameters": null });
    let response = invoke(&ws, Handler::Profile, rest, at(2)).await.unwrap();
    assert_eq!(response["statusCode"], 404, "{response}");

    // A new profiles version is picked up by the background refresh, without a restart.
    let before = health["index"]["versions"]["customer_profiles"].as_u64().unwrap();
    refresh(&ws, &RefreshOptions { as_of: AS_OF.parse().unwrap(), full: true, force: false }, at(3)).await.unwrap();
    let mut seen = before;
    for _ in 0..120 {
        let (_, health) = http(addr, "GET", "/v1/health", "").await;
        seen = health["index"]["versions"]["customer_profiles"].as_u64().unwrap();
        if seen > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen > before, "the index was rebuilt for the new profiles version ({before} → {seen})");
    let (status, _) = http(addr, "GET", &format!("/v1/profiles/{id_type}/{}", encode(id_value)), "").await;
    assert_eq!(status, 200);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

on_every_backend!(serves_profiles_by_any_identifier);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_sql_runs_only_read_only_statements() {
    let (_t, ws) = lake_with_everything(Backend::Local, 60).await;
    let holder = IndexHolder::open(ws.clone(), 5).await.unwrap();
    let allow = Permissions { allow_sql: true };
    let ask = |sql: &str| cdplake_serving::serve::Request {
        method: "POST".into(),
        path: "/v1/query".into(),
        query: None,
        body: serde_json::json!({ "sql": sql }).to_string().into_bytes(),
    };
    let reply =
        cdplake_serving::serve::respond(&holder, allow, &ask("SELECT count(*) AS n FROM curated.customer_profiles"))
            .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["row_count"], 1);
    let version = ws.lake().table(&CUSTOMER_PROFILES.id()).await.unwrap().version();
    let reply = cdplake_serving::serve::respond(&holder, allow, &ask("DELETE FROM curated.customer_profiles")).await;
    assert_eq!((reply.status, reply.body["error"].as_str()), (400, Some("refused")), "{:?}", reply.body);
    assert_eq!(ws.lake().table(&CUSTOMER_PROFILES.id()).await.unwrap().version(), version);
    // The CLI's look-up is the same function.
    let cli = cdplake_serving::serve::lookup(
        &holder.get(),
        &cdplake_serving::serve::Lookup { id_type: "member_id".into(), id_value: "NOBODY".into(), events: 1 },
    )
    .unwrap();
    assert!(matches!(cli, Err(cdplake_serving::serve::LookupError::NotFound(_))));
}
