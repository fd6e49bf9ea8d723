//! The conditional-write probe: a real server that honours `If-None-Match: *` is written to;
//! stand-ins that ignore it, or check it without atomicity, are refused before any table write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdplake_engine::{EngineError, Lake, TableSpec, WriteAccess};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Backend, TestLake, events_schema, id};

#[tokio::test]
async fn seaweedfs_honours_conditional_writes() {
    let t = TestLake::new(Backend::S3).await;
    assert_eq!(t.lake.write_access(), &WriteAccess::Allowed);
    t.lake.ensure_writable().unwrap();
}

#[tokio::test]
async fn a_server_ignoring_if_none_match_is_refused_and_nothing_is_written() {
    let server = FakeS3::start(Conditional::Ignored).await;
    let lake = Lake::open_with_options("s3://lake/cdp", server.options()).await.unwrap();
    let WriteAccess::Refused { reason } = lake.write_access() else {
        panic!("a server that ignores If-None-Match must be refused");
    };
    assert!(reason.contains("If-None-Match"), "{reason}");

    let err = lake.create_table(&TableSpec::new(id("raw.events"), events_schema())).await.unwrap_err();
    assert!(matches!(err, EngineError::UnsafeStore { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&server.endpoint()), "names the endpoint: {message}");
    assert!(message.contains("If-None-Match"), "says why: {message}");

    let puts = server.puts();
    assert!(!puts.is_empty(), "the probe ran");
    assert!(puts.iter().all(|p| p.contains("/_cdplake/probe/")), "only probe objects written: {puts:?}");
    assert!(server.objects().is_empty(), "probe objects removed: {:?}", server.objects());
}

#[tokio::test]
async fn a_server_with_a_non_atomic_check_is_refused() {
    // Sequential creates get 412, but racing creates all pass the check: as s3s-fs measured.
    let server = FakeS3::start(Conditional::CheckThenWrite).await;
    let lake = Lake::open_with_options("s3://lake/cdp", server.options()).await.unwrap();
    let WriteAccess::Refused { reason } = lake.write_access() else {
        panic!("a non-atomic conditional write must be refused");
    };
    assert!(reason.contains("not atomic"), "{reason}");
    assert!(lake.ensure_writable().is_err());
    assert!(server.objects().is_empty(), "{:?}", server.objects());
}

#[tokio::test]
async fn the_verdict_is_cached_per_endpoint() {
    let server = FakeS3::start(Conditional::Ignored).await;
    Lake::open_with_options("s3://lake/a", server.options()).await.unwrap();
    let after_first = server.puts().len();
    Lake::open_with_options("s3://lake/a", server.options()).await.unwrap();
    assert_eq!(server.puts().len(), after_first, "second open of the same endpoint does not probe");
}

/// How the stand-in treats `If-None-Match: *`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conditional {
    Ignored,
    /// Checks existence, yields, then writes: correct one at a time, wrong under a race.
    CheckThenWrite,
}

/// A minimal S3 stand-in speaking just enough HTTP/1.1 for object_store: PUT, GET, HEAD, DELETE.
struct FakeS3 {
    port: u16,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    objects: HashMap<String, Vec<u8>>,
    puts: Vec<String>,
}

impl FakeS3 {
    async fn start(mode: Conditional) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared), mode));
            }
        });
        Self { port, state }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn options(&self) -> HashMap<String, String> {
        HashMap::from([
            ("aws_endpoint_url".to_string(), self.endpoint()),
            ("aws_access_key_id".to_string(), "test".to_string()),
            ("aws_secret_access_key".to_string(), "test-secret".to_string()),
            ("aws_region".to_string(), "us-east-1".to_string()),
            ("aws_allow_http".to_string(), "true".to_string()),
        ])
    }

    fn puts(&self) -> Vec<String> {
        self.state.lock().unwrap().puts.clone()
    }

    fn objects(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, mode: Conditional) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let path = target.split('?').next().unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }

        let conditional = headers.get("if-none-match").is_some_and(|v| v == "*");
        let response = match method.as_str() {
            "PUT" => {
                let exists = state.lock().unwrap().objects.contains_key(&path);
                if mode == Conditional::CheckThenWrite && conditional {
                    if exists {
                        reply(412, "<Error><Code>PreconditionFailed</Code></Error>", "")
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        put(&state, &path, body)
                    }
                } else {
                    put(&state, &path, body)
                }
            }
            "GET" | "HEAD" => match state.lock().unwrap().objects.get(&path) {
                Some(data) => {
                    let extra = "ETag: \"fake\"\r\nLast-Modified: Tue, 24 Nov 2026 00:00:00 GMT\r\n";
                    let body = if method == "GET" { String::from_utf8_lossy(data).to_string() } else { String::new() };
                    let mut r = reply(200, &body, extra);
                    if method == "HEAD" {
                        r = format!("HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n", data.len());
                    }
                    r
                }
                None => reply(404, "<Error><Code>NoSuchKey</Code></Error>", ""),
            },
            // object_store deletes through the bulk API: POST /bucket?delete with <Key>s.
            "POST" if target.contains("?delete") => {
                let body = String::from_utf8_lossy(&body).to_string();
                let bucket = path.trim_end_matches('/');
                let mut deleted = String::new();
                let mut state = state.lock().unwrap();
                for key in body.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()) {
                    state.objects.remove(&format!("{bucket}/{key}"));
                    deleted.push_str(&format!("<Deleted><Key>{key}</Key></Deleted>"));
                }
                reply(200, &format!("<DeleteResult>{deleted}</DeleteResult>"), "")
            }
            "DELETE" => {
                state.lock().unwrap().objects.remove(&path);
                reply(204, "", "")
            }
            _ => reply(501, "", ""),
        };
        if stream.get_mut().write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn put(state: &Mutex<State>, path: &str, body: Vec<u8>) -> String {
    let mut state = state.lock().unwrap();
    state.puts.push(path.to_string());
    state.objects.insert(path.to_string(), body);
    reply(200, "", "ETag: \"fake\"\r\n")
}

fn reply(status: u16, body: &str, extra_headers: &str) -> String {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        412 => "Precondition Failed",
        _ => "Not Implemented",
    };
    format!("HTTP/1.1 {status} {reason}\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}", body.len())
}
