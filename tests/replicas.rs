//! Several replicas on one PostgreSQL database (issue 13), black-box: real `incd` processes,
//! one fake Slack that delivers each envelope to one of their connections, a schema of their own
//! in the test database.

mod common;

use std::time::Duration;

use common::*;
use incd::store::postgres::testing::Schema;
use incd_fakes::slack::{Fault, Target, DEFAULT_USER, GENERAL_CHANNEL};

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

fn incident_channels(w: &World) -> Vec<incd_fakes::slack::Channel> {
    w.slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("incd-"))
        .collect()
}

/// Summary pinned and announced in every broadcast channel.
fn declared(w: &World, channel: &str) -> bool {
    !w.slack.pins(channel).is_empty()
        && w.broadcast.iter().all(|b| {
            w.slack
                .top_level_messages(b)
                .iter()
                .any(|m| text_of(m).contains(channel))
        })
}

fn assert_exactly_once(w: &World, channel: &str) {
    let summaries = w
        .slack
        .top_level_messages(channel)
        .into_iter()
        .filter(|m| text_of(m).contains("Description"))
        .count();
    assert_eq!(summaries, 1, "one summary in {channel}");
    for b in &w.broadcast {
        let n = w
            .slack
            .top_level_messages(b)
            .iter()
            .filter(|m| text_of(m).contains(channel))
            .count();
        assert_eq!(n, 1, "one announcement of {channel} in {b}");
    }
}

/// Point the world at `schema` for `replicas` replicas with one connection each.
fn shared_database(w: &mut World, schema: &Schema, replicas: usize) {
    w.set_env("INCD_DATABASE_URL", schema.url.clone());
    w.set_env("INCD_REPLICAS", replicas.to_string());
    w.set_env("INCD_SOCKET_CONNECTIONS", "1");
}

async fn start_replica(w: &mut World, name: &str) -> Incd {
    w.set_env("INCD_INSTANCE", name);
    w.start(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_declare_each_incident_once_when_a_submission_reaches_all_of_them() {
    let schema = Schema::create().await;
    let mut w = World::new().await;
    shared_database(&mut w, &schema, 3);
    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b", "replica-c"] {
        replicas.push(start_replica(&mut w, name).await);
    }
    let conns: Vec<usize> = w.slack.live_connections().iter().map(|c| c.idx).collect();
    assert_eq!(conns.len(), 3, "one connection per replica");

    for i in 0..6 {
        // Commands go round robin over the connections: the forms open on every replica.
        let view = w.open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "").await;
        let title = format!("Replicated outage {i}");
        let d = w
            .slack
            .submit_view_with(
                &view.id,
                DEFAULT_USER,
                &[("title", &title), ("severity", "sev2")],
            )
            .await
            .unwrap();
        // Slack retries the same submission; this time every replica gets it.
        let mut again = Vec::new();
        for &c in &conns {
            again.push(
                w.slack
                    .redeliver(&d, "timeout", Target::Connection(c))
                    .await
                    .unwrap(),
            );
        }
        for delivery in std::iter::once(&d).chain(&again) {
            let ack = w.slack.wait_ack(&delivery.envelope_id, WAIT).await.unwrap();
            assert!(ack.violation.is_none(), "bad ack: {ack:?}");
        }
    }
    until(
        "six incidents fully declared",
        Duration::from_secs(45),
        &mut || {
            let channels = incident_channels(&w);
            channels.len() >= 6 && channels.iter().all(|c| declared(&w, &c.id))
        },
    )
    .await;
    // Late duplicates would show within the time a step takes against the fake.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let channels = incident_channels(&w);
    assert_eq!(channels.len(), 6, "one channel per declaration");
    for c in &channels {
        assert_exactly_once(&w, &c.id);
    }
    for r in &mut replicas {
        assert!(r.running(), "a replica died\n{}", r.log_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_declare_is_finished_by_another_once_its_lease_expires() {
    let schema = Schema::create().await;
    let mut w = World::new().await;
    shared_database(&mut w, &schema, 2);
    let mut first = start_replica(&mut w, "replica-a").await;
    // Slack creates the channel and the answer never comes: the worst moment to die.
    w.slack
        .inject_fault("conversations.create", Fault::ApplyThenHang);
    let ch = w.declare(DEFAULT_USER, "Killed mid-declare", "sev1").await;
    first.kill9();

    // Another replica (not a restart of the first: it must wait out the lease, 30 s).
    let mut second = start_replica(&mut w, "replica-b").await;
    until(
        "declared by the other replica",
        Duration::from_secs(90),
        &mut || declared(&w, &ch.id),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(incident_channels(&w).len(), 1, "no second channel");
    assert_exactly_once(&w, &ch.id);
    assert!(second.running(), "{}", second.log_text());
}

/// A TCP proxy between incd and PostgreSQL that the test can cut (every connection dropped,
/// new ones refused) and restore.
struct Proxy {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _copied =
                            tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy { port, open, conns }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `url` with its `host:port` replaced by the proxy's.
fn through(url: &str, port: u16) -> (String, String) {
    let at = url.find('@').expect("user@host in the test database URL") + 1;
    let end = at + url[at..].find('/').expect("a database in the URL");
    (
        format!("{}127.0.0.1:{port}{}", &url[..at], &url[end..]),
        url[at..end].to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_cut_off_acks_go_out_the_person_is_told_and_nothing_is_lost() {
    let schema = Schema::create().await;
    let (url, target) = through(&schema.url, 0);
    let proxy = Proxy::start(target).await;
    let (url, _) = through(&url, proxy.port);
    let mut w = World::new().await;
    w.set_env("INCD_DATABASE_URL", url);
    w.set_env("INCD_INSTANCE", "replica-a");
    let incd = w.start(1).await;

    let view = w.open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "").await;
    proxy.cut();
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("title", "Declared while the database is away"),
                ("severity", "sev2"),
            ],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "bad ack: {ack:?}");
    let payload = ack.payload.expect("the form answers with an error");
    assert_eq!(payload["response_action"], "errors");
    assert!(
        payload.to_string().contains("cannot record this right now"),
        "{payload}"
    );
    assert!(incident_channels(&w).is_empty(), "nothing half-done");

    // The database returns; the person submits the same form again.
    proxy.restore();
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("title", "Declared while the database is away"),
                ("severity", "sev2"),
            ],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "bad ack: {ack:?}");
    assert!(ack.payload.is_none(), "accepted: {:?}", ack.payload);
    until(
        "declared once the database is back",
        Duration::from_secs(30),
        &mut || incident_channels(&w).iter().any(|c| declared(&w, &c.id)),
    )
    .await;
    let channels = incident_channels(&w);
    assert_eq!(channels.len(), 1);
    assert_exactly_once(&w, &channels[0].id);
    drop(incd);
}
