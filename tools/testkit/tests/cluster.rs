//! The test cluster itself: keys land where `primary_for_key` says, replicated keys survive the
//! loss of their primary, a node that lost its disk comes back as a replica, and a restarted one
//! rejoins.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::{AsyncCommands as _, Commands as _};
use testkit::TestCluster;

#[test]
fn replicated_keys_survive_a_failover_and_a_wiped_node_rejoins_as_a_replica() {
    let started = Instant::now();
    let mut cluster = TestCluster::start(3, 1);
    assert_eq!(cluster.node_count(), 6);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "primaries: {primaries:?}");
    for &p in &primaries {
        assert_eq!(cluster.replicas_of(p).len(), 1, "replicas of node {p}");
    }
    println!("cluster up after {:?}", started.elapsed());

    let mut conn = cluster.conn();
    let keys: Vec<String> = (0..300).map(|n| format!("key:{n}")).collect();
    for key in &keys {
        let () = conn.set(key, key).expect("SET");
        // WAIT goes to every primary and answers the fewest replicas that acknowledged.
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query(&mut conn)
            .expect("WAIT");
        assert!(acked >= 1, "{key} reached no replica");
    }

    // Each key sits on the primary its slot names, and the keys cover every primary.
    let owners: Vec<usize> = keys.iter().map(|k| cluster.primary_for_key(k)).collect();
    for (key, &owner) in keys.iter().zip(&owners) {
        let value: Option<String> = cluster.node_conn(owner).get(key).expect("GET");
        assert_eq!(
            value.as_deref(),
            Some(key.as_str()),
            "{key} on node {owner}"
        );
    }
    let used: BTreeSet<usize> = owners.iter().copied().collect();
    assert_eq!(used, primaries.iter().copied().collect());

    let victim = owners[0];
    let replica = cluster.replicas_of(victim)[0];
    cluster.kill(victim);
    let killed = Instant::now();
    let promoted = cluster.wait_for_failover(victim, Duration::from_secs(15));
    println!("failover took {:?}", killed.elapsed());
    assert_eq!(promoted, replica, "the victim's replica takes over");
    assert!(cluster.primaries().contains(&promoted));

    // A blocking cluster connection keeps dialing a dead primary (redis 1.8): take a new one.
    let mut conn = cluster.conn();
    for (key, &owner) in keys.iter().zip(&owners) {
        let value: Option<String> = conn.get(key).expect("GET after failover");
        assert_eq!(value.as_deref(), Some(key.as_str()), "{key} lost");
        let expected = if owner == victim { promoted } else { owner };
        assert_eq!(cluster.primary_for_key(key), expected, "{key}");
    }

    let wiped = Instant::now();
    cluster.lose_disk(victim);
    println!("wiped node rejoined after {:?}", wiped.elapsed());
    assert_eq!(cluster.replicas_of(promoted), vec![victim]);
    assert!(!cluster.primaries().contains(&victim));
    // It synced its new primary's data set from scratch.
    let mut node = cluster.node_conn(victim);
    let () = redis::cmd("READONLY").query(&mut node).expect("READONLY");
    for key in keys
        .iter()
        .zip(&owners)
        .filter(|(_, o)| **o == victim)
        .map(|(k, _)| k)
    {
        let value: Option<String> = node.get(key).expect("GET on the replica");
        assert_eq!(
            value.as_deref(),
            Some(key.as_str()),
            "{key} on the new replica"
        );
    }

    // A restarted replica rejoins under the identity in its nodes.conf.
    let other = primaries
        .iter()
        .copied()
        .find(|p| *p != victim)
        .expect("another primary");
    let its_replica = cluster.replicas_of(other)[0];
    cluster.restart(its_replica);
    cluster.wait_settled(Duration::from_secs(15));
    assert_eq!(cluster.replicas_of(other), vec![its_replica]);
    println!("whole test took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_async_connection_rides_a_failover() {
    let mut cluster = TestCluster::start(3, 1);
    let mut conn = cluster.async_conn().await;
    let keys: Vec<String> = (0..50).map(|n| format!("async:{n}")).collect();
    for key in &keys {
        let () = conn.set(key, key).await.expect("SET");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("WAIT");
        assert!(acked >= 1, "{key} reached no replica");
    }
    let used: BTreeSet<usize> = keys.iter().map(|k| cluster.primary_for_key(k)).collect();
    assert_eq!(used.len(), 3);

    let victim = cluster.primary_for_key(&keys[0]);
    cluster.kill(victim);
    cluster.wait_for_failover(victim, Duration::from_secs(15));
    // The same connection, which had the dead primary in its slot map.
    for key in &keys {
        let value: Option<String> = conn.get(key).await.expect("GET after failover");
        assert_eq!(value.as_deref(), Some(key.as_str()));
    }
}
