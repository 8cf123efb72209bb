//! The S3 server strata's object-storage tests and `strata bench --bucket` run against on
//! loopback: the store of `s3s-fs` (crates.io; it checks every request's SigV4 signature and
//! keeps objects as files under a root directory), served the way `s3s-fs`'s own binary serves
//! it, with one difference: every accepted socket gets `TCP_NODELAY`.
//!
//! Without it, a GET on a kept-alive connection waits ~40 ms: the server writes the response
//! head and then the body in two segments, Nagle's algorithm holds the body until the head is
//! acknowledged, and the client delays that acknowledgement. Production S3 servers (AWS, MinIO,
//! R2) do not behave like this, so a benchmark against `s3s-fs`'s binary measures its socket
//! settings rather than strata. The command line is the same as `s3s-fs`'s.

use std::path::PathBuf;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(version)]
struct Opt {
    /// Host name or address to listen on.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value = "8014")]
    port: u16,
    /// The access key requests must be signed with.
    #[arg(long, requires = "secret_key")]
    access_key: Option<String>,
    /// Its secret.
    #[arg(long, requires = "access_key")]
    secret_key: Option<String>,
    /// Root directory of the stored data (one subdirectory per bucket).
    root: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opt = Opt::parse();
    let fs =
        s3s_fs::FileSystem::new(&opt.root).map_err(|e| format!("{}: {e:?}", opt.root.display()))?;
    let mut service = S3ServiceBuilder::new(fs);
    if let (Some(ak), Some(sk)) = (opt.access_key, opt.secret_key) {
        service.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let service = service.build();

    let listener = TcpListener::bind((opt.host.as_str(), opt.port)).await?;
    eprintln!(
        "serving {} at http://{}",
        opt.root.display(),
        listener.local_addr()?
    );
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(e) => {
                    eprintln!("accepting a connection: {e}");
                    continue;
                }
            },
            _ = ctrl_c.as_mut() => break,
        };
        socket.set_nodelay(true)?;
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
    }
    Ok(())
}
