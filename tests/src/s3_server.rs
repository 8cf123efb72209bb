//! A real S3 server on loopback for the object-storage tests: `strata-s3-server`
//! (`tests/s3-server`: the store of `s3s-fs` from crates.io, which checks every request's SigV4
//! signature and keeps objects as files under a directory) or `s3s-fs`'s own binary, started
//! per test on a free port with its own root and keys.
//!
//! `.ci/run` builds `tests/s3-server` and sets `STRATA_S3S_FS` to the binary and
//! `STRATA_REQUIRE_S3=1`; elsewhere `strata-s3-server` or `s3s-fs` is looked up on `PATH`, and
//! without either the tests that need one say so and pass (unless `STRATA_REQUIRE_S3=1`, when
//! they fail). Shared by `tests/tests/engine.rs` and
//! `host/tests/s3.rs` (through `#[path]`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "strata-test-key";
/// Its secret.
pub const SECRET_KEY: &str = "strata-test-secret-0123456789";

/// A running S3 server, stopped (killed) on drop.
pub struct S3Server {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    /// The directory holding its buckets (`<root>/<bucket>/<key>`).
    pub root: tempfile::TempDir,
}

/// The S3 server binary, or `None` (after saying why) when the tests should skip.
fn binary() -> Option<PathBuf> {
    let required = std::env::var("STRATA_REQUIRE_S3").is_ok_and(|v| v == "1");
    let found = std::env::var_os("STRATA_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .flat_map(|d| [d.join("strata-s3-server"), d.join("s3s-fs")])
                .find(|p| p.is_file())
        })
        .filter(|p| p.is_file());
    match found {
        Some(p) => Some(p),
        None if required => panic!(
            "STRATA_REQUIRE_S3=1 but no S3 server (set STRATA_S3S_FS or put strata-s3-server on \
             PATH; .ci/run builds it from tests/s3-server)"
        ),
        None => {
            eprintln!(
                "skipped: no S3 server (cargo install --path tests/s3-server, or set \
                 STRATA_S3S_FS)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts a server with the buckets `buckets`, or `None` when there is no server to run.
    pub fn start(buckets: &[&str]) -> Option<S3Server> {
        let bin = binary()?;
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir_all(root.path().join(b)).unwrap();
        }
        let mut s = S3Server {
            bin,
            child: None,
            port: free_port(),
            root,
        };
        s.resume();
        Some(s)
    }

    /// (Re)starts the server on its port and root.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the S3 server did not start listening on 127.0.0.1:{}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL), as a crashed or unplugged one.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `AWS_*` settings that reach this server with its keys; `secret` replaces the secret
    /// key (wrong-credential tests). Retries give up after 2 s, so a stopped server fails fast.
    pub fn settings_with_secret(&self, secret: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT", &self.endpoint()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("STRATA_S3_RETRY_TIMEOUT", "2s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn settings(&self) -> Vec<(String, String)> {
        self.settings_with_secret(SECRET_KEY)
    }

    /// The file holding `key` of `bucket`.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// Every object key under `bucket`/`prefix` (files, recursively).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let base = self.root.path().join(bucket);
        let mut out = Vec::new();
        let mut stack = vec![base.join(prefix)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&base) {
                    let name = rel.to_string_lossy().replace('\\', "/");
                    if !name.contains(".internal.part") && !is_meta(&p) {
                        out.push(name);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// s3s-fs keeps object metadata in sidecar files next to objects in some versions.
fn is_meta(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".s3s") || n.ends_with(".metadata.json"))
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of an [`S3Server`] that the test controls: it answers the first
/// `slow_down` PUT requests itself with `503 SlowDown` (S3's throttling answer), and after
/// `cut_after` PUTs have been forwarded it goes down (drops every connection and refuses new
/// ones) until [`FaultyProxy::restore`], as a server that vanishes in the middle of a
/// transition. PUTs are recognised by the request line at the start of a read from the client.
pub struct FaultyProxy {
    pub port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    puts: usize,
    slow_down: usize,
    slowed: usize,
    cut_after: Option<usize>,
    down: bool,
}

impl FaultyProxy {
    pub fn start(upstream: u16, slow_down: usize, cut_after: Option<usize>) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState {
            slow_down,
            cut_after,
            ..ProxyState::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if st.lock().unwrap().down {
                    drop(client);
                    continue;
                }
                let st = st.clone();
                std::thread::spawn(move || proxy_connection(client, upstream, st));
            }
        });
        FaultyProxy { port, state }
    }

    /// PUTs seen (forwarded or answered with 503).
    pub fn puts(&self) -> usize {
        self.state.lock().unwrap().puts
    }

    /// PUTs answered with 503 SlowDown.
    pub fn slowed(&self) -> usize {
        self.state.lock().unwrap().slowed
    }

    pub fn is_down(&self) -> bool {
        self.state.lock().unwrap().down
    }

    /// Back up, forwarding everything.
    pub fn restore(&self) {
        let mut s = self.state.lock().unwrap();
        s.down = false;
        s.cut_after = None;
        s.slow_down = 0;
    }

    /// `settings` with the endpoint pointing at the proxy.
    pub fn settings(&self, server: &S3Server) -> Vec<(String, String)> {
        server
            .settings()
            .into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT" {
                    (k, format!("http://127.0.0.1:{}", self.port))
                } else {
                    (k, v)
                }
            })
            .collect()
    }
}

fn proxy_connection(
    mut client: std::net::TcpStream,
    upstream: u16,
    st: std::sync::Arc<std::sync::Mutex<ProxyState>>,
) {
    use std::io::{Read, Write};
    let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut s = st.lock().unwrap();
        if s.down {
            break;
        }
        if buf[..n].starts_with(b"PUT /") {
            s.puts += 1;
            if s.slowed < s.slow_down {
                s.slowed += 1;
                drop(s);
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                            <Message>Please reduce your request rate.</Message></Error>";
                let _ = write!(
                    client,
                    "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                break;
            }
            if s.cut_after.is_some_and(|c| s.puts > c) {
                s.down = true;
                break;
            }
        }
        drop(s);
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}
