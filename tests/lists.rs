//! List commands against a running ferrokey, where more than one client or
//! the passing of time is involved: a work queue fed by several producers
//! and drained by several BRPOP consumers, the reliable-queue pattern with
//! BLMOVE and LREM, the order in which blocked clients are served, timeouts,
//! and blocking on several keys at once.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;
use redis::{Commands, Connection};

/// How long a test waits for something that should happen within moments.
const PATIENCE: Duration = Duration::from_secs(20);

fn blocked_clients(con: &mut Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("clients").query(con).expect("INFO clients");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients in INFO clients")
}

/// Waits until `n` clients are blocked, so that the order in which they
/// blocked is the order in which they were started.
fn wait_for_blocked(con: &mut Connection, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while blocked_clients(con) != n {
        assert!(Instant::now() < deadline, "expected {n} blocked clients");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn work_queue_delivers_every_message_exactly_once() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const MESSAGES: usize = 100_000;
    const BATCH: usize = 500;
    let server = Arc::new(Server::start());
    let consumed = Arc::new(AtomicUsize::new(0));

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (server, consumed) = (server.clone(), consumed.clone());
            thread::spawn(move || {
                let mut con = server.client();
                let mut received = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(120);
                while consumed.load(Ordering::SeqCst) < MESSAGES {
                    assert!(Instant::now() < deadline, "consumers stalled at {}", consumed.load(Ordering::SeqCst));
                    let popped: Option<(String, String)> =
                        redis::cmd("BRPOP").arg("queue").arg(1).query(&mut con).expect("BRPOP");
                    if let Some((key, message)) = popped {
                        assert_eq!(key, "queue");
                        received.push(message);
                        consumed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                received
            })
        })
        .collect();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let server = server.clone();
            thread::spawn(move || {
                let mut con = server.client();
                let per_producer = MESSAGES / PRODUCERS;
                for start in (0..per_producer).step_by(BATCH) {
                    let mut pipe = redis::pipe();
                    for i in start..(start + BATCH).min(per_producer) {
                        pipe.cmd("LPUSH").arg("queue").arg(format!("p{p}:{i}")).ignore();
                    }
                    let () = pipe.query(&mut con).expect("pipelined LPUSH");
                }
            })
        })
        .collect();

    for p in producers {
        p.join().expect("producer");
    }
    let mut seen = HashSet::with_capacity(MESSAGES);
    let mut total = 0;
    for c in consumers {
        for message in c.join().expect("consumer") {
            total += 1;
            assert!(seen.insert(message.clone()), "{message} delivered twice");
        }
    }
    assert_eq!(total, MESSAGES);
    for p in 0..PRODUCERS {
        for i in 0..MESSAGES / PRODUCERS {
            assert!(seen.contains(&format!("p{p}:{i}")), "p{p}:{i} never delivered");
        }
    }
    let mut con = server.client();
    assert!(!con.exists::<_, bool>("queue").unwrap());
}

#[test]
fn reliable_queue_with_blmove_and_lrem() {
    const MESSAGES: usize = 2_000;
    const WORKERS: usize = 3;
    let server = Arc::new(Server::start());
    let acked = Arc::new(Mutex::new(Vec::new()));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (server, acked) = (server.clone(), acked.clone());
            thread::spawn(move || {
                let mut con = server.client();
                let processing = format!("processing:{w}");
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "worker {w} never got its stop job");
                    let taken: Option<String> = redis::cmd("BLMOVE")
                        .arg("jobs")
                        .arg(&processing)
                        .arg("RIGHT")
                        .arg("LEFT")
                        .arg(0.5)
                        .query(&mut con)
                        .expect("BLMOVE");
                    let Some(job) = taken else { continue };
                    if job == "stop" {
                        let removed: i64 = con.lrem(&processing, 1, &job).unwrap();
                        assert_eq!(removed, 1);
                        break;
                    }
                    // The job sits in this worker's processing list until acknowledged.
                    let pending: Vec<String> = con.lrange(&processing, 0, -1).unwrap();
                    assert!(pending.contains(&job));
                    let removed: i64 = con.lrem(&processing, 1, &job).unwrap();
                    assert_eq!(removed, 1, "ack of {job}");
                    acked.lock().unwrap().push(job);
                }
            })
        })
        .collect();

    let mut con = server.client();
    for i in 0..MESSAGES {
        let _: i64 = con.lpush("jobs", format!("job:{i}")).unwrap();
    }
    for _ in 0..WORKERS {
        let _: i64 = con.lpush("jobs", "stop").unwrap();
    }
    for w in workers {
        w.join().expect("worker");
    }

    let acked = acked.lock().unwrap();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(acked.len(), MESSAGES);
    assert_eq!(unique.len(), MESSAGES);
    assert!(!con.exists::<_, bool>("jobs").unwrap());
    for w in 0..WORKERS {
        assert!(!con.exists::<_, bool>(format!("processing:{w}")).unwrap(), "processing:{w} not drained");
    }

    // A worker that takes a job and dies before acknowledging it leaves
    // the job in its processing list, where it can be recovered.
    let _: i64 = con.rpush("jobs", "fragile").unwrap();
    let taken: Option<String> = redis::cmd("BLMOVE")
        .arg("jobs")
        .arg("processing:dead")
        .arg("LEFT")
        .arg("RIGHT")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(taken.as_deref(), Some("fragile"));
    let recovered: Option<String> = redis::cmd("RPOPLPUSH").arg("processing:dead").arg("jobs").query(&mut con).unwrap();
    assert_eq!(recovered.as_deref(), Some("fragile"));
    let left: Vec<String> = con.lrange("jobs", 0, -1).unwrap();
    assert_eq!(left, ["fragile"]);
}

#[test]
fn blocked_clients_are_served_in_the_order_they_blocked() {
    let server = Arc::new(Server::start());
    let mut control = server.client();
    let mut waiters = Vec::new();
    for n in 0..4 {
        let server = server.clone();
        waiters.push(thread::spawn(move || {
            let mut con = server.client();
            let got: Option<(String, String)> = redis::cmd("BLPOP").arg("fifo").arg(0).query(&mut con).unwrap();
            got
        }));
        wait_for_blocked(&mut control, n + 1);
    }
    // One push of four elements: the first waiter gets the head, and so on.
    let _: i64 = control.rpush("fifo", &["first", "second", "third", "fourth"]).unwrap();
    let served: Vec<Option<(String, String)>> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    let expected = ["first", "second", "third", "fourth"].map(|v| Some(("fifo".to_string(), v.to_string())));
    assert_eq!(served, expected);
    assert!(!control.exists::<_, bool>("fifo").unwrap());
    assert_eq!(blocked_clients(&mut control), 0);
}

#[test]
fn a_push_serves_only_as_many_waiters_as_it_has_elements() {
    let server = Arc::new(Server::start());
    let mut control = server.client();
    let mut waiters = Vec::new();
    for n in 0..3 {
        let server = server.clone();
        waiters.push(thread::spawn(move || {
            let mut con = server.client();
            let got: Option<(String, String)> = redis::cmd("BRPOP").arg("few").arg(5).query(&mut con).unwrap();
            got
        }));
        wait_for_blocked(&mut control, n + 1);
    }
    let _: i64 = control.lpush("few", "only").unwrap();
    wait_for_blocked(&mut control, 2);
    let _: i64 = control.lpush("few", "then").unwrap();
    wait_for_blocked(&mut control, 1);
    let _: i64 = control.lpush("few", "last").unwrap();
    let served: Vec<Option<(String, String)>> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    let expected = ["only", "then", "last"].map(|v| Some(("few".to_string(), v.to_string())));
    assert_eq!(served, expected);
}

#[test]
fn blpop_times_out_with_nil() {
    let server = Server::start();
    let mut con = server.client();
    let got: Option<(String, String)> = redis::cmd("BLPOP").arg("empty").arg(0.2).query(&mut con).unwrap();
    assert_eq!(got, None);
    let moved: Option<String> =
        redis::cmd("BLMOVE").arg("empty").arg("dst").arg("LEFT").arg("LEFT").arg(0.1).query(&mut con).unwrap();
    assert_eq!(moved, None);
    let popped: Option<(String, Vec<String>)> =
        redis::cmd("BLMPOP").arg(0.1).arg(1).arg("empty").arg("LEFT").query(&mut con).unwrap();
    assert_eq!(popped, None);
    // The connection works normally afterwards.
    let _: i64 = con.rpush("empty", "x").unwrap();
    let got: Option<(String, String)> = redis::cmd("BLPOP").arg("empty").arg(0.2).query(&mut con).unwrap();
    assert_eq!(got, Some(("empty".into(), "x".into())));
}

#[test]
fn blpop_on_several_keys_is_served_by_the_one_pushed() {
    let server = Arc::new(Server::start());
    let mut control = server.client();
    let waiter = {
        let server = server.clone();
        thread::spawn(move || {
            let mut con = server.client();
            let got: Option<(String, String)> =
                redis::cmd("BLPOP").arg("k1").arg("k2").arg("k3").arg(10).query(&mut con).unwrap();
            got
        })
    };
    wait_for_blocked(&mut control, 1);
    let _: i64 = control.rpush("k2", &["from-k2", "stays"]).unwrap();
    assert_eq!(waiter.join().unwrap(), Some(("k2".into(), "from-k2".into())));
    let rest: Vec<String> = control.lrange("k2", 0, -1).unwrap();
    assert_eq!(rest, ["stays"]);

    // Keys that already hold something are taken in the order given.
    let _: i64 = control.rpush("k3", "three").unwrap();
    let got: Option<(String, String)> =
        redis::cmd("BRPOP").arg("k1").arg("k3").arg("k2").arg(1).query(&mut control).unwrap();
    assert_eq!(got, Some(("k3".into(), "three".into())));
}

#[test]
fn blocking_moves_and_multi_pops_wake_on_push() {
    let server = Arc::new(Server::start());
    let mut control = server.client();

    let mover = {
        let server = server.clone();
        thread::spawn(move || {
            let mut con = server.client();
            let moved: Option<String> =
                redis::cmd("BLMOVE").arg("src").arg("dst").arg("RIGHT").arg("LEFT").arg(10).query(&mut con).unwrap();
            moved
        })
    };
    wait_for_blocked(&mut control, 1);
    let _: i64 = control.rpush("src", &["a", "b"]).unwrap();
    assert_eq!(mover.join().unwrap().as_deref(), Some("b"));
    let dst: Vec<String> = control.lrange("dst", 0, -1).unwrap();
    assert_eq!(dst, ["b"]);

    let popper = {
        let server = server.clone();
        thread::spawn(move || {
            let mut con = server.client();
            let popped: Option<(String, Vec<String>)> = redis::cmd("BLMPOP")
                .arg(10)
                .arg(2)
                .arg("m1")
                .arg("m2")
                .arg("LEFT")
                .arg("COUNT")
                .arg(2)
                .query(&mut con)
                .unwrap();
            popped
        })
    };
    wait_for_blocked(&mut control, 1);
    let _: i64 = control.rpush("m2", &["x", "y", "z"]).unwrap();
    assert_eq!(popper.join().unwrap(), Some(("m2".into(), vec!["x".into(), "y".into()])));

    // A BRPOPLPUSH that is served pushes to its destination, which can
    // serve another waiter in turn.
    let chained = {
        let server = server.clone();
        thread::spawn(move || {
            let mut con = server.client();
            let got: Option<(String, String)> = redis::cmd("BLPOP").arg("stage2").arg(10).query(&mut con).unwrap();
            got
        })
    };
    wait_for_blocked(&mut control, 1);
    let relay = {
        let server = server.clone();
        thread::spawn(move || {
            let mut con = server.client();
            let moved: Option<String> =
                redis::cmd("BRPOPLPUSH").arg("stage1").arg("stage2").arg(10).query(&mut con).unwrap();
            moved
        })
    };
    wait_for_blocked(&mut control, 2);
    let _: i64 = control.lpush("stage1", "parcel").unwrap();
    assert_eq!(relay.join().unwrap().as_deref(), Some("parcel"));
    assert_eq!(chained.join().unwrap(), Some(("stage2".into(), "parcel".into())));
    assert!(!control.exists::<_, bool>("stage2").unwrap());
}

/// Loads the same small lists (5 elements each, listpack-encoded) into
/// ferrokey and valkey-server and prints what each reports. The figures
/// are for reading, not asserted: they depend on the allocator and the
/// machine. Set LIST_MEMORY_KEYS for a bigger run (the default keeps the
/// test quick).
#[test]
fn memory_of_many_small_lists_next_to_valkey() {
    let keys = common::memory_keys("LIST_MEMORY_KEYS");
    let ferrokey = Server::start();
    let valkey = common::Valkey::start();
    let mut report = Vec::new();
    for (name, server) in [("ferrokey", &ferrokey), ("valkey", &*valkey)] {
        let mut con = server.client();
        let growth = common::memory_growth(&mut con, keys, &|i| {
            let elements: Vec<String> = (0..5).map(|j| format!("event{j}:{i}")).collect();
            let mut rpush = redis::cmd("RPUSH");
            rpush.arg(format!("feed:{i}")).arg(elements);
            rpush
        });
        let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("feed:0").query(&mut con).unwrap();
        assert_eq!(encoding, "listpack");
        report.push(format!("{name}: {growth}"));
    }
    println!("{keys} lists x 5 elements:\n  {}", report.join("\n  "));
}
