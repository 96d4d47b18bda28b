//! Arguments carried to a SQLite database thread: an operation's borrowed arguments are copied
//! into owned values that the thread's job takes along ([`Carry::carry`]), and lent back to
//! the shared operation there in their borrowed form ([`Carry::view`]). Values that are `Copy`
//! travel as they are.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{AccessKey, App, Backup, Group, Instance, KeyPair};

use crate::{
    AdbFilter, AdbPorts, AppFilter, AuditFilter, BackupFilter, Completion, DeliveryEnd,
    EventFilter, EventPosition, GroupFilter, HostHealth, InstanceChange, InstanceFilter,
    KeyPairFilter, NewBatch, NewDrain, NewStreamSession, NodeInfo, Outcome, Page, PlacementAsk,
    SimPublish, StreamEpochs, StreamSessionFilter, TaskFilter, Webhook,
};

pub(crate) trait Carry {
    /// What the job takes along.
    type Owned: Send + 'static;
    /// What the shared operation is given on the thread.
    type View<'a>;
    fn carry(self) -> Self::Owned;
    fn view(owned: &Self::Owned) -> Self::View<'_>;
}

impl Carry for &str {
    type Owned = String;
    type View<'a> = &'a str;
    fn carry(self) -> String {
        self.to_owned()
    }
    fn view(owned: &String) -> &str {
        owned
    }
}

impl Carry for Option<&str> {
    type Owned = Option<String>;
    type View<'a> = Option<&'a str>;
    fn carry(self) -> Option<String> {
        self.map(str::to_owned)
    }
    fn view(owned: &Option<String>) -> Option<&str> {
        owned.as_deref()
    }
}

impl<T: Clone + Send + 'static> Carry for &[T] {
    type Owned = Vec<T>;
    type View<'a> = &'a [T];
    fn carry(self) -> Vec<T> {
        self.to_vec()
    }
    fn view(owned: &Vec<T>) -> &[T] {
        owned
    }
}

/// Borrowed values that travel as clones.
macro_rules! by_clone {
    ($($t:ty),* $(,)?) => {$(
        impl Carry for &$t {
            type Owned = $t;
            type View<'a> = &'a $t;
            fn carry(self) -> $t {
                self.clone()
            }
            fn view(owned: &$t) -> &$t {
                owned
            }
        }
    )*};
}

by_clone!(
    AccessKey,
    App,
    AppFilter,
    AuditFilter,
    Backup,
    BackupFilter,
    Completion,
    DeliveryEnd,
    EventFilter,
    Group,
    GroupFilter,
    Instance,
    InstanceChange,
    InstanceFilter,
    KeyPair,
    KeyPairFilter,
    AdbFilter,
    NewBatch,
    NewStreamSession,
    Outcome,
    Page,
    StreamSessionFilter,
    TaskFilter,
    Webhook,
    NodeInfo,
    HostHealth,
    NewDrain,
    SimPublish,
);

/// Values that travel as they are.
macro_rules! by_copy {
    ($($t:ty),* $(,)?) => {$(
        impl Carry for $t {
            type Owned = $t;
            type View<'a> = $t;
            fn carry(self) -> $t {
                self
            }
            fn view(owned: &$t) -> $t {
                *owned
            }
        }
    )*};
}

by_copy!(
    i64,
    u16,
    u32,
    u64,
    usize,
    bool,
    InstanceStatus,
    EventPosition,
    AdbPorts,
    StreamEpochs,
    Option<u64>,
    Option<PlacementAsk>
);
