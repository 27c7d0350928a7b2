//! A TCP proxy in front of the test cluster that a test can switch off: "PostgreSQL is down"
//! for one app without stopping the cluster every other test shares.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_storage::{PgConnectOptions, PgPool};
use berth_test_support::TestDatabase;
use tokio::net::{TcpListener, TcpStream};

/// The proxy; connections through it break when it goes down.
pub struct PgProxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<actix_web::rt::task::JoinHandle<()>>>>,
}

impl PgProxy {
    /// Starts a proxy to the cluster behind `options`.
    pub async fn start(options: &PgConnectOptions) -> Self {
        let target = SocketAddr::from(([127, 0, 0, 1], options.get_port()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_connections) = (up.clone(), connections.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                // Checked under the lock `down` drains with, so no connection slips through.
                let mut connections = accept_connections.lock().unwrap();
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = actix_web::rt::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.push(task);
            }
        });
        Self { port, up, connections }
    }

    /// Options for the same database, through the proxy.
    pub fn options(&self, base: &PgConnectOptions) -> PgConnectOptions {
        base.clone().host("127.0.0.1").port(self.port)
    }

    /// A pool through the proxy.
    pub async fn pool(&self, db: &TestDatabase, max: u32) -> PgPool {
        berth_storage::connect_with(self.options(&db.options), max).await.unwrap()
    }

    /// A test database whose pool goes through the proxy.
    pub async fn database(&self, db: &TestDatabase) -> TestDatabase {
        TestDatabase { pool: self.pool(db, 8).await, name: db.name.clone(), options: self.options(&db.options) }
    }

    /// "PostgreSQL stops": every open connection breaks and new ones are refused.
    pub fn down(&self) {
        let mut connections = self.connections.lock().unwrap();
        self.up.store(false, Ordering::SeqCst);
        for task in connections.drain(..) {
            task.abort();
        }
    }

    /// "PostgreSQL is back".
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
