//! A TCP proxy of the harness's own between the platform and PostgreSQL or NATS, which
//! can partition the two (R5) the way a network does: while partitioned, no byte crosses
//! in either direction and new connections hang before they reach the server; existing
//! connections are neither closed nor told. Healing lets the held bytes through (a short
//! partition, which TCP's retransmissions survive) or resets every connection first (a
//! partition long enough for the connections to have timed out).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    open: bool,
    /// Bumped by a healing reset: connections of an older epoch are closed.
    epoch: u64,
}

/// The proxy; it stops (and closes every connection) when dropped.
pub struct Proxy {
    pub port: u16,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the proxy")?;
        let port = listener.local_addr()?.port();
        let (state, rx) = watch::channel(State {
            open: true,
            epoch: 0,
        });
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(connection(socket, target, rx.clone()));
            }
        });
        Ok(Proxy { port, state, task })
    }

    /// No byte crosses from now on, until [`Proxy::heal`].
    pub fn partition(&self) {
        self.state.send_modify(|s| s.open = false);
    }

    /// Lets bytes cross again. With `reset`, every connection made before is closed first
    /// (as after a partition longer than TCP's timeouts).
    pub fn heal(&self, reset: bool) {
        self.state.send_modify(|s| {
            s.open = true;
            if reset {
                s.epoch += 1;
            }
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Closes every connection: they all watch the state.
        self.state.send_modify(|s| s.epoch += 1);
    }
}

/// Waits until the link is open; `false` when this connection's epoch has ended.
async fn wait_open(rx: &mut watch::Receiver<State>, epoch: u64) -> bool {
    match rx.wait_for(|s| s.open || s.epoch != epoch).await {
        Ok(s) => s.epoch == epoch,
        Err(_) => false,
    }
}

async fn connection(client: TcpStream, target: SocketAddr, mut rx: watch::Receiver<State>) {
    let epoch = rx.borrow().epoch;
    // A new connection hangs while partitioned, as a SYN that gets no answer.
    if !wait_open(&mut rx, epoch).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut ended = rx.clone();
    let pipes = async {
        tokio::select! {
            _ = pipe(cr, sw, rx.clone(), epoch) => {}
            _ = pipe(sr, cw, rx.clone(), epoch) => {}
        }
    };
    tokio::select! {
        () = pipes => {}
        _ = ended.wait_for(|s| s.epoch != epoch) => {}
    }
}

/// Copies one direction, holding each chunk while the link is partitioned.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<State>,
    epoch: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !wait_open(&mut rx, epoch).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        s.write_all(b"ping").await.ok()?;
        let mut got = [0u8; 4];
        tokio::time::timeout(within, s.read_exact(&mut got))
            .await
            .ok()?
            .ok()?;
        Some(got.to_vec())
    }

    #[tokio::test]
    async fn a_partition_holds_every_byte_and_a_heal_lets_them_through_or_resets() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let addr = ("127.0.0.1", proxy.port);
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let short = Duration::from_millis(300);
        assert_eq!(roundtrip(&mut s, short).await, Some(b"ping".to_vec()));

        proxy.partition();
        assert_eq!(roundtrip(&mut s, short).await, None, "no byte crosses");
        let mut during = TcpStream::connect(addr).await.expect("accepted");
        assert_eq!(roundtrip(&mut during, short).await, None, "a new one hangs");

        proxy.heal(false);
        // What was held arrives, then the link works as before.
        let mut held = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut held))
            .await
            .expect("held bytes delivered")
            .expect("read");
        assert_eq!(&held, b"ping");
        assert!(
            roundtrip(&mut during, Duration::from_secs(5))
                .await
                .is_some()
        );

        proxy.partition();
        proxy.heal(true);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a reset closes the old connection");
        let mut fresh = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(
            roundtrip(&mut fresh, Duration::from_secs(5)).await,
            Some(b"ping".to_vec())
        );
    }
}
