//! Live screen sessions: the epochs tickets carry and DisconnectAndroidInstance moves on (per
//! phone, per end user), sessions opened as controller or viewer (one controller per phone, a
//! cap on viewers, refused with stale epochs), control taken and released, heartbeats, stale
//! sessions ended as Lost, the reaper, the listings, and isolation by account.

use std::sync::Arc;

use cloudphone_core::InstanceStatus as S;
use cloudphone_store::{
    NewStreamSession, Opened, Reaped, SessionState, Store, StreamEpochs, StreamRole as R,
    StreamSessionFilter,
};

use crate::support::{A, B, fleet, page};

/// Viewers a phone may have, where a test does not exercise the cap.
const MAX: u32 = 8;

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn epochs(phone: i64, user: i64) -> StreamEpochs {
    StreamEpochs { phone, user }
}

fn new_session(id: &str, account: &str, instance: &str, user: &str, at: i64) -> NewStreamSession {
    NewStreamSession {
        id: id.into(),
        account_id: account.into(),
        instance_id: instance.into(),
        end_user_id: user.into(),
        key_id: format!("key-{account}"),
        task_id: format!("cn-hangzhou@task-{id}"),
        node_id: "node-1".into(),
        peer: "127.0.0.1:5000".into(),
        opened_ms: at,
    }
}

/// Opens session `id` with the phone's current epochs for `user`, heard from at `at`.
async fn open(store: &dyn Store, id: &str, instance: &str, user: &str, at: i64) -> Opened {
    let current = store.stream_epochs(&ids(&[instance]), user).await.unwrap()[0].1;
    store
        .open_stream_session(&new_session(id, A, instance, user, at), current, MAX, 0)
        .await
        .unwrap()
}

fn session(role: R) -> Opened {
    Opened::Session { role }
}

async fn roles(store: &dyn Store, sessions: &[&str], now: i64) -> Vec<(String, R, Option<String>)> {
    store
        .touch_stream_sessions(&ids(sessions), now)
        .await
        .unwrap()
        .into_iter()
        .map(
            |SessionState {
                 id,
                 role,
                 ended_reason,
             }| (id, role, ended_reason),
        )
        .collect()
}

fn live(id: &str, role: R) -> (String, R, Option<String>) {
    (id.into(), role, None)
}

fn ended(id: &str, role: R, reason: &str) -> (String, R, Option<String>) {
    (id.into(), role, Some(reason.into()))
}

pub(crate) async fn check_epochs_and_disconnect(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-s",
        &[("acp-s1", S::Running), ("acp-s2", S::Running)],
    )
    .await;
    fleet(store, B, "ag-sb", &[("acp-sb", S::Running)]).await;
    let zero = store
        .stream_epochs(&ids(&["acp-s2", "acp-s1"]), "")
        .await
        .unwrap();
    assert_eq!(
        zero,
        [
            ("acp-s2".to_string(), epochs(0, 0)),
            ("acp-s1".to_string(), epochs(0, 0))
        ],
        "in the order asked; a phone never disconnected is at 0, 0"
    );

    // The first session controls, the others watch.
    assert_eq!(
        open(store, "ss-1", "acp-s1", "alice", 10).await,
        session(R::Control)
    );
    assert_eq!(
        open(store, "ss-2", "acp-s1", "bob", 11).await,
        session(R::View)
    );
    assert_eq!(
        open(store, "ss-3", "acp-s1", "", 12).await,
        session(R::View)
    );
    assert_eq!(
        open(store, "ss-9", "acp-s2", "alice", 13).await,
        session(R::Control)
    );
    let all = ids(&["acp-s1", "acp-s2", "acp-sb"]);
    assert_eq!(
        store.live_stream_instances(A, &all, 0).await.unwrap(),
        ["acp-s1", "acp-s2"]
    );
    // Another account sees none of them, and cannot disconnect them.
    assert!(
        store
            .live_stream_instances(B, &all, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .disconnect_streams(B, &ids(&["acp-s1", "acp-s2"]), None, 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .stream_epochs(&ids(&["acp-s1"]), "alice")
            .await
            .unwrap()[0]
            .1,
        epochs(0, 0),
        "B's disconnect moved nothing"
    );

    // One end user: that user's epoch moves on and that user's sessions end, on that phone.
    let gone = store
        .disconnect_streams(A, &ids(&["acp-s1"]), Some("alice"), 30)
        .await
        .unwrap();
    assert_eq!(gone, ["ss-1"]);
    assert_eq!(
        store
            .stream_epochs(&ids(&["acp-s1", "acp-s2"]), "alice")
            .await
            .unwrap(),
        [
            ("acp-s1".to_string(), epochs(0, 1)),
            ("acp-s2".to_string(), epochs(0, 0))
        ]
    );
    assert_eq!(
        store.stream_epochs(&ids(&["acp-s1"]), "bob").await.unwrap()[0].1,
        epochs(0, 0),
        "bob's tickets still open"
    );
    assert_eq!(
        roles(store, &["ss-1", "ss-2", "ss-3", "ss-9", "ss-none"], 31).await,
        [
            ended("ss-1", R::Control, "Disconnected"),
            live("ss-2", R::View),
            live("ss-3", R::View),
            live("ss-9", R::Control),
        ],
        "an unknown session has no state"
    );
    // alice's ticket of before no longer opens; one issued now does, and controls (nobody
    // did since ss-1 ended).
    let stale = new_session("ss-4", A, "acp-s1", "alice", 32);
    assert_eq!(
        store
            .open_stream_session(&stale, epochs(0, 0), MAX, 0)
            .await
            .unwrap(),
        Opened::Revoked
    );
    assert_eq!(
        open(store, "ss-4", "acp-s1", "alice", 33).await,
        session(R::Control)
    );

    // The whole phone: every user's tickets and sessions.
    let gone = store
        .disconnect_streams(A, &ids(&["acp-s1", "acp-unknown"]), None, 40)
        .await
        .unwrap();
    assert_eq!(gone, ["ss-2", "ss-3", "ss-4"]);
    for user in ["alice", "bob", ""] {
        let (_, e) = store.stream_epochs(&ids(&["acp-s1"]), user).await.unwrap()[0];
        assert_eq!(e.phone, 1, "{user}");
        let old = new_session("ss-5", A, "acp-s1", user, 41);
        let issued_before = epochs(0, e.user);
        assert_eq!(
            store
                .open_stream_session(&old, issued_before, MAX, 0)
                .await
                .unwrap(),
            Opened::Revoked,
            "{user}"
        );
    }
    assert_eq!(
        store.live_stream_instances(A, &all, 0).await.unwrap(),
        ["acp-s2"],
        "acp-s2 was not named"
    );
    // A phone with nobody on it moves on all the same: a ticket in flight stops opening.
    assert!(
        store
            .disconnect_streams(A, &ids(&["acp-s1"]), None, 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.stream_epochs(&ids(&["acp-s1"]), "").await.unwrap()[0].1,
        epochs(2, 0)
    );
    assert!(
        store
            .disconnect_streams(A, &[], None, 50)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn check_control_and_viewer_cap(store: &dyn Store) {
    fleet(store, A, "ag-c", &[("acp-c1", S::Running)]).await;
    assert_eq!(
        open(store, "ss-c1", "acp-c1", "", 1).await,
        session(R::Control)
    );
    assert_eq!(
        open(store, "ss-v1", "acp-c1", "", 2).await,
        session(R::View)
    );
    assert_eq!(
        open(store, "ss-v2", "acp-c1", "", 3).await,
        session(R::View)
    );
    // The cap counts live sessions.
    let current = store.stream_epochs(&ids(&["acp-c1"]), "").await.unwrap()[0].1;
    let more = new_session("ss-v3", A, "acp-c1", "", 4);
    assert_eq!(
        store
            .open_stream_session(&more, current, 3, 0)
            .await
            .unwrap(),
        Opened::Full
    );

    // Control moves: the one who had it watches.
    assert!(store.take_stream_control("ss-v1", 5, 0).await.unwrap());
    assert_eq!(
        roles(store, &["ss-c1", "ss-v1", "ss-v2"], 6).await,
        [
            live("ss-c1", R::View),
            live("ss-v1", R::Control),
            live("ss-v2", R::View)
        ]
    );
    // Taking it again changes nothing.
    assert!(store.take_stream_control("ss-v1", 7, 0).await.unwrap());
    // Letting go: only the controller can; then nobody controls until someone takes it, or a
    // new session opens.
    assert!(!store.release_stream_control("ss-c1").await.unwrap());
    assert!(store.release_stream_control("ss-v1").await.unwrap());
    assert_eq!(
        roles(store, &["ss-c1", "ss-v1", "ss-v2"], 8).await,
        [
            live("ss-c1", R::View),
            live("ss-v1", R::View),
            live("ss-v2", R::View)
        ]
    );
    assert_eq!(
        open(store, "ss-v4", "acp-c1", "", 9).await,
        session(R::Control)
    );

    // An ended session takes nothing, nor does an unknown one.
    assert_eq!(
        store
            .end_stream_sessions(&ids(&["ss-v4", "ss-none"]), "Closed", 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .end_stream_sessions(&ids(&["ss-v4"]), "Closed", 11)
            .await
            .unwrap(),
        0,
        "already ended: its reason stays"
    );
    assert!(!store.take_stream_control("ss-v4", 12, 0).await.unwrap());
    assert!(!store.take_stream_control("ss-none", 12, 0).await.unwrap());
    assert!(!store.release_stream_control("ss-v4").await.unwrap());
    assert_eq!(
        roles(store, &["ss-v4"], 13).await,
        [ended("ss-v4", R::Control, "Closed")],
        "an ended session keeps the role it had"
    );
    assert!(store.end_stream_sessions(&[], "Closed", 14).await.unwrap() == 0);

    // Ended sessions do not count against the cap: ss-v4 went, so a fourth of four opens.
    let current = store.stream_epochs(&ids(&["acp-c1"]), "").await.unwrap()[0].1;
    let fourth = new_session("ss-v5", A, "acp-c1", "", 15);
    assert_eq!(
        store
            .open_stream_session(&fourth, current, 4, 0)
            .await
            .unwrap(),
        session(R::Control)
    );
    let listed = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                instance_ids: ids(&["acp-c1"]),
                live_since: Some(0),
            },
            &page(100),
        )
        .await
        .unwrap();
    let controllers: Vec<&str> = listed
        .items
        .iter()
        .filter(|s| s.role == R::Control)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(controllers, ["ss-v5"], "one live controller");
    assert_eq!(listed.total, 4);
}

pub(crate) async fn check_stale_sessions(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-t",
        &[("acp-t1", S::Running), ("acp-t2", S::Running)],
    )
    .await;
    // Silent from the start, on another phone.
    assert_eq!(
        open(store, "ss-u1", "acp-t2", "", 1).await,
        session(R::Control)
    );
    assert_eq!(
        open(store, "ss-t1", "acp-t1", "", 1_000).await,
        session(R::Control)
    );
    assert_eq!(
        open(store, "ss-t2", "acp-t1", "", 1_500).await,
        session(R::View)
    );
    let phones = ids(&["acp-t1", "acp-t2"]);
    assert_eq!(
        store
            .live_stream_instances(A, &phones, 1_000)
            .await
            .unwrap(),
        ["acp-t1"]
    );
    // Not heard from since: not `connect`, though not ended yet.
    assert!(
        store
            .live_stream_instances(A, &phones, 2_000)
            .await
            .unwrap()
            .is_empty()
    );
    // A heartbeat brings it back.
    assert_eq!(
        roles(store, &["ss-t2"], 6_000).await,
        [live("ss-t2", R::View)]
    );
    assert_eq!(
        store
            .live_stream_instances(A, &phones, 2_000)
            .await
            .unwrap(),
        ["acp-t1"]
    );

    // The next session on the phone ends the stale controller as Lost, and takes control.
    let current = store.stream_epochs(&ids(&["acp-t1"]), "").await.unwrap()[0].1;
    let s = new_session("ss-t3", A, "acp-t1", "", 12_000);
    assert_eq!(
        store
            .open_stream_session(&s, current, MAX, 2_000)
            .await
            .unwrap(),
        session(R::Control)
    );
    assert_eq!(
        roles(store, &["ss-t1", "ss-t2", "ss-t3"], 12_500).await,
        [
            ended("ss-t1", R::Control, "Lost"),
            live("ss-t2", R::View),
            live("ss-t3", R::Control)
        ],
        "a heartbeat does not bring back an ended session"
    );

    // Taking control ends stale sessions too, but never the one asking, however late its beat.
    assert!(
        store
            .take_stream_control("ss-t2", 30_000, 20_000)
            .await
            .unwrap()
    );
    assert_eq!(
        roles(store, &["ss-t2", "ss-t3"], 30_001).await,
        [
            live("ss-t2", R::Control),
            ended("ss-t3", R::Control, "Lost")
        ]
    );
    // Only the phone's own stale sessions were ended.
    assert_eq!(
        roles(store, &["ss-u1"], 30_002).await,
        [live("ss-u1", R::Control)]
    );
}

pub(crate) async fn check_reap(store: &dyn Store) {
    fleet(store, A, "ag-r", &[("acp-r1", S::Running)]).await;
    for (n, at) in [(1, 1_000), (2, 2_000), (3, 3_000), (4, 50_000)] {
        open(store, &format!("ss-r{n}"), "acp-r1", "", at).await;
    }
    store
        .end_stream_sessions(&ids(&["ss-r1"]), "Closed", 5_000)
        .await
        .unwrap();
    store
        .end_stream_sessions(&ids(&["ss-r2"]), "Closed", 40_000)
        .await
        .unwrap();
    // At 60 s, keeping 30 s of history: ss-r1 ended too long ago, ss-r3 has been silent since
    // 3 s (before 50 s), ss-r2 ended recently and ss-r4 is live.
    assert_eq!(
        store
            .reap_stream_sessions(60_000, 50_000, 30_000)
            .await
            .unwrap(),
        Reaped {
            lost: 1,
            deleted: 1
        }
    );
    assert_eq!(
        roles(store, &["ss-r1", "ss-r2", "ss-r3", "ss-r4"], 60_001).await,
        [
            ended("ss-r2", R::View, "Closed"),
            ended("ss-r3", R::View, "Lost"),
            live("ss-r4", R::View)
        ]
    );
    // Later, the Lost one's time comes too.
    assert_eq!(
        store
            .reap_stream_sessions(100_000, 90_000, 30_000)
            .await
            .unwrap(),
        Reaped {
            lost: 1,
            deleted: 2
        },
        "ss-r4, last heard from at 60 s, is lost; it ended now, so its row stays"
    );
    let left = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                ..StreamSessionFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(left.total, 1);
    assert_eq!(left.items[0].id, "ss-r4");
}

pub(crate) async fn check_session_listings(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-l",
        &[("acp-l1", S::Running), ("acp-l2", S::Running)],
    )
    .await;
    fleet(store, B, "ag-lb", &[("acp-lb", S::Running)]).await;
    let mut opened = Vec::new();
    for n in 0..7 {
        let phone = if n % 2 == 0 { "acp-l1" } else { "acp-l2" };
        let id = format!("ss-l{n}");
        open(store, &id, phone, "alice", 100 + n).await;
        opened.push(id);
    }
    let current = store.stream_epochs(&ids(&["acp-lb"]), "").await.unwrap()[0].1;
    store
        .open_stream_session(&new_session("ss-lb", B, "acp-lb", "", 500), current, MAX, 0)
        .await
        .unwrap();
    store
        .end_stream_sessions(&ids(&["ss-l6"]), "Closed", 600)
        .await
        .unwrap();

    // Newest first, every page; B's session is not A's.
    let of_a = StreamSessionFilter {
        account_id: A.into(),
        ..StreamSessionFilter::default()
    };
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let l = store
            .list_stream_sessions(&of_a, &cloudphone_store::Page { after, limit: 3 })
            .await
            .unwrap();
        assert_eq!(l.total, 7);
        walked.extend(l.items.into_iter().map(|s| s.id));
        match l.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    opened.reverse();
    assert_eq!(walked, opened);

    let l = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                instance_ids: ids(&["acp-l1"]),
                live_since: Some(0),
            },
            &page(10),
        )
        .await
        .unwrap();
    let found: Vec<&str> = l.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(found, ["ss-l4", "ss-l2", "ss-l0"], "ss-l6 ended");
    let s = &l.items[2];
    assert_eq!(
        (
            s.account_id.as_str(),
            s.instance_id.as_str(),
            s.end_user_id.as_str(),
            s.key_id.as_str(),
            s.task_id.as_str(),
            s.node_id.as_str(),
            s.peer.as_str(),
            s.role,
            s.opened_ms,
            s.heartbeat_ms,
            s.ended_ms,
            s.end_reason.as_deref(),
        ),
        (
            A,
            "acp-l1",
            "alice",
            "key-acct-a",
            "cn-hangzhou@task-ss-l0",
            "node-1",
            "127.0.0.1:5000",
            R::Control,
            100,
            100,
            None,
            None
        )
    );
    // Heard from since 105: only the sessions opened at or after it.
    let l = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                instance_ids: Vec::new(),
                live_since: Some(105),
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(l.total, 1, "{:?}", l.items);
    assert_eq!(l.items[0].id, "ss-l5");

    // B asking about A's phone finds nothing.
    let l = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: B.into(),
                instance_ids: ids(&["acp-l1"]),
                live_since: None,
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(l.total, 0);
    assert!(l.items.is_empty());
}

/// Viewers opening one phone at once through two stores (two nodes on PostgreSQL): exactly
/// `max` open, exactly one of them in control.
pub(crate) async fn check_concurrent_opens(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    fleet(&*store, A, "ag-x", &[("acp-x1", S::Running)]).await;
    let max = 5;
    let mut calls = Vec::new();
    for n in 0..16 {
        let s = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        calls.push(tokio::spawn(async move {
            let session = new_session(&format!("ss-x{n:02}"), A, "acp-x1", "", 1_000 + n);
            s.open_stream_session(&session, StreamEpochs::default(), max, 0)
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    let count = |o: Opened| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count(session(R::Control)), 1, "{outcomes:?}");
    assert_eq!(count(session(R::View)), max as usize - 1, "{outcomes:?}");
    assert_eq!(count(Opened::Full), 16 - max as usize, "{outcomes:?}");

    // And control taken by many at once: one controller in the end.
    let live = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                instance_ids: ids(&["acp-x1"]),
                live_since: Some(0),
            },
            &page(100),
        )
        .await
        .unwrap();
    let mut takes = Vec::new();
    for (n, s) in live.items.iter().enumerate() {
        let st = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = s.id.clone();
        takes.push(tokio::spawn(async move {
            st.take_stream_control(&id, 2_000, 0).await.unwrap()
        }));
    }
    for t in takes {
        assert!(t.await.unwrap());
    }
    let after = store
        .list_stream_sessions(
            &StreamSessionFilter {
                account_id: A.into(),
                instance_ids: ids(&["acp-x1"]),
                live_since: Some(0),
            },
            &page(100),
        )
        .await
        .unwrap();
    assert_eq!(
        after.items.iter().filter(|s| s.role == R::Control).count(),
        1
    );
}
