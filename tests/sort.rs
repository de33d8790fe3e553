//! SORT against a running ferrokey: large numeric and ALPHA sorts checked
//! against a model, a "users by age" query with BY and GET through hash
//! fields, STORE into big lists; and random SORT commands (BY weights with
//! many ties, LIMIT windows that take Valkey's partial quicksort, GET, DESC)
//! compared byte for byte with the reference valkey-server.

mod common;

use std::collections::HashMap;

use common::{Server, Valkey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Valkey's numeric order: by value, equal values by the elements' bytes.
fn numeric_order(items: &mut [String]) {
    items.sort_by(|a, b| {
        let (x, y): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        x.partial_cmp(&y).unwrap().then_with(|| a.as_bytes().cmp(b.as_bytes()))
    });
}

#[test]
fn large_sorts_follow_the_model() {
    let server = Server::start();
    let mut con = server.client();
    let mut rng = SmallRng::seed_from_u64(11);
    // Numbers written several ways, with many equal values.
    let numbers: Vec<String> = (0..5_000)
        .map(|_| match rng.gen_range(0..4) {
            0 => rng.gen_range(-100..100).to_string(),
            1 => format!("{:.2}", rng.gen_range(-100.0..100.0f64)),
            2 => format!("{}.0", rng.gen_range(-100..100)),
            _ => format!("{:e}", rng.gen_range(-1000.0..1000.0f64)),
        })
        .collect();
    let _: () = redis::cmd("RPUSH").arg("nums").arg(&numbers).query(&mut con).unwrap();
    let mut expected = numbers.clone();
    numeric_order(&mut expected);

    let sorted: Vec<String> = redis::cmd("SORT").arg("nums").query(&mut con).unwrap();
    assert_eq!(sorted, expected);
    let descending: Vec<String> = redis::cmd("SORT").arg("nums").arg("DESC").query(&mut con).unwrap();
    assert_eq!(descending, expected.iter().rev().cloned().collect::<Vec<_>>());
    let window: Vec<String> = redis::cmd("SORT").arg("nums").arg("LIMIT").arg(1234).arg(100).query(&mut con).unwrap();
    assert_eq!(window, expected[1234..1334]);

    // STORE makes a list (a quicklist at this size) holding the same.
    let stored: usize = redis::cmd("SORT").arg("nums").arg("STORE").arg("sorted").query(&mut con).unwrap();
    assert_eq!(stored, 5_000);
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("sorted").query(&mut con).unwrap();
    assert_eq!(encoding, "quicklist");
    let back: Vec<String> = redis::cmd("LRANGE").arg("sorted").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(back, expected);

    // ALPHA over random words: byte order.
    let words: Vec<String> = (0..3_000)
        .map(|_| {
            let len = rng.gen_range(0..8);
            (0..len).map(|_| rng.gen_range(b'0'..=b'z') as char).collect()
        })
        .collect();
    let _: () = redis::cmd("RPUSH").arg("words").arg(&words).query(&mut con).unwrap();
    let mut expected = words.clone();
    expected.sort();
    let sorted: Vec<String> = redis::cmd("SORT").arg("words").arg("ALPHA").query(&mut con).unwrap();
    assert_eq!(sorted, expected);
    // A non-number among numbers fails the whole numeric sort.
    let err = redis::cmd("SORT").arg("words").query::<Vec<String>>(&mut con).unwrap_err();
    assert!(err.to_string().contains("One or more scores can't be converted into double"), "{err}");
}

#[test]
fn users_by_age_through_hash_fields() {
    let server = Server::start();
    let mut con = server.client();
    let mut rng = SmallRng::seed_from_u64(12);
    let mut ages: HashMap<u32, u32> = HashMap::new();
    for id in 0..1_000u32 {
        let age = rng.gen_range(18..90);
        ages.insert(id, age);
        let _: () = redis::cmd("HSET")
            .arg(format!("user:{id}"))
            .arg("name")
            .arg(format!("name-{id}"))
            .arg("age")
            .arg(age)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SADD").arg("users").arg(id).query(&mut con).unwrap();
    }
    // Oldest first; equal ages by the ids' bytes, reversed with DESC.
    let mut expected: Vec<u32> = ages.keys().copied().collect();
    expected.sort_by(|a, b| ages[b].cmp(&ages[a]).then_with(|| b.to_string().cmp(&a.to_string())));
    let reply: Vec<String> = redis::cmd("SORT")
        .arg("users")
        .arg("BY")
        .arg("user:*->age")
        .arg("DESC")
        .arg("LIMIT")
        .arg(0)
        .arg(50)
        .arg("GET")
        .arg("#")
        .arg("GET")
        .arg("user:*->name")
        .arg("GET")
        .arg("user:*->age")
        .query(&mut con)
        .unwrap();
    assert_eq!(reply.len(), 150);
    for (row, id) in reply.chunks(3).zip(&expected) {
        assert_eq!(row[0], id.to_string());
        assert_eq!(row[1], format!("name-{id}"));
        assert_eq!(row[2], ages[id].to_string());
    }
    // A missing field reads as nothing: GET answers nil, STORE an empty string.
    let reply: Vec<Option<String>> = redis::cmd("SORT")
        .arg("users")
        .arg("LIMIT")
        .arg(0)
        .arg(3)
        .arg("GET")
        .arg("user:*->email")
        .query(&mut con)
        .unwrap();
    assert_eq!(reply, vec![None, None, None]);
    let stored: usize = redis::cmd("SORT")
        .arg("users")
        .arg("LIMIT")
        .arg(0)
        .arg(3)
        .arg("GET")
        .arg("user:*->email")
        .arg("STORE")
        .arg("emails")
        .query(&mut con)
        .unwrap();
    assert_eq!(stored, 3);
    let emails: Vec<String> = redis::cmd("LRANGE").arg("emails").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(emails, vec!["", "", ""]);
    // SORT_RO reads the same and refuses to store.
    let read_only: Vec<String> = redis::cmd("SORT_RO")
        .arg("users")
        .arg("BY")
        .arg("user:*->age")
        .arg("DESC")
        .arg("LIMIT")
        .arg(0)
        .arg(5)
        .query(&mut con)
        .unwrap();
    let expected: Vec<String> = expected.iter().take(5).map(|id| id.to_string()).collect();
    assert_eq!(read_only, expected);
    let err = redis::cmd("SORT_RO").arg("users").arg("STORE").arg("x").query::<usize>(&mut con).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
}

#[test]
fn random_sorts_answer_like_valkey() {
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let mut servers = [ferrokey.raw(), valkey.raw()];
    let mut rng = SmallRng::seed_from_u64(13);
    let run = |servers: &mut [common::RawConn; 2], line: Vec<String>| {
        let args: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
        let replies: Vec<Vec<u8>> = servers.iter_mut().map(|s| s.cmd(&args)).collect();
        assert_eq!(String::from_utf8_lossy(&replies[0]), String::from_utf8_lossy(&replies[1]), "{}", line.join(" "));
    };
    // A list of 300 elements whose weights take few distinct values, so
    // that ties are everywhere; some weights missing, some in hashes.
    let mut push = vec!["RPUSH".to_string(), "items".to_string()];
    for i in 0..300 {
        push.push(format!("item{i}"));
        if rng.gen_bool(0.8) {
            run(&mut servers, vec!["SET".into(), format!("w:item{i}"), rng.gen_range(0..6).to_string()]);
        }
        if rng.gen_bool(0.8) {
            let letter = ["a", "b", "c", "B", ""][rng.gen_range(0..5)];
            run(&mut servers, vec!["HSET".into(), format!("h:item{i}"), "tag".into(), letter.into()]);
        }
    }
    run(&mut servers, push);
    let by_options = ["w:*", "h:*->tag", "nosort", "missing:*"];
    for _ in 0..300 {
        let mut line = vec!["SORT".to_string(), "items".to_string()];
        line.extend(["BY".to_string(), by_options[rng.gen_range(0..by_options.len())].to_string()]);
        if rng.gen_bool(0.5) {
            line.push("ALPHA".to_string());
        }
        if rng.gen_bool(0.4) {
            line.push("DESC".to_string());
        }
        if rng.gen_bool(0.8) {
            line.extend(["LIMIT".to_string(), rng.gen_range(-5..310).to_string(), rng.gen_range(-2..120).to_string()]);
        }
        for _ in 0..rng.gen_range(0..3) {
            line.extend(["GET".to_string(), ["#", "w:*", "h:*->tag"][rng.gen_range(0..3)].to_string()]);
        }
        run(&mut servers, line);
    }
}
