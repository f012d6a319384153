use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

use axum::routing::get;
use serde_json::Value;

use super::*;

const DOC: &str = include_str!("../../docs/provisioning.yaml");
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_saphyr::from_str(DOC).expect("docs/provisioning.yaml parses")
}

/// Every `(METHOD, path)` the document describes, with its operation.
fn documented_operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("a `paths` mapping");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    operations
}

/// Follows a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} points nowhere")),
        None => value,
    }
}

#[test]
fn router_and_document_have_the_same_routes() {
    let doc = doc();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0.")),
        "OpenAPI 3.0: {}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = documented_operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let served: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), format!("{PREFIX}{}", r.path)))
        .collect();
    assert_eq!(served.len(), routes().len(), "a route is listed twice");
    assert_eq!(served, documented);
}

#[test]
fn every_operation_documents_its_errors() {
    let doc = doc();
    for (method, path, operation) in documented_operations(&doc) {
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        let mut expected = vec!["401", "403", "500"];
        if method == "POST" {
            expected.extend(["400", "413"]);
            assert!(
                operation["requestBody"].is_object(),
                "{method} {path} documents no body"
            );
        }
        if path.contains('{') {
            expected.push("400");
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{method} {path} does not document {status}"
            );
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            let schema = resolve(&doc, &response["content"]["application/json"]["schema"]);
            if !status.starts_with('2') {
                assert_eq!(
                    schema, &doc["components"]["schemas"]["Error"],
                    "{method} {path} {status} is not a Matrix error"
                );
            }
        }
    }
}

#[test]
fn errcodes_are_the_documented_ones() {
    let doc = doc();
    let documented: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["errcode"]
        ["enum"]
        .as_array()
        .expect("an errcode enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let used: BTreeSet<&str> = ErrCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(used.len(), ErrCode::ALL.len(), "an errcode is listed twice");
    assert_eq!(used, documented);
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, value: &Value, count: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    assert!(
                        reference.starts_with("#/"),
                        "external reference {reference}"
                    );
                    assert!(
                        doc.pointer(&reference[1..]).is_some(),
                        "{reference} points nowhere"
                    );
                    *count += 1;
                }
                map.values().for_each(|v| walk(doc, v, count));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, count)),
            _ => {}
        }
    }
    let doc = doc();
    let mut count = 0;
    walk(&doc, &doc, &mut count);
    assert!(
        count > 10,
        "only {count} references: did parsing lose them?"
    );
}

#[test]
fn secrets_compare_whole() {
    let secret = Secret::new("0123456789abcdef0123456789abcdef");
    assert!(secret.matches("0123456789abcdef0123456789abcdef"));
    for wrong in [
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeF",
        "x",
    ] {
        assert!(!secret.matches(wrong), "{wrong:?} matched");
    }
}

#[test]
fn bearer_tokens_are_read_from_the_header() {
    assert_eq!(bearer_token("Bearer abc"), Some("abc"));
    assert_eq!(bearer_token("bearer abc"), Some("abc"));
    assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
    assert_eq!(bearer_token("Bearer "), None);
    assert_eq!(bearer_token("Bearer"), None);
    assert_eq!(bearer_token("Basic YWJjOmRlZg=="), None);
    assert_eq!(bearer_token("abc"), None);
}

/// Log lines written while a test runs, on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn the_secret_guards_every_path_and_is_never_logged() {
    const SECRET: &str = "s3cr3t-0123456789-abcdefghij-klmnop";
    const GUESS: &str = "guess-0123456789-abcdefghij-klmnopq";
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Current-thread runtime: the server task below runs on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);

    let api = Router::new().route("/networks", get(|| async { Json(json!({"ok": true})) }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, protect(api, SECRET)).into_future());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let call = |method: Method, path: &str, auth: Option<&str>| {
        let mut request = http.request(method, format!("{base}{path}"));
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let networks = &format!("{PREFIX}/networks");
    let right = &format!("Bearer {SECRET}");

    let (status, body) = call(Method::GET, networks, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["errcode"], "M_MISSING_TOKEN");
    assert!(body["error"].is_string(), "{body}");
    for not_bearer in ["Basic YWJjOmRlZg==", "Bearer ", SECRET] {
        let (status, body) = call(Method::GET, networks, Some(not_bearer)).await;
        assert_eq!(
            (status, body["errcode"].as_str()),
            (401, Some("M_MISSING_TOKEN")),
            "{not_bearer}"
        );
    }
    let prefix = format!("Bearer {}", &SECRET[..SECRET.len() - 1]);
    let longer = format!("Bearer {SECRET}x");
    let guess = format!("Bearer {GUESS}");
    for wrong in [&prefix, &longer, &guess] {
        let (status, body) = call(Method::GET, networks, Some(wrong)).await;
        assert_eq!(
            (status, body["errcode"].as_str()),
            (403, Some("M_UNKNOWN_TOKEN")),
            "{wrong}"
        );
    }
    // Without the secret, unknown paths say nothing either.
    let (status, _) = call(Method::GET, &format!("{PREFIX}/nope"), None).await;
    assert_eq!(status, 401);
    let (status, _) = call(Method::GET, "/", Some(&guess)).await;
    assert_eq!(status, 403);

    let (status, body) = call(Method::GET, networks, Some(right)).await;
    assert_eq!((status, &body), (200, &json!({"ok": true})));
    let lowercase = format!("bearer {SECRET}");
    let (status, _) = call(Method::GET, networks, Some(&lowercase)).await;
    assert_eq!(status, 200);
    for unknown in [&format!("{PREFIX}/nope"), "/", "/_matrix/app/v1/ping"] {
        let (status, body) = call(Method::GET, unknown, Some(right)).await;
        assert_eq!(
            (status, body["errcode"].as_str()),
            (404, Some("M_UNRECOGNIZED")),
            "{unknown}"
        );
    }
    let (status, body) = call(Method::DELETE, networks, Some(right)).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (405, Some("M_UNRECOGNIZED"))
    );

    let logs = logs.text();
    assert!(
        logs.contains("provisioning request")
            && logs.contains(networks)
            && logs.contains("status=401")
            && logs.contains("status=403")
            && logs.contains("status=200"),
        "every request is logged: {logs}"
    );
    assert!(!logs.contains(SECRET), "the secret was logged: {logs}");
    assert!(!logs.contains(GUESS), "a wrong secret was logged: {logs}");
}
