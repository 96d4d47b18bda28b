//! The sessions this node holds: for each, what the heartbeat and the rechecks need (its
//! phone, account and access key), its role as this node last learned it, and the signal that
//! ends it. A session reads its [`Handle`]; the recheck loop, the revocation listener and
//! control changes on this node write through the [`Registry`].

use std::collections::HashMap;
use std::sync::Mutex;

use cloudphone_store::StreamRole;
use tokio::sync::watch;

use crate::protocol::Close;

/// How a session was ended from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    pub close: Close,
    /// The store has the session ended already (another node's or this node's write): the
    /// session does not end it again.
    pub recorded: bool,
}

#[derive(Debug)]
struct Entry {
    instance_id: String,
    account_id: String,
    key_id: String,
    role: watch::Sender<StreamRole>,
    end: watch::Sender<Option<End>>,
}

/// What a session holds of its entry.
#[derive(Debug)]
pub struct Handle {
    pub role: watch::Receiver<StreamRole>,
    pub end: watch::Receiver<Option<End>>,
}

/// A session as the recheck sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub instance_id: String,
    pub account_id: String,
    pub key_id: String,
}

#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, s: &Member, role: StreamRole) -> Handle {
        let (role_tx, role_rx) = watch::channel(role);
        let (end_tx, end_rx) = watch::channel(None);
        self.map().insert(
            s.id.clone(),
            Entry {
                instance_id: s.instance_id.clone(),
                account_id: s.account_id.clone(),
                key_id: s.key_id.clone(),
                role: role_tx,
                end: end_tx,
            },
        );
        Handle {
            role: role_rx,
            end: end_rx,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Every session held, in id order.
    pub fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .map()
            .iter()
            .map(|(id, e)| Member {
                id: id.clone(),
                instance_id: e.instance_id.clone(),
                account_id: e.account_id.clone(),
                key_id: e.key_id.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Ends the session `id` if this node holds it (the first end wins); whether it did.
    pub fn end(&self, id: &str, end: End) -> bool {
        match self.map().get(id) {
            Some(e) => e.end.send_if_modified(|slot| {
                if slot.is_none() {
                    *slot = Some(end);
                    true
                } else {
                    false
                }
            }),
            None => false,
        }
    }

    /// Ends every session held that `pick` selects; how many.
    pub fn end_where(&self, end: End, pick: impl Fn(&Member) -> bool) -> usize {
        let ids: Vec<String> = self
            .members()
            .into_iter()
            .filter(|h| pick(h))
            .map(|h| h.id)
            .collect();
        ids.iter().filter(|id| self.end(id, end)).count()
    }

    /// Sets the role this node knows for `id`.
    pub fn set_role(&self, id: &str, role: StreamRole) {
        if let Some(e) = self.map().get(id) {
            e.role
                .send_if_modified(|r| std::mem::replace(r, role) != role);
        }
    }

    /// `id` took control of `instance_id` (`taken`), or let go of it: the other sessions of
    /// that phone this node holds watch. Every one of them hears of it, those whose role did
    /// not change too (control moved between others: who controls changed).
    pub fn control_moved(&self, instance_id: &str, id: &str, taken: bool) {
        for (other, e) in self.map().iter() {
            if e.instance_id != instance_id {
                continue;
            }
            let role = if other == id && taken {
                StreamRole::Control
            } else {
                StreamRole::View
            };
            e.role.send_replace(role);
        }
    }

    /// The session of `instance_id` this node knows controls it.
    pub fn controller(&self, instance_id: &str) -> Option<String> {
        self.map()
            .iter()
            .find(|(_, e)| e.instance_id == instance_id && *e.role.borrow() == StreamRole::Control)
            .map(|(id, _)| id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, phone: &str) -> Member {
        Member {
            id: id.into(),
            instance_id: phone.into(),
            account_id: "acct".into(),
            key_id: "key".into(),
        }
    }

    #[test]
    fn the_first_end_wins_and_roles_follow_control() {
        let r = Registry::default();
        let mut a = r.add(&member("ss-a", "acp-1"), StreamRole::Control);
        let b = r.add(&member("ss-b", "acp-1"), StreamRole::View);
        let mut c = r.add(&member("ss-c", "acp-2"), StreamRole::Control);
        c.role.borrow_and_update();
        assert_eq!(r.controller("acp-1").as_deref(), Some("ss-a"));
        r.control_moved("acp-1", "ss-b", true);
        assert!(a.role.has_changed().unwrap());
        assert_eq!(*a.role.borrow_and_update(), StreamRole::View);
        assert_eq!(*b.role.borrow(), StreamRole::Control);
        assert_eq!(*c.role.borrow(), StreamRole::Control, "another phone");
        assert!(!c.role.has_changed().unwrap());
        assert_eq!(r.controller("acp-1").as_deref(), Some("ss-b"));
        // b lets go: nobody controls; a hears of it though its role stays.
        r.control_moved("acp-1", "ss-b", false);
        assert!(a.role.has_changed().unwrap());
        assert_eq!(*a.role.borrow_and_update(), StreamRole::View);
        assert_eq!(r.controller("acp-1"), None);

        let first = End {
            close: Close::DISCONNECTED,
            recorded: true,
        };
        assert!(r.end("ss-a", first));
        assert!(!r.end(
            "ss-a",
            End {
                close: Close::SHUTDOWN,
                recorded: false
            }
        ));
        assert_eq!(*a.end.borrow(), Some(first));
        assert!(!r.end("ss-zz", first));
        let n = r.end_where(
            End {
                close: Close::PHONE_STOPPED,
                recorded: false,
            },
            |h| h.instance_id == "acp-1",
        );
        assert_eq!(n, 1, "ss-b; ss-a had ended already");
        assert_eq!(r.members().len(), 3);
        r.remove("ss-a");
        assert_eq!(r.len(), 2);
    }
}
