//! A codec that misbehaves on request, for testing the host's sandbox and limits. `encode`
//! takes an option `mode`:
//!
//! - `spin`: loops forever (the time limit must stop it);
//! - `hog`: allocates without bound (the memory limit must stop it);
//! - `panic`: panics (a trap, reported with plugin and function);
//! - `flood`: returns more bytes than the output cap allows;
//! - `probe`: tries to read files, the environment and the network, and reports what it could
//!   reach as the encoded bytes (the host must have granted nothing); it also writes to stdout
//!   and stderr, which the host captures into its log;
//! - anything else: encodes nothing. `decode` always returns an empty batch.

use std::hint::black_box;

use strata_plugin_sdk::{Batch, Codec, CodecInfo, Error, OptionSpec, Options, PluginInfo, Result};

#[derive(Default)]
pub struct Misbehave;

impl Codec for Misbehave {
    fn describe(&self) -> CodecInfo {
        CodecInfo {
            info: PluginInfo {
                name: "misbehave".into(),
                version: "0.0.0".into(),
                description: "test guest that misbehaves on request".into(),
                options: vec![
                    OptionSpec::new(
                        "mode",
                        "spin|hog|panic|flood|probe|none",
                        "none",
                        "how to misbehave",
                    ),
                    OptionSpec::new("bytes", "integer", "0", "output size for `flood`"),
                ],
            },
            extension: "bin".into(),
            media_type: "application/octet-stream".into(),
            lossless: false,
            sorts_rows: false,
            filter_pushdown: false,
            extra_columns: false,
        }
    }

    fn encode(&self, _batch: &Batch, opts: &Options) -> Result<Vec<u8>> {
        match opts.get("mode").unwrap_or("none") {
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "panic" => panic!("misbehave: asked to panic"),
            "flood" => Ok(vec![7u8; opts.int("bytes", 0, i64::MAX, 0)? as usize]),
            "probe" => {
                println!("misbehave: hello on stdout");
                eprintln!("misbehave: hello on stderr");
                let mut seen = Vec::new();
                for path in ["/", "/etc/passwd", ".", "/tmp"] {
                    if std::fs::read_dir(path).is_ok() || std::fs::read(path).is_ok() {
                        seen.push(format!("file:{path}"));
                    }
                }
                if std::env::vars().next().is_some() {
                    seen.push("env".into());
                }
                if std::net::TcpStream::connect("127.0.0.1:9").is_ok() {
                    seen.push("net".into());
                }
                Ok(seen.join(",").into_bytes())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn decode(&self, _bytes: &[u8], _coins: Option<&[String]>) -> Result<Batch> {
        Err(Error::Unsupported("misbehave does not decode".into()))
    }
}

strata_plugin_sdk::export_codec!(Misbehave);
