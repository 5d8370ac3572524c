//! Support for the end-to-end tests: a moto server each test starts and stops, a lake on it, a
//! recorder standing in for CloudWatch, and the tools `./infra/test` installs.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_firehose::types::{BufferingHints, ExtendedS3DestinationConfiguration};
use serde_json::Value;
use voicelake_ingest::config::Streams;
use voicelake_shared::lake::Table;

pub mod bed;
pub mod stack;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repo").to_path_buf()
}

pub fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}

/// A tool from the virtual environment `./infra/test` creates (`.venv`, or `$VOICELAKE_VENV`).
pub fn tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("VOICELAKE_VENV").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run ./infra/test, which installs the pinned tools of infra/requirements.txt into .venv",
        path.display()
    );
    path
}

/// Static fake credentials, a region, and no instance metadata probes: nothing here can reach AWS.
pub const FAKE_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", REGION),
    ("AWS_DEFAULT_REGION", REGION),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a loopback port").local_addr().expect("bound").port()
}

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(FAKE_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration with fake credentials against a local endpoint.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "voicelake-tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A lake on moto: a bucket and the four Firehose streams writing to `turns/`, `sessions/`,
/// `rejects/` and `errors/`. moto writes each `PutRecordBatch` to S3 at once, so what was sent can be read back.
pub struct Lake {
    pub bucket: String,
    pub streams: Streams,
    pub s3: aws_sdk_s3::Client,
    pub firehose: aws_sdk_firehose::Client,
}

impl Lake {
    pub async fn create(config: &SdkConfig, name: &str) -> Lake {
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build());
        let firehose = aws_sdk_firehose::Client::new(config);
        let bucket = format!("{name}-lake");
        s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
        let streams = Streams {
            turns: format!("{name}-turns"),
            sessions: format!("{name}-sessions"),
            rejects: format!("{name}-rejects"),
            errors: format!("{name}-errors"),
        };
        let lake = Lake { bucket, streams, s3, firehose };
        for table in Table::ALL {
            let (stream, prefix) = (lake.streams.of(table), format!("{}/", table.name()));
            lake.create_stream(stream, &prefix).await;
        }
        lake
    }

    /// A delivery stream writing to `prefix` of the lake's bucket.
    pub async fn create_stream(&self, stream: &str, prefix: &str) {
        let destination = ExtendedS3DestinationConfiguration::builder()
            .bucket_arn(format!("arn:aws:s3:::{}", self.bucket))
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/firehose"))
            .prefix(prefix)
            .buffering_hints(BufferingHints::builder().size_in_mbs(64).interval_in_seconds(60).build())
            .build()
            .expect("destination");
        self.firehose
            .create_delivery_stream()
            .delivery_stream_name(stream)
            .extended_s3_destination_configuration(destination)
            .send()
            .await
            .expect("delivery stream");
    }

    /// Every record written under `prefix`, parsed, in key order.
    pub async fn records(&self, prefix: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            for object in page.contents() {
                let body = self.s3.get_object().bucket(&self.bucket).key(object.key().unwrap()).send().await.expect("get object");
                let bytes = body.body.collect().await.expect("body").into_bytes();
                for line in std::str::from_utf8(&bytes).expect("records are UTF-8").lines() {
                    if !line.trim().is_empty() {
                        out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
                    }
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return out;
            }
        }
    }
}

/// Stands in for CloudWatch, whose current SDK speaks Smithy RPC v2 CBOR that moto does not: it
/// keeps the request bodies and answers `PutMetricData` as CloudWatch does, refusing a whole
/// request (400 `InvalidParameterValue`) when one of its dimension values is not 1 to 1024
/// printable ASCII characters.
pub struct CloudWatchRecorder {
    pub server: wiremock::MockServer,
}

/// The answer CloudWatch gives a request: success, or the refusal of what it holds.
struct CloudWatchRules;

impl wiremock::Respond for CloudWatchRules {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let ok = wiremock::ResponseTemplate::new(200)
            .insert_header("smithy-protocol", "rpc-v2-cbor")
            .insert_header("content-type", "application/cbor")
            .set_body_bytes(vec![0xa0]); // an empty CBOR map
        match refusal(&decode_body(request)) {
            None => ok,
            Some(message) => {
                let mut body = Vec::new();
                let error = ciborium::Value::Map(vec![
                    (ciborium::Value::Text("__type".into()), ciborium::Value::Text("InvalidParameterValue".into())),
                    (ciborium::Value::Text("message".into()), ciborium::Value::Text(message)),
                ]);
                ciborium::into_writer(&error, &mut body).expect("CBOR writes to a Vec");
                wiremock::ResponseTemplate::new(400)
                    .insert_header("smithy-protocol", "rpc-v2-cbor")
                    .insert_header("content-type", "application/cbor")
                    .set_body_bytes(body)
            }
        }
    }
}

/// A `PutMetricData` body, gunzipped (the SDK compresses bodies over 10 KB) and decoded from CBOR.
fn decode_body(r: &wiremock::Request) -> ciborium::Value {
    let gzipped = r.headers.get("content-encoding").is_some_and(|v| v.to_str().unwrap_or("").contains("gzip"));
    let body = if gzipped {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(r.body.as_slice()), &mut out).expect("gzip body");
        out
    } else {
        r.body.clone()
    };
    ciborium::from_reader(body.as_slice()).expect("PutMetricData bodies are CBOR")
}

/// Why CloudWatch would refuse the request, if it would.
fn refusal(request: &ciborium::Value) -> Option<String> {
    for datum in field(request, "MetricData").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
        for d in field(&datum, "Dimensions").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
            let value = field(&d, "Value").and_then(|v| v.as_text().map(str::to_owned)).unwrap_or_default();
            if !voicelake_shared::invariants::is_dimension_value(&value) {
                return Some(format!("The value {value} for parameter MetricData.member.1.Dimensions.member.2.Value is invalid."));
            }
        }
    }
    None
}

impl CloudWatchRecorder {
    pub async fn start() -> CloudWatchRecorder {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST")).respond_with(CloudWatchRules).mount(&server).await;
        CloudWatchRecorder { server }
    }

    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// The `PutMetricData` requests CloudWatch accepted, decoded from CBOR.
    pub async fn requests(&self) -> Vec<ciborium::Value> {
        self.server.received_requests().await.unwrap_or_default().iter().map(decode_body).filter(|r| refusal(r).is_none()).collect()
    }

    /// How many requests were refused.
    pub async fn refused(&self) -> usize {
        self.server.received_requests().await.unwrap_or_default().iter().filter(|r| refusal(&decode_body(r)).is_some()).count()
    }

    /// Sample counts per (metric name, dimension names and values) over all requests.
    pub async fn sample_counts(&self) -> std::collections::BTreeMap<(String, Vec<(String, String)>), f64> {
        self.aggregate(|_, count| count).await
    }

    /// Sums (each value times its count) per (metric name, dimensions) over all requests.
    pub async fn sums(&self) -> std::collections::BTreeMap<(String, Vec<(String, String)>), f64> {
        self.aggregate(|value, count| value * count).await
    }

    async fn aggregate(&self, f: impl Fn(f64, f64) -> f64) -> std::collections::BTreeMap<(String, Vec<(String, String)>), f64> {
        let mut out = std::collections::BTreeMap::new();
        for request in self.requests().await {
            for datum in field(&request, "MetricData").and_then(|v| v.as_array().cloned()).unwrap_or_default() {
                let name = field(&datum, "MetricName").and_then(|v| v.as_text().map(str::to_owned)).unwrap_or_default();
                let dims = field(&datum, "Dimensions")
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .map(|d| {
                        let text = |k| field(d, k).and_then(|v| v.as_text().map(str::to_owned)).unwrap_or_default();
                        (text("Name"), text("Value"))
                    })
                    .collect();
                let values: Vec<f64> =
                    field(&datum, "Values").and_then(|v| v.as_array().cloned()).unwrap_or_default().iter().filter_map(number).collect();
                let counts: Vec<f64> =
                    field(&datum, "Counts").and_then(|v| v.as_array().cloned()).unwrap_or_default().iter().filter_map(number).collect();
                let total: f64 = values.iter().zip(counts.iter().chain(std::iter::repeat(&1.0))).map(|(v, c)| f(*v, *c)).sum();
                *out.entry((name, dims)).or_insert(0.0) += total;
            }
        }
        out
    }
}

/// A field of a CBOR map.
pub fn field<'v>(value: &'v ciborium::Value, key: &str) -> Option<&'v ciborium::Value> {
    value.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
}

pub fn number(value: &ciborium::Value) -> Option<f64> {
    match value {
        ciborium::Value::Float(f) => Some(*f),
        ciborium::Value::Integer(i) => Some(i128::from(*i) as f64),
        _ => None,
    }
}

/// A queue on moto, returning its URL.
pub async fn create_queue(config: &SdkConfig, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let url = sqs.create_queue().queue_name(name).send().await.expect("queue").queue_url().expect("a queue URL").to_owned();
    (sqs, url)
}

/// Lambda's asynchronous invocation, as CloudWatch Logs uses it, standing in for the service (which
/// moto cannot run without Docker): up to 1 + `MaximumRetryAttempts` attempts (the template's 2),
/// then the invocation record in the on-failure queue.
pub struct AsyncInvocation {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub max_retries: u64,
}

pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:voicelake-ingest";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncOutcome {
    /// Succeeded at this attempt (1 = the first).
    Delivered(u64),
    /// Every attempt failed: the record is in the queue.
    Queued,
}

impl AsyncInvocation {
    pub async fn invoke<F, Fut, T, E>(&self, event: &Value, mut attempt: F) -> AsyncOutcome
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut last_error = String::new();
        for n in 1..=1 + self.max_retries {
            match attempt().await {
                Ok(_) => return AsyncOutcome::Delivered(n),
                Err(e) => last_error = e.to_string(),
            }
        }
        let record = voicelake_cli::dlq::invocation_record(FUNCTION_ARN, event, 1 + self.max_retries, &last_error);
        self.sqs.send_message().queue_url(&self.queue_url).message_body(record.to_string()).send().await.expect("the record is queued");
        AsyncOutcome::Queued
    }
}

/// How [`FaultProxy`] treats new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the upstream.
    None,
    /// Accept and never answer: the client's timeouts must fire.
    Hang,
    /// Accept and close at once: a connection reset.
    Reset,
}

/// A TCP proxy in front of a local server that injects network faults the server cannot produce.
pub struct FaultProxy {
    pub endpoint: String,
    mode: std::sync::Arc<std::sync::Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let mode = std::sync::Arc::new(std::sync::Mutex::new(Fault::None));
        let shared = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                tokio::spawn(forward(inbound, upstream.clone(), shared.clone()));
            }
        });
        FaultProxy { endpoint, mode, task }
    }

    /// Applies to every request from now on, on new and pooled connections alike.
    pub fn set(&self, fault: Fault) {
        *self.mode.lock().expect("fault mode") = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection, looking at the fault mode before each chunk the client sends, so that a
/// fault also hits the SDK's pooled keep-alive connections.
async fn forward(inbound: tokio::net::TcpStream, upstream: String, mode: std::sync::Arc<std::sync::Mutex<Fault>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let current = || *mode.lock().expect("fault mode");
    if current() == Fault::Reset {
        return;
    }
    let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let responses = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match current() {
            Fault::None => {
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            // The request goes nowhere: no answer comes, and the client's timeout must fire.
            Fault::Hang => {}
            Fault::Reset => break,
        }
    }
    responses.abort();
}

/// cargo-lambda's emulator of the Lambda runtime and invoke APIs, and the function process polling
/// it; both are stopped on drop.
pub struct Emulator {
    emulator: Child,
    function: Child,
    pub port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
        // The emulator leads its own process group; `--` keeps the negative id from reading as an option.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.emulator.id())]).status();
        let _ = self.emulator.wait();
    }
}

/// A binary of the workspace (`voicelake`, `ingest`, `notify`…), current. It is built by `cargo build
/// --workspace --all-targets`, which after `cargo test --workspace --all-targets` (./infra/test) has
/// nothing to do. `cargo run -p` of one package, or `cargo lambda watch` building a function, would
/// resolve that package's features alone and, in a clean target directory, compile most of the
/// dependencies a second time (five minutes of a CI run each).
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--locked", "--workspace", "--all-targets", "--manifest-path"])
            .arg(repo_root().join("Cargo.toml"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the workspace builds");
        // A test binary is target/<profile>/deps/NAME; the workspace's binaries are in target/<profile>.
        let exe = std::env::current_exe().expect("the test binary's path");
        exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
    });
    dir.join(name)
}

/// The `voicelake` command, current (see [`workspace_binary`]).
pub fn voicelake() -> Command {
    Command::new(workspace_binary("voicelake"))
}

/// `cargo lambda` from the virtual environment, run in the repository.
pub fn cargo_lambda() -> Command {
    let mut c = Command::new(tool("cargo-lambda"));
    c.arg("lambda");
    let venv_bin = tool("cargo-lambda").parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    c.env("PATH", std::env::join_paths(std::iter::once(venv_bin).chain(std::env::split_paths(&path))).unwrap());
    c.current_dir(repo_root());
    c
}

/// The ingest function's environment for a local run: fake credentials, the lake's streams on
/// moto, CloudWatch on the recorder.
pub fn function_env(moto: &Moto, recorder: &CloudWatchRecorder, lake: &Lake, environment: &str) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&str, String)> = FAKE_ENV.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("VOICELAKE_TURNS_STREAM", lake.streams.turns.clone()),
        ("VOICELAKE_SESSIONS_STREAM", lake.streams.sessions.clone()),
        ("VOICELAKE_REJECTS_STREAM", lake.streams.rejects.clone()),
        ("VOICELAKE_ERRORS_STREAM", lake.streams.errors.clone()),
        ("VOICELAKE_ENVIRONMENT", environment.to_owned()),
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", recorder.endpoint()),
    ]);
    env
}

impl Emulator {
    /// The workspace's `ingest` function with `env` under the emulator, both writing to `log`.
    pub fn ingest(env: &[(&str, String)], log: &Path) -> Emulator {
        Self::start(&workspace_binary("ingest"), "ingest", env, log)
    }

    /// `cargo lambda watch --only-lambda-apis` serving function `name`, and `binary` started the way
    /// Lambda starts a custom runtime: its environment names the runtime API it polls. Ready when the
    /// emulator listens; an invocation waits for the function's first poll.
    pub fn start(binary: &Path, name: &str, env: &[(&str, String)], log: &Path) -> Emulator {
        assert!(binary.is_file(), "{} is built", binary.display());
        let port = free_port();
        let out = std::fs::File::create(log).unwrap();
        let emulator = cargo_lambda()
            .args(["watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .stdout(out.try_clone().unwrap())
            .stderr(out.try_clone().unwrap())
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the emulator did not listen: {}", std::fs::read_to_string(log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        let function = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/{name}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // The template's MemorySize of every function.
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        Emulator { emulator, function, port }
    }

    /// `cargo lambda invoke FUNCTION --data-file` with `event`: the function's answer.
    pub fn invoke(&self, function: &str, event: &Value, dir: &Path, log: &Path) -> Value {
        let file = dir.join(format!("event-{}.json", free_port()));
        std::fs::write(&file, serde_json::to_vec_pretty(event).unwrap()).unwrap();
        let out = cargo_lambda()
            .args(["invoke", function, "--data-file", file.to_str().unwrap(), "--output-format", "json"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .output()
            .expect("cargo lambda invoke runs");
        assert!(
            out.status.success(),
            "invoke failed: {}\n--- emulator log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// The Lambda API endpoint of the emulator (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The pending-parts table as the template defines it (partition key `pk`, sort key `sk`), on moto.
pub async fn create_pending_table(config: &SdkConfig, name: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let client = aws_sdk_dynamodb::Client::new(config);
    let attribute = |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("the pending-parts table");
    client
}

#[cfg(test)]
mod supply_chain {
    /// `name==version` of each requirement line, names normalized as pip does (PEP 503).
    fn pins(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with([' ', '#']) && l.contains("=="))
            .map(|l| {
                let (name, rest) = l.split_once("==").unwrap();
                let name = name.split('[').next().unwrap().to_lowercase().replace(['_', '.'], "-");
                (name, rest.split([' ', ';', '\\']).next().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn every_chosen_tool_is_locked_at_its_version_and_every_locked_package_has_hashes() {
        let root = super::repo_root();
        let chosen = pins(&std::fs::read_to_string(root.join("infra/requirements.txt")).unwrap());
        let lock_text = std::fs::read_to_string(root.join("infra/requirements.lock")).unwrap();
        let locked = pins(&lock_text);
        assert!(chosen.len() >= 8, "{chosen:?}");
        for (name, version) in &chosen {
            assert_eq!(locked.get(name), Some(version), "{name} in infra/requirements.lock: regenerate it (see its header)");
        }
        // Each package entry is `name==version \` followed by its `--hash=sha256:` lines.
        let entries: Vec<&str> = lock_text.split('\n').filter(|l| !l.starts_with([' ', '#']) && !l.is_empty()).collect();
        assert_eq!(entries.len(), locked.len());
        for block in
            lock_text.split("\n").collect::<Vec<_>>().split(|l| !l.starts_with(' ') && !l.is_empty() && !l.starts_with('#')).skip(1)
        {
            assert!(block.iter().any(|l| l.trim_start().starts_with("--hash=sha256:")), "an entry without hashes: {block:?}");
        }
    }
}
