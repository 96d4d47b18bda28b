//! A ticket's way into a session, against a real store (SQLite): issued under the phone's
//! epochs as BatchGetAcpConnectionTicket issues it, opened (tag, expiry, the phone it names),
//! then a session opened with the epochs it carries. DisconnectAndroidInstance, with and
//! without `EndUserId`, makes every earlier ticket it covers fail at that last step, while
//! tickets issued after it open. The stream server runs these same steps before it shows a
//! screen (docs/design.md §14.1); here they run without a WebSocket.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance};
use cloudphone_store::prelude::*;
use cloudphone_store::{NewStreamSession, Opened, SqliteStore, StreamEpochs, StreamRole};
use cloudphone_stream::{Claims, Epochs, TicketError, TicketKey, stale_before};

const ACCOUNT: &str = "acct-a";
const PHONE: &str = "acp-0000000000000001";
const OTHER_PHONE: &str = "acp-0000000000000002";
const NOW: i64 = 1_760_000_000_000;
const TTL: i64 = 120_000;

async fn store_with_phones(dir: &tempfile::TempDir) -> SqliteStore {
    let store = SqliteStore::open(&dir.path().join("cloudphone.db"))
        .await
        .unwrap();
    let group = Group {
        id: "ag-0000000000000001".into(),
        account_id: ACCOUNT.into(),
        name: "lab".into(),
        region_id: "cn-hangzhou".into(),
        image_id: "imgc-simandroid140000".into(),
        spec: "acp.basic.small".into(),
        charge_type: "PostPaid".into(),
        tags: Vec::new(),
        created_ms: 0,
        modified_ms: 0,
        deleting: false,
    };
    let phone = |id: &str| Instance {
        id: id.into(),
        account_id: ACCOUNT.into(),
        group_id: group.id.clone(),
        group_name: String::new(),
        name: id.into(),
        status: InstanceStatus::Running,
        image_id: group.image_id.clone(),
        spec: group.spec.clone(),
        region_id: group.region_id.clone(),
        up_bandwidth_limit: None,
        down_bandwidth_limit: None,
        charge_type: "PostPaid".into(),
        created_ms: 0,
        modified_ms: 0,
        host: None,
        adb_port: None,
    };
    store
        .create_groups(
            std::slice::from_ref(&group),
            &[phone(PHONE), phone(OTHER_PHONE)],
            &[],
            None,
            None,
        )
        .await
        .unwrap();
    store
}

/// A ticket for `instance` and `user` as the action makes it: the phone's epochs now.
async fn issue(store: &SqliteStore, key: &TicketKey, instance: &str, user: &str) -> String {
    let epochs = store
        .stream_epochs(&[instance.to_string()], user)
        .await
        .unwrap()[0]
        .1;
    key.issue(&Claims {
        account_id: ACCOUNT.into(),
        instance_id: instance.into(),
        end_user_id: user.into(),
        key_id: "testid".into(),
        epochs: Epochs {
            phone: epochs.phone,
            user: epochs.user,
        },
        task_id: "cn-hangzhou@7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f".into(),
        iat: NOW,
        exp: NOW + TTL,
    })
}

/// Why a ticket did not open a session of `path_instance`.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Ticket(TicketError),
    NotForThisPhone,
    Revoked,
    Full,
}

/// The open-session check: the ticket opens, names this phone, and its epochs are current.
async fn open_session(
    store: &SqliteStore,
    key: &TicketKey,
    ticket: &str,
    path_instance: &str,
    session_id: &str,
    now: i64,
) -> Result<StreamRole, Refused> {
    let claims = key.open(ticket, now).map_err(Refused::Ticket)?;
    if claims.instance_id != path_instance {
        return Err(Refused::NotForThisPhone);
    }
    let session = NewStreamSession {
        id: session_id.into(),
        account_id: claims.account_id,
        instance_id: claims.instance_id,
        end_user_id: claims.end_user_id,
        key_id: claims.key_id,
        task_id: claims.task_id,
        node_id: "node-test".into(),
        peer: "127.0.0.1:40000".into(),
        opened_ms: now,
    };
    let epochs = StreamEpochs {
        phone: claims.epochs.phone,
        user: claims.epochs.user,
    };
    match store
        .open_stream_session(&session, epochs, 8, stale_before(now))
        .await
        .unwrap()
    {
        Opened::Session { role } => Ok(role),
        Opened::Revoked => Err(Refused::Revoked),
        Opened::Full => Err(Refused::Full),
    }
}

#[tokio::test]
async fn disconnect_stops_earlier_tickets_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_phones(&dir).await;
    let key = TicketKey::new(b"the key every node shares");
    let at = NOW + 1_000;

    let alice = issue(&store, &key, PHONE, "alice").await;
    let bob = issue(&store, &key, PHONE, "bob").await;
    let nobody = issue(&store, &key, PHONE, "").await;
    assert_eq!(
        open_session(&store, &key, &alice, PHONE, "ss-a1", at).await,
        Ok(StreamRole::Control)
    );
    // A ticket opens only its own phone, and only until it expires; a ticket may be used
    // again while it is valid.
    assert_eq!(
        open_session(&store, &key, &bob, OTHER_PHONE, "ss-x", at).await,
        Err(Refused::NotForThisPhone)
    );
    assert_eq!(
        open_session(&store, &key, &bob, PHONE, "ss-x", NOW + TTL).await,
        Err(Refused::Ticket(TicketError::Expired))
    );
    let forged = TicketKey::new(b"a key of our own").issue(&key.open(&bob, at).unwrap());
    assert_eq!(
        open_session(&store, &key, &forged, PHONE, "ss-x", at).await,
        Err(Refused::Ticket(TicketError::Forged))
    );
    assert_eq!(
        open_session(&store, &key, &alice, PHONE, "ss-a2", at).await,
        Ok(StreamRole::View)
    );

    // One end user: alice's tickets of before stop opening, bob's and the user-less one do not.
    let ended = store
        .disconnect_streams(ACCOUNT, &[PHONE.to_string()], Some("alice"), at + 1)
        .await
        .unwrap();
    assert_eq!(ended, ["ss-a1", "ss-a2"]);
    assert_eq!(
        open_session(&store, &key, &alice, PHONE, "ss-a3", at + 2).await,
        Err(Refused::Revoked)
    );
    assert_eq!(
        open_session(&store, &key, &bob, PHONE, "ss-b1", at + 2).await,
        Ok(StreamRole::Control),
        "alice's sessions ended, so bob's first one controls"
    );
    assert_eq!(
        open_session(&store, &key, &nobody, PHONE, "ss-n1", at + 2).await,
        Ok(StreamRole::View)
    );
    let alice_again = issue(&store, &key, PHONE, "alice").await;
    assert_eq!(
        open_session(&store, &key, &alice_again, PHONE, "ss-a4", at + 3).await,
        Ok(StreamRole::View)
    );

    // The whole phone: every ticket of before, whoever it is for; the other phone's still opens.
    let other = issue(&store, &key, OTHER_PHONE, "bob").await;
    let ended = store
        .disconnect_streams(ACCOUNT, &[PHONE.to_string()], None, at + 4)
        .await
        .unwrap();
    assert_eq!(ended, ["ss-a4", "ss-b1", "ss-n1"]);
    for (n, t) in [&alice, &bob, &nobody, &alice_again]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            open_session(&store, &key, t, PHONE, &format!("ss-z{n}"), at + 5).await,
            Err(Refused::Revoked),
            "ticket {n}"
        );
    }
    assert_eq!(
        open_session(&store, &key, &other, OTHER_PHONE, "ss-o1", at + 5).await,
        Ok(StreamRole::Control)
    );
    let fresh = issue(&store, &key, PHONE, "bob").await;
    assert_eq!(
        open_session(&store, &key, &fresh, PHONE, "ss-b2", at + 6).await,
        Ok(StreamRole::Control)
    );
    // Another account's disconnect reaches none of this account's phones.
    let ended = store
        .disconnect_streams("acct-b", &[PHONE.to_string()], None, at + 7)
        .await
        .unwrap();
    assert!(ended.is_empty());
    assert_eq!(
        open_session(&store, &key, &fresh, PHONE, "ss-b3", at + 8).await,
        Ok(StreamRole::View)
    );
    store.close().await;
}
