//! What the server's integration tests share: serving a node on a loopback port.

use phalanx_node::Node;
use phalanx_server::ServeOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A node served on `127.0.0.1:0` by a task of the test's runtime.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Serves `node` (HTTPS with `tls` = (certificate, key) PEM files).
pub async fn serve(node: Arc<Node>, tls: Option<(PathBuf, PathBuf)>) -> Running {
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let opts = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls,
        insecure_http: false,
    };
    let task = tokio::spawn(async move {
        phalanx_server::serve(
            node,
            opts,
            async {
                let _ = stop_rx.await;
            },
            move |addr, _| {
                let _ = addr_tx.send(addr);
            },
        )
        .await
    });
    let addr = addr_rx.await.unwrap();
    Running { addr, stop, task }
}

impl Running {
    /// Stops gracefully and checks the server ended without error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
