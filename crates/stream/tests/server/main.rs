//! The stream server end to end, in process: a real SQLite store, a fake backend whose screens
//! send synthetic frames, the WebSocket route on a loopback port, the node's recheck task, and
//! tokio-tungstenite as the viewer. What tests/sdk/test_streams.py checks through the real
//! binary with simulated phones, plus what only a fake can show (how many screens a phone's
//! viewers open, a stuck input queue, a screen that cannot open).

mod fake;
mod harness;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cloudphone_backend::{Input, TouchAction};
use cloudphone_core::InstanceStatus;
use cloudphone_stream::{RevocationReason, StreamLimits};
use serde_json::json;

use fake::FakeScreens;
use harness::{ACCOUNT, Got, Harness, KEY, OTHER_ACCOUNT, OTHER_PHONE, PHONE, PHONE_2};

fn limits() -> StreamLimits {
    StreamLimits {
        hello_timeout: Duration::from_millis(500),
        linger: Duration::from_millis(300),
        ..StreamLimits::default()
    }
}

async fn live_sessions(h: &Harness, instance: &str) -> Vec<String> {
    h.store
        .live_stream_instances(ACCOUNT, &[instance.to_string()], 0)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_close_with_their_codes() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;

    // No hello in time; something else first.
    let mut v = h.connect(PHONE).await;
    assert_eq!(v.closed().await, (4400, "HelloExpected".into()));
    let mut v = h.connect(PHONE).await;
    v.send(json!({"t": "ping", "ts": 1})).await;
    assert_eq!(v.closed().await.0, 4400);

    // Not a ticket, a forged one, an expired one.
    for (ticket, code, reason) in [
        ("cpt1.bm90.aGVsbG8".to_string(), 4401, "TicketInvalid"),
        (
            cloudphone_stream::TicketKey::new(b"another key").issue(
                &h.key
                    .open(&h.ticket(PHONE).await, cloudphone_core::time::now_ms())
                    .unwrap(),
            ),
            4401,
            "TicketInvalid",
        ),
        (
            h.ticket_for(ACCOUNT, KEY, PHONE, "", -1).await,
            4402,
            "TicketExpired",
        ),
        // Another phone's ticket, and another account's.
        (h.ticket(PHONE_2).await, 4403, "TicketNotForThisPhone"),
        (
            h.ticket_for(OTHER_ACCOUNT, "otherkey", OTHER_PHONE, "", 60_000)
                .await,
            4403,
            "TicketNotForThisPhone",
        ),
        // A ticket naming a phone of another account than its own.
        (
            h.ticket_for(OTHER_ACCOUNT, "otherkey", PHONE, "", 60_000)
                .await,
            4404,
            "InstanceNotFound",
        ),
        // An access key that does not exist (deleted since).
        (
            h.ticket_for(ACCOUNT, "gonekey", PHONE, "", 60_000).await,
            4403,
            "KeyRevoked",
        ),
    ] {
        let mut v = h.connect(PHONE).await;
        v.hello(&ticket).await;
        assert_eq!(v.closed().await, (code, reason.to_string()), "{reason}");
    }
    assert!(live_sessions(&h, PHONE).await.is_empty());

    // A phone not RUNNING.
    let mut v = h.connect(PHONE_2).await;
    let ticket = h.ticket(PHONE_2).await;
    h.store
        .mark_instance(
            PHONE_2,
            InstanceStatus::Running,
            InstanceStatus::Stopped,
            0,
            1,
        )
        .await
        .unwrap();
    v.hello(&ticket).await;
    assert_eq!(v.closed().await, (4409, "InstanceNotRunning".into()));
    assert_eq!(h.fake.opened.load(Ordering::SeqCst), 0, "no screen opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_hello_then_frames_and_its_input_shows() {
    let h = Harness::start(limits(), FakeScreens::new(1000)).await;
    let (mut v, hello) = h.open(PHONE).await;
    let session = hello["session"].as_str().unwrap().to_string();
    assert!(session.starts_with("ss-"), "{hello}");
    assert_eq!(hello["role"], "control");
    assert_eq!(hello["codec"], "png");
    assert_eq!(
        (hello["width"].as_u64(), hello["height"].as_u64()),
        (Some(720), Some(1280))
    );
    assert_eq!(hello["device"], json!([720, 1280]));
    let tag = hello["tag"].as_u64().unwrap() as u32;
    assert!(tag > 0);
    assert_eq!(v.text_of("viewers").await["n"], 1);
    assert_eq!(live_sessions(&h, PHONE).await, [PHONE]);
    assert_eq!(h.streams.sessions(), 1);

    // Frames at about the stream's rate, numbered, each with its header.
    let started = Instant::now();
    let first = v.frame().await;
    assert_eq!((first.kind, first.width, first.height), (1, 720, 1280));
    let mut last = first.seq;
    for _ in 0..10 {
        let f = v.frame().await;
        assert!(f.seq > last);
        last = f.seq;
    }
    let fps = 10.0 / started.elapsed().as_secs_f64();
    assert!(fps > 12.0, "{fps} frames a second");

    // Input: applied, acknowledged, and the next frames say they show it.
    v.send(json!({"t":"touch","seq":1,"a":"down","x":100,"y":200,"w":720,"h":1280}))
        .await;
    v.send(json!({"t":"touch","seq":2,"a":"move","x":110,"y":200,"w":720,"h":1280}))
        .await;
    v.send(json!({"t":"touch","seq":3,"a":"up","x":120,"y":200,"w":720,"h":1280}))
        .await;
    v.send(json!({"t":"key","seq":4,"key":"back"})).await;
    v.send(json!({"t":"text","seq":5,"text":"hello"})).await;
    let mut acks = Vec::new();
    let mut shown = false;
    while acks.len() < 4 || !shown {
        match v.next().await {
            Got::Text(m) if m["t"] == "ack" => {
                assert_eq!(m["ok"], true, "{m}");
                acks.push(m["seq"].as_u64().unwrap());
            }
            Got::Frame(f, len) => {
                assert_eq!(len, 1000, "the payload follows the header");
                shown |= f.input_tag == tag && f.input_seq >= 5;
            }
            other => panic!("{other:?}"),
        }
    }
    acks.sort();
    assert_eq!(acks, [1, 3, 4, 5], "every input but moves is acknowledged");
    let got: Vec<_> = h
        .fake
        .inputs()
        .into_iter()
        .map(|(_, t, s, i)| (t, s, i))
        .collect();
    assert_eq!(
        got[0],
        (
            tag,
            1,
            Input::Touch {
                action: TouchAction::Down,
                x: 100,
                y: 200,
                frame_w: 720,
                frame_h: 1280
            }
        )
    );
    assert_eq!(got[3], (tag, 4, Input::Key(cloudphone_backend::Key::Back)));
    assert_eq!(got[4], (tag, 5, Input::Text("hello".into())));

    // Bad input is answered, not applied.
    v.send(json!({"t":"key","seq":6,"key":"turbo"})).await;
    let e = v.text_of("error").await;
    assert_eq!(
        (e["seq"].as_u64(), e["code"].as_str()),
        (Some(6), Some("UnknownKey"))
    );
    v.send(json!({"t":"text","seq":7,"text":"x".repeat(301)}))
        .await;
    assert_eq!(v.text_of("error").await["code"], "TextTooLong");
    v.send(json!({"t":"what"})).await;
    assert_eq!(v.text_of("error").await["code"], "InvalidMessage");
    v.send(json!({"t":"ping","ts":12.5})).await;
    assert_eq!(v.text_of("pong").await["ts"], 12.5);

    // The viewer leaves: the session ends Closed, with its audit entry.
    v.ws.close(None).await.unwrap();
    Harness::eventually(5, "the session ended", async || {
        live_sessions(&h, PHONE).await.is_empty()
    })
    .await;
    Harness::eventually(5, "the audit entry", async || {
        let entries = h
            .store
            .audit(&cloudphone_store::AuditFilter {
                account_id: Some(ACCOUNT.into()),
                action: Some("StreamSession".into()),
                after_id: 0,
                limit: 10,
            })
            .await
            .unwrap();
        entries.iter().any(|e| {
            e.request_id == session
                && e.key_id == KEY
                && e.resource_ids == [PHONE]
                && e.outcome.starts_with("Closed seconds=")
                && e.outcome.contains("inputs=5 role=control")
        })
    })
    .await;
    // The screen closes once the linger has passed.
    Harness::eventually(5, "the screen closed", async || {
        h.fake.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_screen_for_many_viewers_and_control_moves() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;
    let (mut a, ha) = h.open(PHONE).await;
    let (mut b, hb) = h.open(PHONE).await;
    assert_eq!(
        (ha["role"].as_str(), hb["role"].as_str()),
        (Some("control"), Some("view"))
    );
    assert_ne!(ha["tag"], hb["tag"]);
    assert_eq!(
        h.fake.opened.load(Ordering::SeqCst),
        1,
        "one screen for both"
    );
    Harness::eventually(5, "a sees two viewers", async || {
        a.text_of("viewers").await["n"] == 2
    })
    .await;

    // The watcher's input is refused.
    b.send(json!({"t":"touch","seq":1,"a":"down","x":1,"y":1,"w":720,"h":1280}))
        .await;
    let e = b.text_of("error").await;
    assert_eq!(
        (e["seq"].as_u64(), e["code"].as_str()),
        (Some(1), Some("NotController"))
    );

    // b takes control: a learns it watches now, b's input goes through, a's is refused.
    b.send(json!({"t":"control","take":true})).await;
    assert_eq!(b.text_of("role").await["role"], "control");
    let r = a.text_of("role").await;
    assert_eq!(r["role"], "view");
    assert_eq!(r["controller"], hb["session"]);
    b.send(json!({"t":"key","seq":2,"key":"home"})).await;
    assert_eq!(b.text_of("ack").await["ok"], true);
    a.send(json!({"t":"key","seq":9,"key":"home"})).await;
    assert_eq!(a.text_of("error").await["code"], "NotController");

    // b lets go; a takes it back.
    b.send(json!({"t":"control","take":false})).await;
    assert_eq!(b.text_of("role").await["role"], "view");
    let r = a.text_of("role").await;
    assert_eq!(
        (r["role"].as_str(), &r["controller"]),
        (Some("view"), &json!(null)),
        "nobody controls"
    );
    a.send(json!({"t":"control","take":true})).await;
    assert_eq!(a.text_of("role").await["role"], "control");
    // A watcher hears of control moving between others too.
    let r = b.text_of("role").await;
    assert_eq!(
        (r["role"].as_str(), &r["controller"]),
        (Some("view"), &ha["session"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caps_of_a_phone_and_of_the_node() {
    let h = Harness::start(
        StreamLimits {
            max_viewers_per_phone: 2,
            max_sessions: 3,
            ..limits()
        },
        FakeScreens::new(64),
    )
    .await;
    let (_a, _) = h.open(PHONE).await;
    let (_b, _) = h.open(PHONE).await;
    let mut c = h.connect(PHONE).await;
    c.hello(&h.ticket(PHONE).await).await;
    assert_eq!(c.closed().await, (4429, "TooManyViewers".into()));
    let (_d, _) = h.open(PHONE_2).await;
    let mut e = h.connect(PHONE_2).await;
    assert_eq!(e.closed().await, (4503, "TooManySessions".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_closes_at_once_and_old_tickets_stop_opening() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;
    let old = h.ticket(PHONE).await;
    let mut a = h.connect(PHONE).await;
    a.hello(&old).await;
    a.text_of("hello").await;
    let (mut other, _) = h.open(PHONE_2).await;
    let started = Instant::now();
    let ended = h
        .store
        .disconnect_streams(
            ACCOUNT,
            &[PHONE.to_string()],
            None,
            cloudphone_core::time::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    h.revocations.ring(
        vec![PHONE.into()],
        None,
        ended,
        RevocationReason::Disconnected,
    );
    assert_eq!(a.closed().await, (4000, "Disconnected".into()));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let mut again = h.connect(PHONE).await;
    again.hello(&old).await;
    assert_eq!(again.closed().await, (4410, "TicketRevoked".into()));
    // The other phone's viewer is untouched, and a fresh ticket opens.
    other.frame().await;
    let (_fresh, hello) = h.open(PHONE).await;
    assert_eq!(hello["role"], "control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_found_by_the_heartbeat_close_sessions() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;
    // Ended in the store by another node (no ring here): the heartbeat finds out.
    let (mut a, _) = h.open(PHONE).await;
    h.store
        .disconnect_streams(
            ACCOUNT,
            &[PHONE.to_string()],
            None,
            cloudphone_core::time::now_ms(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(a.closed().await, (4000, "Disconnected".into()));
    assert!(started.elapsed() < Duration::from_millis(2500));

    // The phone stops.
    let (mut b, _) = h.open(PHONE_2).await;
    h.store
        .mark_instance(
            PHONE_2,
            InstanceStatus::Running,
            InstanceStatus::Stopped,
            0,
            1,
        )
        .await
        .unwrap();
    assert_eq!(b.closed().await, (4001, "PhoneStopped".into()));
    // Recorded after the close is sent.
    Harness::eventually(5, "the session ended", async || {
        live_sessions(&h, PHONE_2).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_ends_its_sessions() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;
    let (mut a, _) = h.open(PHONE).await;
    assert!(h.store.set_access_key_disabled(KEY, true).await.unwrap());
    assert_eq!(a.closed().await, (4003, "KeyRevoked".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_session_with_4002() {
    let h = Harness::start(limits(), FakeScreens::new(64)).await;
    let (mut a, _) = h.open(PHONE).await;
    let mut waiting = h.connect(PHONE_2).await;
    h.closing.cancel();
    assert_eq!(a.closed().await, (4002, "ServerShutdown".into()));
    assert_eq!(waiting.closed().await, (4002, "ServerShutdown".into()));
    Harness::eventually(5, "the session ended", async || {
        live_sessions(&h, PHONE).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_that_cannot_open_closes_with_4501() {
    let h = Harness::start(
        limits(),
        FakeScreens {
            unsupported: true,
            ..FakeScreens::new(64)
        },
    )
    .await;
    let mut v = h.connect(PHONE).await;
    v.hello(&h.ticket(PHONE).await).await;
    assert_eq!(v.closed().await, (4501, "ScreenUnavailable".into()));
    Harness::eventually(5, "the session ended", async || {
        live_sessions(&h, PHONE).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_input_queue_answers_busy() {
    let h = Harness::start(
        limits(),
        FakeScreens {
            stuck_input: true,
            ..FakeScreens::new(64)
        },
    )
    .await;
    let (mut v, _) = h.open(PHONE).await;
    for seq in 1..=80 {
        v.send(json!({"t":"key","seq":seq,"key":"home"})).await;
    }
    let a = v.text_of("ack").await;
    assert_eq!(
        (a["ok"].as_bool(), a["code"].as_str()),
        (Some(false), Some("Busy"))
    );
    assert_eq!(a["seq"], 65, "the queue holds 64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_past_the_rate_cap_is_dropped_or_throttled() {
    let h = Harness::start(
        StreamLimits {
            inputs_per_second: 5,
            ..limits()
        },
        FakeScreens::new(64),
    )
    .await;
    let (mut v, _) = h.open(PHONE).await;
    for seq in 1..=10 {
        v.send(json!({"t":"touch","seq":seq,"a":"move","x":1,"y":1,"w":720,"h":1280}))
            .await;
    }
    v.send(json!({"t":"key","seq":11,"key":"home"})).await;
    let a = v.text_of("ack").await;
    assert_eq!(
        (a["seq"].as_u64(), a["code"].as_str()),
        (Some(11), Some("Throttled"))
    );
    let moves = h.fake.inputs().len();
    assert!(moves <= 5, "{moves} moves passed the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_does_not_slow_another() {
    // 256 KiB frames at 20 a second: a viewer that never reads fills its socket in moments.
    let h = Harness::start(limits(), FakeScreens::new(256 << 10)).await;
    let mut stalled = h.connect(PHONE).await;
    stalled.hello(&h.ticket(PHONE).await).await;
    let (mut good, _) = h.open(PHONE).await;
    // Let the stalled one's buffers fill.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = good.frame().await.seq;
    let started = Instant::now();
    let mut frames = 0;
    while started.elapsed() < Duration::from_secs(3) {
        good.frame().await;
        frames += 1;
    }
    let fps = f64::from(frames) / started.elapsed().as_secs_f64();
    assert!(
        fps >= 15.0,
        "{fps} frames a second beside a stalled viewer (from {first})"
    );
    drop(stalled);
}
