//! A fault relay on loopback, toxiproxy-style: it forwards TCP between pgate and
//! PostgreSQL and injects faults on command — latency, refusing new connections, cutting
//! one or every live connection (abruptly, or after a slow close that keeps the socket open
//! but silent). Plain threads, bounded: every thread ends when its sockets close or the
//! relay is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    stop: AtomicBool,
    refuse: AtomicBool,
    latency_ms: AtomicU64,
    /// Live connections by accept order: (client side, server side).
    links: Mutex<Vec<Option<(TcpStream, TcpStream)>>>,
}

pub struct Relay {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Relay {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            while !st.stop.load(Ordering::Relaxed) {
                let (client, _) = match listener.accept() {
                    Ok(x) => x,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                if st.refuse.load(Ordering::Relaxed) {
                    // "Unreachable": the connection is closed at once.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let index = {
                    let mut links = st.links.lock().unwrap();
                    links.push(Some((
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                    )));
                    links.len() - 1
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let st = st.clone();
                    std::thread::spawn(move || pump(from, to, &st, index));
                }
            }
        });
        Relay { addr, state }
    }

    /// Delay added to every chunk forwarded, both ways.
    pub fn set_latency(&self, ms: u64) {
        self.state.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// New connections are accepted and closed at once (the database unreachable).
    pub fn set_refuse(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.links.lock().unwrap().len()
    }

    /// Cuts connection `index` (accept order) at once, both ways.
    pub fn cut(&self, index: usize) {
        let mut links = self.state.links.lock().unwrap();
        if let Some(Some((a, b))) = links.get_mut(index).map(Option::take) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Cuts every live connection (the database restarted).
    pub fn cut_all(&self) {
        let n = self.accepted();
        for i in 0..n {
            self.cut(i);
        }
    }

    /// Stops forwarding on connection `index` but keeps both sockets open, silent, for
    /// `hold`, then cuts it: a peer that goes quiet before it goes away.
    pub fn slow_close(&self, index: usize, hold: Duration) {
        let taken = self
            .state
            .links
            .lock()
            .unwrap()
            .get_mut(index)
            .and_then(Option::take);
        if let Some((a, b)) = taken {
            // Readers stop forwarding when their link is gone from the table; the sockets
            // stay open until `hold` has passed.
            std::thread::spawn(move || {
                std::thread::sleep(hold);
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            });
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, st: &State, index: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let live = st
            .links
            .lock()
            .unwrap()
            .get(index)
            .is_some_and(Option::is_some);
        if !live {
            // Cut or slowly closing: drop what arrives, say nothing.
            continue;
        }
        let ms = st.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
