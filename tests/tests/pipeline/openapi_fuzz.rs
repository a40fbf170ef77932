//! A fuzzer driven by the services' own `/openapi.json`: for every path and method the spec
//! lists, requests made from the spec by a seeded RNG — known, unknown and garbage path
//! parameters; random query strings; JSON bodies from the schema, then broken (wrong types,
//! missing and extra fields, huge numbers, deep nesting, long strings); random multipart forms,
//! manifests and zips — sent with the admin key, without a key, and with keys that are not keys.
//!
//! Every answer must be a status the spec documents for the operation (or one that applies
//! everywhere: 401 403 404 405 413 429), never a 500, within 30 s, and every 4xx/5xx must be
//! the JSON error `{"error": {"code", "message"}}`. `EASEL_FUZZ_SEED=<n>` replays a run (the
//! seed is printed with every failure); `EASEL_FUZZ_ROUNDS` changes how many requests each
//! operation gets.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use easel_tests::{TestApp, client_with_key, paintings};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Map, Value, json};

/// Statuses any operation may answer: no or a bad key, no such route or method, a body over
/// the limit, the rate limit.
const EVERYWHERE: &[u16] = &[401, 403, 404, 405, 413, 429];
const TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SEED: u64 = 0x00ea_5e1f_u64;
const DEFAULT_ROUNDS: usize = 36;
const COMPETITION: &str = "fuzz-open";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_its_spec_says() {
    let seed = std::env::var("EASEL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let rounds = std::env::var("EASEL_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    let app = TestApp::spawn().await;
    let known = Known::set_up(&app).await;
    let callers = Callers::new(&app);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut cut_off = 0;
    watch_for_panics();

    for (service, base) in [("ingest", &app.ingest_url), ("api", &app.api_url)] {
        let spec: Value = app.anon.get(format!("{base}/openapi.json")).send().await.expect("GET /openapi.json").json().await.expect("a JSON spec");
        let operations = operations(&spec);
        assert!(!operations.is_empty(), "{service}: the spec lists no operations");
        for operation in &operations {
            for _ in 0..rounds {
                let request = Request::generate(&spec, operation, &known, &mut rng);
                let outcome = send(&callers, base, operation, &request, &mut rng).await;
                sent += 1;
                match outcome {
                    Ok(Answer::Checked) => {}
                    Ok(Answer::CutOff) => cut_off += 1,
                    Err(problem) => failures.push(format!("{service} {} {}: {problem}", request.method, request.path_and_query)),
                }
            }
        }
    }
    failures.extend(PANICS.lock().expect("the panic list").iter().map(|p| format!("a panic outside the test: {p}")));
    eprintln!("openapi fuzz: {sent} requests ({cut_off} refused while their bodies were still being sent), seed {seed}");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests answered against the spec (replay with EASEL_FUZZ_SEED={seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Panics anywhere but in the test's own code: a panicking handler drops its connection, which
/// for an upload looks just like an early refusal, so panics are watched for themselves.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn watch_for_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        if !location.starts_with("tests/") {
            let payload = info.payload();
            let message = payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("");
            if let Ok(mut panics) = PANICS.lock() {
                panics.push(format!("{location}: {message}"));
            }
        }
        previous(info);
    }));
}

/// How a request went, when it went as the spec says.
enum Answer {
    Checked,
    /// The server answered before reading the whole body (a refusal from the headers: no key,
    /// an unknown competition) and closed the connection while the client was still sending.
    CutOff,
}

/// What exists in the app, so some requests name real things.
struct Known {
    submission: String,
    /// A key made for the fuzzer to revoke (never the admin key the requests use).
    revocable_key: String,
    painting: Vec<u8>,
    png: Vec<u8>,
}

impl Known {
    async fn set_up(app: &TestApp) -> Self {
        assert_eq!(app.create_competition(COMPETITION, None).await.status(), 201);
        let painting = paintings().iter().min_by_key(|p| p.bytes.len()).expect("a sample painting");
        let submission = app.submit_painting(COMPETITION, painting, "fuzz-seed-entry").await.to_string();
        let response = app
            .http
            .post(format!("{}/v1/keys", app.ingest_url))
            .json(&json!({ "name": "fuzz revocable", "scopes": [format!("competition:{COMPETITION}:read")] }))
            .send()
            .await
            .expect("POST /v1/keys");
        assert_eq!(response.status(), 201);
        let key: Value = response.json().await.expect("a JSON key");
        let revocable_key = key["id"].as_str().expect("a key id").to_string();
        Self { submission, revocable_key, painting: painting.bytes.clone(), png: png(24, 16) }
    }
}

/// Who sends a request.
struct Callers {
    admin: reqwest::Client,
    anonymous: reqwest::Client,
    garbage: reqwest::Client,
    /// Shaped like a token, but no key has it.
    unknown: reqwest::Client,
}

impl Callers {
    fn new(app: &TestApp) -> Self {
        let unknown = format!("easel_{}", "ab".repeat(32));
        Self {
            admin: app.http.clone(),
            anonymous: app.anon.clone(),
            garbage: client_with_key(Some("not-a-key")).expect("a client"),
            unknown: client_with_key(Some(&unknown)).expect("a client"),
        }
    }

    fn pick(&self, rng: &mut StdRng) -> (&'static str, &reqwest::Client) {
        match rng.random_range(0..20) {
            0..10 => ("admin", &self.admin),
            10..14 => ("no key", &self.anonymous),
            14..17 => ("a garbage key", &self.garbage),
            _ => ("an unknown key", &self.unknown),
        }
    }
}

/// One operation of the spec.
struct Operation {
    path: String,
    method: Method,
    /// The other methods the path takes (a request sent with one of those is another operation).
    path_methods: Vec<Method>,
    spec: Value,
    documented: Vec<u16>,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    let Some(paths) = spec["paths"].as_object() else { return operations };
    for (path, item) in paths {
        let Some(item) = item.as_object() else { continue };
        let methods: Vec<Method> = item.keys().filter_map(|m| m.to_uppercase().parse().ok()).collect();
        for (method, op) in item {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let documented = op["responses"].as_object().map(|r| r.keys().filter_map(|s| s.parse().ok()).collect()).unwrap_or_default();
            operations.push(Operation { path: path.clone(), method, path_methods: methods.clone(), spec: op.clone(), documented });
        }
    }
    operations
}

/// A request made from an operation, ready to send.
struct Request {
    method: Method,
    path_and_query: String,
    body: Body,
    /// What the request is, for a failure message.
    about: String,
}

enum Body {
    None,
    Raw { content_type: Option<String>, bytes: Vec<u8> },
    Multipart(Vec<Part>),
}

impl Body {
    fn is_empty(&self) -> bool {
        match self {
            Body::None => true,
            Body::Raw { bytes, .. } => bytes.is_empty(),
            Body::Multipart(parts) => parts.is_empty(),
        }
    }
}

#[derive(Clone)]
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl Request {
    fn generate(spec: &Value, operation: &Operation, known: &Known, rng: &mut StdRng) -> Self {
        let mut about = String::new();
        let mut path = operation.path.clone();
        let parameters = operation.spec["parameters"].as_array().cloned().unwrap_or_default();
        for parameter in parameters.iter().filter(|p| p["in"] == "path") {
            let name = parameter["name"].as_str().unwrap_or_default();
            let (kind, value) = path_value(name, &resolve(spec, &parameter["schema"]), known, rng);
            let _ = write!(about, "{name}: {kind}; ");
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        let query = query_string(spec, &parameters, rng);
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let mut method = operation.method.clone();
        if rng.random_bool(0.05) {
            let others: Vec<Method> = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
                .into_iter()
                .filter(|m| !operation.path_methods.contains(m))
                .collect();
            if let Some(other) = others.choose(rng) {
                method = other.clone();
                about.push_str("a method the path does not take; ");
            }
        }
        let body = match operation.spec["requestBody"]["content"].as_object() {
            Some(content) if content.contains_key("application/json") => {
                let schema = resolve(spec, &content["application/json"]["schema"]);
                json_body(spec, &schema, known, rng, &mut about)
            }
            Some(content) if content.contains_key("multipart/form-data") => {
                let schema = resolve(spec, &content["multipart/form-data"]["schema"]);
                multipart_body(spec, &schema, known, rng, &mut about)
            }
            _ if rng.random_bool(0.1) => {
                about.push_str("a body nobody asked for; ");
                Body::Raw { content_type: Some("application/json".into()), bytes: br#"{"surprise": true}"#.to_vec() }
            }
            _ => Body::None,
        };
        Self { method, path_and_query: path, body, about }
    }
}

/// Follows a `$ref` into `components`.
fn resolve(spec: &Value, schema: &Value) -> Value {
    let mut schema = schema.clone();
    for _ in 0..8 {
        let Some(reference) = schema["$ref"].as_str() else { break };
        let mut target = spec;
        for step in reference.trim_start_matches("#/").split('/') {
            target = &target[step];
        }
        schema = target.clone();
    }
    schema
}

/// Texts no handler should trip over, already percent-encoded or raw (the URL parser encodes
/// what needs it).
const GARBAGE_SEGMENTS: &[&str] = &[
    "..%2F..%2Fetc%2Fpasswd",
    "../../etc/passwd",
    "%2e%2e",
    "%00",
    "a%00b",
    "%FF%FE",
    "%C0%AF",
    "%E2%80%AE",
    "gpj.exe%E2%80%AEentry",
    "\u{202E}evil",
    "\u{2066}isolate\u{2069}",
    "😀🎨",
    "ünïcödé",
    "%",
    "%zz",
    "'; DROP TABLE submissions; --",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "null",
    "-1",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "FUZZ-OPEN",
    " fuzz-open",
    "fuzz-open%20",
    "%09",
    "\t\n",
];

/// A path parameter's value: a known one, an unknown one of the right shape, or garbage.
fn path_value(name: &str, schema: &Value, known: &Known, rng: &mut StdRng) -> (&'static str, String) {
    let is_uuid = schema["format"] == "uuid";
    match rng.random_range(0..10) {
        0..4 => {
            let value = match name {
                "slug" => COMPETITION.to_string(),
                "id" if is_uuid && rng.random_bool(0.5) => known.revocable_key.clone(),
                _ if is_uuid => known.submission.clone(),
                _ => COMPETITION.to_string(),
            };
            ("known", value)
        }
        4..6 => {
            let value = if is_uuid { uuid::Uuid::new_v4().to_string() } else { random_slug(rng) };
            ("unknown", value)
        }
        6 => ("long", "a".repeat(rng.random_range(65..5000))),
        7 => ("long unicode", percent_encode(&"é🎨\u{202E}".repeat(rng.random_range(10..400)))),
        _ => ("garbage", GARBAGE_SEGMENTS.choose(rng).expect("garbage").to_string()),
    }
}

fn random_slug(rng: &mut StdRng) -> String {
    let len = rng.random_range(3..20);
    (0..len).map(|_| *b"abcdefghijklmnopqrstuvwxyz0123456789".choose(rng).expect("a letter") as char).collect()
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query string: the operation's own parameters with good and bad values, and strangers.
fn query_string(spec: &Value, parameters: &[Value], rng: &mut StdRng) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for parameter in parameters.iter().filter(|p| p["in"] == "query") {
        if rng.random_bool(0.5) {
            continue;
        }
        let name = parameter["name"].as_str().unwrap_or_default().to_string();
        let schema = resolve(spec, &parameter["schema"]);
        let value = if rng.random_bool(0.5) { scalar_text(&schema, rng) } else { garbage_text(rng) };
        pairs.push((name.clone(), value));
        if rng.random_bool(0.1) {
            pairs.push((name, garbage_text(rng)));
        }
    }
    if rng.random_bool(0.2) {
        pairs.push((garbage_text(rng), garbage_text(rng)));
    }
    let mut query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
    if rng.random_bool(0.1) {
        query.push(["%", "%zz", "a=%FF", "&&&", "=", "a==b", "%00=%00", "cursor=%E2%80%AE"].choose(rng).expect("raw").to_string());
    }
    query.join("&")
}

/// A plausible value for a scalar schema, as text.
fn scalar_text(schema: &Value, rng: &mut StdRng) -> String {
    match schema_type(schema).as_str() {
        "integer" => rng.random_range(-5i64..600).to_string(),
        "number" => format!("{:.2}", rng.random_range(-10.0f64..120.0)),
        "boolean" => rng.random_bool(0.5).to_string(),
        _ => random_slug(rng),
    }
}

fn garbage_text(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => String::new(),
        1 => "9".repeat(rng.random_range(20..400)),
        2 => ["NaN", "inf", "-inf", "1e999", "-0", "0x10", "1.5", "-9223372036854775809"].choose(rng).expect("a number").to_string(),
        3 => "x".repeat(rng.random_range(100..8000)),
        4 => "\u{202E}\u{0000}\u{001B}[31m".to_string(),
        5 => "😀".repeat(rng.random_range(1..100)),
        6 => GARBAGE_SEGMENTS.choose(rng).expect("garbage").to_string(),
        _ => random_slug(rng),
    }
}

fn schema_type(schema: &Value) -> String {
    match &schema["type"] {
        Value::String(t) => t.clone(),
        // OpenAPI 3.1: ["string", "null"].
        Value::Array(types) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null").to_string(),
        _ if schema["properties"].is_object() => "object".into(),
        _ => String::new(),
    }
}

/// A value for `schema` that the handler might accept (hints by field name for the fields a
/// random value would never get right).
fn value_for(spec: &Value, schema: &Value, field: &str, known: &Known, rng: &mut StdRng, depth: usize) -> Value {
    let schema = resolve(spec, schema);
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let options: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
            if let Some(option) = options.choose(rng) {
                return value_for(spec, option, field, known, rng, depth + 1);
            }
        }
    }
    if let Some(values) = schema["enum"].as_array()
        && let Some(value) = values.choose(rng)
    {
        return value.clone();
    }
    match (field, schema_type(&schema).as_str()) {
        ("slug", _) => json!(if rng.random_bool(0.7) { random_slug(rng) } else { COMPETITION.to_string() }),
        ("title", _) => json!(format!("Fuzz {}", random_slug(rng))),
        ("name", _) => json!(format!("fuzz {}", random_slug(rng))),
        ("scopes", _) => {
            let scopes = ["admin", "competition:fuzz-open:read", "competition:fuzz-open:submit", "competition:nope:judge", "root"];
            json!((0..rng.random_range(1..4)).map(|_| *scopes.choose(rng).expect("a scope")).collect::<Vec<_>>())
        }
        ("expires_at", _) => json!(if rng.random_bool(0.5) { "2999-01-01T00:00:00Z" } else { "2001-01-01T00:00:00Z" }),
        (_, "object") if depth < 6 => {
            let mut object = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    object.insert(name.clone(), value_for(spec, property, name, known, rng, depth + 1));
                }
            }
            Value::Object(object)
        }
        (_, "array") if depth < 6 => {
            json!((0..rng.random_range(0..4)).map(|_| value_for(spec, &schema["items"], field, known, rng, depth + 1)).collect::<Vec<_>>())
        }
        (_, "integer") => json!(rng.random_range(0i64..1000)),
        (_, "number") => json!(rng.random_range(0.0f64..100.0)),
        (_, "boolean") => json!(rng.random_bool(0.5)),
        (_, "string") if schema["format"] == "uuid" => json!(known.submission),
        (_, "string") if schema["format"] == "date-time" => json!("2999-01-01T00:00:00Z"),
        (_, "string") => json!(random_slug(rng)),
        _ => Value::Null,
    }
}

/// A value of some other type than `value`.
fn wrong_type(value: &Value, rng: &mut StdRng) -> Value {
    let candidates = [json!(null), json!(true), json!(-1), json!(1.5e300), json!("text"), json!([1, "two"]), json!({ "nested": {} })];
    loop {
        let candidate = candidates.choose(rng).expect("a candidate").clone();
        if std::mem::discriminant(&candidate) != std::mem::discriminant(value) {
            return candidate;
        }
    }
}

fn json_body(spec: &Value, schema: &Value, known: &Known, rng: &mut StdRng, about: &mut String) -> Body {
    let mut value = value_for(spec, schema, "", known, rng, 0);
    let json = |bytes: Vec<u8>| Body::Raw { content_type: Some("application/json".into()), bytes };
    let fields: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let field = fields.choose(rng).cloned();
    let mutation = rng.random_range(0..14);
    match (mutation, field) {
        (0..3, _) => about.push_str("a JSON body from the schema; "),
        (3, Some(field)) => {
            about.push_str(&format!("{field} of the wrong type; "));
            value[&field] = wrong_type(&value[&field], rng);
        }
        (4, Some(field)) => {
            about.push_str(&format!("{field} missing; "));
            value.as_object_mut().expect("an object").remove(&field);
        }
        (5, _) => {
            about.push_str("an extra field; ");
            if let Some(object) = value.as_object_mut() {
                object.insert(garbage_text(rng), wrong_type(&Value::Null, rng));
            }
        }
        (6, Some(field)) => {
            about.push_str(&format!("{field} a huge number; "));
            value[&field] = json!("__HUGE__");
            let huge = ["1e999", "-1e999", "123456789012345678901234567890", "1.7976931348623157e309", "-0.0"].choose(rng).expect("huge");
            return json(value.to_string().replace("\"__HUGE__\"", huge).into_bytes());
        }
        (7, _) => {
            let depth = rng.random_range(100..20_000);
            about.push_str(&format!("nested {depth} deep; "));
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            if let Some(field) = fields.first() {
                text = format!("{{\"{field}\": {text}}}");
            }
            return json(text.into_bytes());
        }
        (8, Some(field)) => {
            let len = *[1_000usize, 60_000, 70_000, 300_000].choose(rng).expect("a length");
            about.push_str(&format!("{field} a {len}-character string; "));
            value[&field] = json!("\u{00e9}".repeat(len / 2));
        }
        (9, _) => {
            about.push_str("not JSON; ");
            let text = value.to_string();
            let cut = rng.random_range(0..=text.len());
            let bytes = match rng.random_range(0..4) {
                0 => text.as_bytes()[..cut].to_vec(),
                1 => Vec::new(),
                2 => vec![0xFF, 0xFE, 0x00, b'{'],
                _ => b"{\"slug\": \"a\", \"slug\": \"b\"}".to_vec(),
            };
            return json(bytes);
        }
        (10, _) => {
            about.push_str("the wrong content type; ");
            let content_type = [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json; charset=latin1"), Some("multipart/form-data")]
                .choose(rng)
                .expect("a type")
                .map(str::to_string);
            return Body::Raw { content_type, bytes: value.to_string().into_bytes() };
        }
        (11, _) => {
            about.push_str("a JSON value that is not an object; ");
            value = [json!(null), json!([]), json!("text"), json!(7), json!([value.clone()])].choose(rng).expect("a value").clone();
        }
        (12, Some(field)) => {
            about.push_str(&format!("{field} with control and bidi characters; "));
            value[&field] = json!(format!("a\u{0000}b\u{202E}c\u{0007}\u{2066}{}", random_slug(rng)));
        }
        _ => about.push_str("a JSON body from the schema; "),
    }
    json(value.to_string().into_bytes())
}

fn multipart_body(spec: &Value, schema: &Value, known: &Known, rng: &mut StdRng, about: &mut String) -> Body {
    if rng.random_bool(0.08) {
        about.push_str("a broken multipart body; ");
        let (content_type, bytes): (Option<&str>, &[u8]) = *[
            (Some("multipart/form-data"), b"no boundary at all".as_slice()),
            (Some("multipart/form-data; boundary=XYZ"), b"--XYZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nnever ends".as_slice()),
            (Some("multipart/form-data; boundary=XYZ"), b"".as_slice()),
            (Some("multipart/form-data; boundary=XYZ"), b"--XYZ\r\n\r\n\r\n--XYZ--\r\n".as_slice()),
            (Some("application/json"), b"{}".as_slice()),
            (None, b"\x00\x01\x02".as_slice()),
        ]
        .choose(rng)
        .expect("a broken body");
        return Body::Raw { content_type: content_type.map(str::to_string), bytes: bytes.to_vec() };
    }
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let mut parts = Vec::new();
    // The bulk form: a manifest and its files, or an archive.
    let bulk = properties.contains_key("manifest") || properties.contains_key("archive");
    if bulk {
        let files = image_files(known, rng);
        if rng.random_bool(0.5) {
            about.push_str("manifest and files; ");
            let (file_name, content_type, manifest) = manifest(&files, rng);
            parts.push(Part { name: "manifest".into(), file_name, content_type, bytes: manifest });
            for (name, bytes) in files.iter().filter(|_| rng.random_bool(0.9)) {
                parts.push(Part { name: "files".into(), file_name: Some(name.clone()), content_type: Some("image/png".into()), bytes: bytes.clone() });
            }
        } else {
            about.push_str("an archive; ");
            let archive = archive(&files, rng, about);
            parts.push(Part { name: "archive".into(), file_name: Some("entries.zip".into()), content_type: Some("application/zip".into()), bytes: archive });
        }
    } else {
        about.push_str("a form from the schema; ");
        for (name, property) in &properties {
            if rng.random_bool(0.15) {
                let _ = write!(about, "no {name}; ");
                continue;
            }
            let property = resolve(spec, property);
            let binary = property["format"] == "binary" || property["contentMediaType"].is_string() || name == "image";
            let part = if binary {
                let (what, bytes) = image_bytes(known, rng);
                let _ = write!(about, "{name}: {what}; ");
                let content_type = [Some("image/jpeg"), Some("image/png"), Some("text/plain"), None].choose(rng).expect("a type").map(str::to_string);
                Part { name: name.clone(), file_name: Some("entry.jpg".into()), content_type, bytes }
            } else {
                let text = if rng.random_bool(0.5) { format!("fuzz-{}", random_slug(rng)) } else { garbage_text(rng) };
                Part { name: name.clone(), file_name: None, content_type: None, bytes: text.into_bytes() }
            };
            parts.push(part);
        }
    }
    if rng.random_bool(0.1) && !parts.is_empty() {
        about.push_str("a part twice; ");
        let part = parts.choose(rng).expect("a part").clone();
        parts.push(part);
    }
    if rng.random_bool(0.1) {
        about.push_str("an unknown part; ");
        parts.push(Part { name: garbage_text(rng), file_name: None, content_type: None, bytes: b"?".to_vec() });
    }
    if rng.random_bool(0.05) {
        about.push_str("invalid UTF-8 text; ");
        if let Some(part) = parts.iter_mut().find(|p| p.file_name.is_none()) {
            part.bytes = vec![0xC3, 0x28, 0xFF];
        }
    }
    Body::Multipart(parts)
}

/// An image for a form: real, tiny, cut short, noise, or nothing.
fn image_bytes(known: &Known, rng: &mut StdRng) -> (&'static str, Vec<u8>) {
    match rng.random_range(0..8) {
        0..2 => ("a painting", known.painting.clone()),
        2..4 => ("a small PNG", png(rng.random_range(1..40), rng.random_range(1..40))),
        4 => ("a truncated painting", known.painting[..rng.random_range(0..known.painting.len())].to_vec()),
        5 => ("noise", (0..rng.random_range(0..4096)).map(|_| rng.random()).collect()),
        6 => ("nothing", Vec::new()),
        _ => {
            let mut bytes = known.png.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= rng.random_range(1..=255u8);
            }
            ("a bit-flipped PNG", bytes)
        }
    }
}

fn image_files(known: &Known, rng: &mut StdRng) -> Vec<(String, Vec<u8>)> {
    (0..rng.random_range(0..4))
        .map(|i| {
            let name = if rng.random_bool(0.9) { format!("f{i}.png") } else { GARBAGE_SEGMENTS.choose(rng).expect("a name").to_string() };
            (name, image_bytes(known, rng).1)
        })
        .collect()
}

/// A bulk manifest naming `files` (and some it does not have), as CSV or JSON lines, often
/// broken: (file name, part type, bytes).
fn manifest(files: &[(String, Vec<u8>)], rng: &mut StdRng) -> (Option<String>, Option<String>, Vec<u8>) {
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    if rng.random_bool(0.2) {
        names.push("missing.png".into());
    }
    if rng.random_bool(0.1) && !names.is_empty() {
        names.push(names[0].clone());
    }
    let external_id = |rng: &mut StdRng| if rng.random_bool(0.7) { format!("ext-{}", random_slug(rng)) } else { garbage_text(rng) };
    let csv = rng.random_bool(0.5);
    let mut text = String::new();
    if csv {
        text.push_str(["file,external_id,description\n", "file\n", "nope,columns\n", ""].choose(rng).expect("a header"));
        for name in &names {
            let _ = writeln!(text, "\"{}\",\"{}\",\"{}\"", name.replace('"', "\"\""), external_id(rng).replace('"', "\"\""), garbage_text(rng).replace('"', "\"\""));
        }
    } else {
        for name in &names {
            let mut line = json!({ "file": name, "external_id": external_id(rng), "description": garbage_text(rng) });
            match rng.random_range(0..10) {
                0 => line["extra"] = json!(1),
                1 => line["file"] = json!(7),
                2 => line = json!([name]),
                _ => {}
            }
            let _ = writeln!(text, "{line}");
        }
    }
    let mut bytes = text.into_bytes();
    match rng.random_range(0..10) {
        0 => bytes.truncate(rng.random_range(0..=bytes.len())),
        1 => bytes.extend([0xFF, 0xFE, b'\n']),
        2 => bytes.extend(b"\n\n{\"file\": \"a\"\n"),
        _ => {}
    }
    let (file_name, content_type) = *[
        (Some("manifest.csv"), Some("text/csv")),
        (Some("manifest.jsonl"), Some("application/x-ndjson")),
        (Some("manifest"), None),
        (None, None),
        (Some(if csv { "m.jsonl" } else { "m.csv" }), None),
    ]
    .choose(rng)
    .expect("a name");
    (file_name.map(str::to_string), content_type.map(str::to_string), bytes)
}

/// A zip of a manifest and `files`, sometimes damaged.
fn archive(files: &[(String, Vec<u8>)], rng: &mut StdRng, about: &mut String) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if rng.random_bool(0.5) { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let (_, _, manifest_bytes) = manifest(files, rng);
    let manifest_name = *["manifest.jsonl", "manifest.csv", "sub/manifest.jsonl", "MANIFEST.JSONL"].choose(rng).expect("a name");
    if rng.random_bool(0.9) {
        zip.start_file(manifest_name, options).expect("a zip entry");
        zip.write_all(&manifest_bytes).expect("writing the manifest");
    }
    for (name, bytes) in files {
        if zip.start_file(name.as_str(), options).is_ok() {
            zip.write_all(bytes).expect("writing a file");
        }
    }
    if rng.random_bool(0.1) {
        let _ = zip.add_directory("folder/", options);
    }
    let mut bytes = zip.finish().expect("closing the zip").into_inner();
    match rng.random_range(0..10) {
        0 => {
            about.push_str("truncated; ");
            bytes.truncate(rng.random_range(0..=bytes.len()));
        }
        1 => {
            about.push_str("bytes flipped; ");
            for _ in 0..rng.random_range(1..10) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= rng.random_range(1..=255u8);
            }
        }
        2 => {
            about.push_str("claims more entries; ");
            if let Some(eocd) = bytes.windows(4).rposition(|w| w == [0x50, 0x4b, 0x05, 0x06]) {
                let count = *[0u16, 3000, 0xFFFF].choose(rng).expect("a count");
                bytes[eocd + 8..eocd + 10].copy_from_slice(&count.to_le_bytes());
                bytes[eocd + 10..eocd + 12].copy_from_slice(&count.to_le_bytes());
            }
        }
        3 => {
            about.push_str("not a zip; ");
            bytes = b"PK\x05\x06 but no more".to_vec();
        }
        _ => {}
    }
    bytes
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, 120]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG");
    out.into_inner()
}

/// Sends `request` and checks the answer against the spec.
async fn send(callers: &Callers, base: &str, operation: &Operation, request: &Request, rng: &mut StdRng) -> Result<Answer, String> {
    let (caller, client) = callers.pick(rng);
    let context = format!("[as {caller}; {}]", request.about.trim_end_matches("; "));
    let url = format!("{base}{}", request.path_and_query);
    let mut builder = client.request(request.method.clone(), &url);
    match &request.body {
        Body::None => {}
        Body::Raw { content_type, bytes } => {
            if let Some(content_type) = content_type {
                builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
            }
            builder = builder.body(bytes.clone());
        }
        Body::Multipart(parts) => {
            let mut form = reqwest::multipart::Form::new();
            for part in parts {
                let mut p = reqwest::multipart::Part::bytes(part.bytes.clone());
                if let Some(name) = &part.file_name {
                    p = p.file_name(name.clone());
                }
                if let Some(content_type) = &part.content_type {
                    p = p.mime_str(content_type).map_err(|e| format!("{context} building a part: {e}"))?;
                }
                form = form.part(part.name.clone(), p);
            }
            builder = builder.multipart(form);
        }
    }
    let exchange = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, content_type, body))
    };
    let (status, content_type, body) = match tokio::time::timeout(TIMEOUT, exchange).await {
        Err(_) => return Err(format!("{context} no answer within {TIMEOUT:?}")),
        // A URL the client itself will not send is no request.
        Ok(Err(e)) if e.is_builder() => return Ok(Answer::Checked),
        Ok(Err(e)) => {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let _ = write!(chain, ": {cause}");
                source = cause.source();
            }
            let while_sending = ["writing a body", "Broken pipe", "reset by peer", "connection closed before message completed"].iter().any(|s| chain.contains(s));
            if !request.body.is_empty() && while_sending {
                return Ok(Answer::CutOff);
            }
            return Err(format!("{context} the request failed: {chain}"));
        }
        Ok(Ok(answer)) => answer,
    };
    let preview = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status == 500 {
        return Err(format!("{context} 500: {preview}"));
    }
    let same_operation = request.method == operation.method;
    let documented = (same_operation && operation.documented.contains(&status)) || EVERYWHERE.contains(&status);
    if !documented {
        return Err(format!("{context} {status} is not in the spec ({:?} or everywhere {EVERYWHERE:?}): {preview}", operation.documented));
    }
    if status >= 400 {
        let error: Value = serde_json::from_slice(&body).map_err(|_| format!("{context} {status} with a body that is not JSON ({content_type}): {preview}"))?;
        let code = error["error"]["code"].as_str().unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        if code.is_empty() || message.is_empty() || !content_type.starts_with("application/json") {
            return Err(format!("{context} {status} is not a JSON error ({content_type}): {preview}"));
        }
    }
    Ok(Answer::Checked)
}
