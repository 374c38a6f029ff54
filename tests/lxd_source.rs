//! The live LXD source against a scripted LXD on a unix socket: the first snapshot,
//! events leading to refetches, unreadable events and entries skipped, LXD going away
//! (the last snapshot stays) and coming back (resync).
//!
//! The scripted side answers with recorded LXD 5.0.2 replies (`src/lxd/fixtures`); it
//! speaks just enough HTTP/1.1 and websocket for one client, which is the point: the
//! client under test is hyper and tokio-tungstenite.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use hostbgp::lxd::source::{self, SourceStatus};
use hostbgp::lxd::Snapshot;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/lxd/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

/// What the scripted LXD answers, changed by the test as it goes.
#[derive(Clone)]
struct State {
    server: Value,
    networks: Value,
    instances: Value,
}

struct FakeLxd {
    /// Text frames to push on the event stream.
    events: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLxd {
    fn start(socket: &Path, state: Arc<Mutex<State>>) -> FakeLxd {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind");
        let (events, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let st = state.clone();
        // Connections live in the set: aborting the task ends them all, as LXD's
        // exit does.
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(serve(stream, st.clone(), rx.clone()));
            }
        });
        FakeLxd { events, task }
    }

    /// LXD stops: the socket goes, every connection ends.
    fn stop(self, socket: &Path) {
        self.task.abort();
        let _ = std::fs::remove_file(socket);
    }
}

async fn read_head(stream: &mut UnixStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn serve(
    mut stream: UnixStream,
    state: Arc<Mutex<State>>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
) {
    while let Some(head) = read_head(&mut stream).await {
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_string();
        if path.starts_with("/1.0/events") {
            let key = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Sec-WebSocket-Key: ")
                        .or_else(|| l.strip_prefix("sec-websocket-key: "))
                })
                .unwrap_or("")
                .trim()
                .to_string();
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let reply = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
            let mut rx = events.lock().await;
            while let Some(text) = rx.recv().await {
                if ws.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            return;
        }
        let body = {
            let s = state.lock().expect("state");
            let metadata = match path.split('?').next().unwrap_or("") {
                "/1.0" => s.server["metadata"].clone(),
                "/1.0/networks" => s.networks["metadata"].clone(),
                "/1.0/instances" => s.instances["metadata"].clone(),
                p => match p.strip_prefix("/1.0/instances/") {
                    Some(name) => s.instances["metadata"]
                        .as_array()
                        .and_then(|all| all.iter().find(|i| i["name"] == name).cloned())
                        .unwrap_or(Value::Null),
                    None => Value::Null,
                },
            };
            if metadata.is_null() {
                json!({"type":"error","error":"not found","error_code":404,"metadata":null})
            } else {
                json!({"type":"sync","status_code":200,"error_code":0,"error":"","metadata":metadata})
            }
        };
        let code = if body["error_code"] == 404 {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let text = body.to_string();
        let reply = format!(
            "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn initial() -> State {
    State {
        server: fixture("lxd-5.0.2-server.json"),
        networks: fixture("lxd-5.0.2-networks.json"),
        instances: fixture("lxd-5.0.2-instances.json"),
    }
}

async fn next_snapshot(rx: &mut watch::Receiver<Option<Arc<Snapshot>>>) -> Arc<Snapshot> {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a snapshot within 10 s")
        .expect("source alive");
    rx.borrow_and_update().clone().expect("a snapshot")
}

fn host_name(s: &Snapshot, instance: &str) -> Option<String> {
    s.instances
        .iter()
        .find(|i| i.name == instance)
        .and_then(|i| i.config.get("volatile.eth0.host_name").cloned())
}

fn set_c1_host_name(state: &Arc<Mutex<State>>, name: &str) {
    let mut s = state.lock().expect("state");
    if let Some(all) = s.instances["metadata"].as_array_mut() {
        for i in all.iter_mut() {
            if i["name"] == "c1" {
                i["config"]["volatile.eth0.host_name"] = json!(name);
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn follows_resyncs_and_keeps_the_last_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("unix.socket");
    let state = Arc::new(Mutex::new(initial()));
    let lxd = FakeLxd::start(&socket, state.clone());

    let (publish, mut rx) = watch::channel(None);
    let (status_tx, status) = watch::channel(SourceStatus::default());
    let task = tokio::spawn(source::run(socket.clone(), publish, status_tx));

    // Connect, read everything, publish.
    let first = next_snapshot(&mut rx).await;
    assert_eq!(first.networks.len(), 3, "managed ones only");
    assert_eq!(host_name(&first, "c1").as_deref(), Some("vethbb08358e"));
    assert!(status.borrow().connected_since.is_some());

    // An unreadable event is skipped; a real one leads to a refetch of its instance.
    set_c1_host_name(&state, "veth00000002");
    lxd.events.send("{not json".into()).expect("event");
    lxd.events
        .send(
            json!({"type":"lifecycle","timestamp":"2026-12-02T18:16:29Z","location":"none","project":"default",
                   "metadata":{"action":"instance-restarted","source":"/1.0/instances/c1"}})
            .to_string(),
        )
        .expect("event");
    let next = next_snapshot(&mut rx).await;
    assert_eq!(host_name(&next, "c1").as_deref(), Some("veth00000002"));
    assert_eq!(
        status.borrow().last_event.as_ref().map(|e| e.1.clone()),
        Some("instance-restarted".to_string())
    );

    // An unreadable entry in a list is kept as last read, not dropped.
    {
        let mut s = state.lock().expect("state");
        if let Some(all) = s.instances["metadata"].as_array_mut() {
            for i in all.iter_mut() {
                if i["name"] == "vm1" {
                    i["expanded_devices"] = json!("garbage");
                    i["status"] = json!(42);
                }
            }
        }
    }
    lxd.events
        .send(
            json!({"type":"lifecycle","location":"none","project":"default",
                   "metadata":{"action":"network-updated","source":"/1.0/networks/lxdbr0"}})
            .to_string(),
        )
        .expect("event");
    // Nothing changed that can be read: no new snapshot is published; vm1 is kept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = rx.borrow().clone().expect("snapshot");
    assert!(now.instances.iter().any(|i| i.name == "vm1"));

    // LXD stops: the last snapshot stays, the status says so.
    lxd.stop(&socket);
    tokio::time::timeout(Duration::from_secs(5), async {
        while status.borrow().connected_since.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("disconnect noticed");
    assert!(rx.borrow().is_some(), "the last snapshot must stay");
    assert!(!rx.has_changed().unwrap_or(true));

    // LXD back with c1 stopped meanwhile: resync within the backoff cap.
    let mut back = initial();
    if let Some(all) = back.instances["metadata"].as_array_mut() {
        all.retain(|i| i["name"] != "c1");
    }
    let state = Arc::new(Mutex::new(back));
    let lxd = FakeLxd::start(&socket, state);
    let resynced = next_snapshot(&mut rx).await;
    assert_eq!(host_name(&resynced, "c1"), None);
    assert!(status.borrow().connected_since.is_some());

    task.abort();
    lxd.stop(&socket);
}
