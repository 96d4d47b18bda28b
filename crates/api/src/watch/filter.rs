//! A watch's filter applied in memory, to the events its account's poller read once for every
//! stream: the same conditions the store's `task_events` puts in SQL (every field narrows, a
//! list is a set; the account is the feed's own).

use cloudphone_store::{EventFilter, TaskEvent};

pub(crate) fn matches(f: &EventFilter, e: &TaskEvent) -> bool {
    f.level.is_none_or(|level| e.level == level)
        && f.invoke_id.as_ref().is_none_or(|id| *id == e.invoke_id)
        && (f.task_ids.is_empty() || f.task_ids.contains(&e.task_id))
        && f.parent_task_id
            .as_ref()
            .is_none_or(|p| e.parent_id.as_ref() == Some(p))
        && (f.task_types.is_empty() || f.task_types.contains(&e.task_type))
        && (f.statuses.is_empty() || f.statuses.contains(&e.status))
        && f.instance_id
            .as_ref()
            .is_none_or(|i| e.instance_id.as_ref() == Some(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_core::{Level, TaskStatus, TaskType};
    use cloudphone_store::EventPosition;

    fn event() -> TaskEvent {
        TaskEvent {
            position: EventPosition { major: 0, minor: 1 },
            task_id: "t-child".into(),
            parent_id: Some("t-batch".into()),
            invoke_id: "inv-1".into(),
            level: Level::Instance,
            task_type: TaskType::RebootInstance,
            status: TaskStatus::Finished,
            instance_id: Some("acp-1".into()),
            error_code: None,
            counts: None,
            at_ms: 1,
        }
    }

    #[test]
    fn every_field_narrows() {
        let e = event();
        let all = EventFilter::default();
        assert!(matches(&all, &e));
        let hits = [
            EventFilter {
                level: Some(Level::Instance),
                ..all.clone()
            },
            EventFilter {
                invoke_id: Some("inv-1".into()),
                ..all.clone()
            },
            EventFilter {
                task_ids: vec!["t-other".into(), "t-child".into()],
                ..all.clone()
            },
            EventFilter {
                parent_task_id: Some("t-batch".into()),
                ..all.clone()
            },
            EventFilter {
                task_types: vec![TaskType::RebootInstance],
                ..all.clone()
            },
            EventFilter {
                statuses: vec![TaskStatus::Failed, TaskStatus::Finished],
                ..all.clone()
            },
            EventFilter {
                instance_id: Some("acp-1".into()),
                ..all.clone()
            },
        ];
        for f in &hits {
            assert!(matches(f, &e), "{f:?}");
        }
        let misses = [
            EventFilter {
                level: Some(Level::Batch),
                ..all.clone()
            },
            EventFilter {
                invoke_id: Some("inv-2".into()),
                ..all.clone()
            },
            EventFilter {
                task_ids: vec!["t-other".into()],
                ..all.clone()
            },
            EventFilter {
                parent_task_id: Some("t-else".into()),
                ..all.clone()
            },
            EventFilter {
                task_types: vec![TaskType::StopInstance],
                ..all.clone()
            },
            EventFilter {
                statuses: vec![TaskStatus::Waiting],
                ..all.clone()
            },
            EventFilter {
                instance_id: Some("acp-2".into()),
                ..all.clone()
            },
        ];
        for f in &misses {
            assert!(!matches(f, &e), "{f:?}");
        }
        // A batch has no parent and no instance: a filter on either leaves it out.
        let batch = TaskEvent {
            parent_id: None,
            instance_id: None,
            level: Level::Batch,
            ..e
        };
        assert!(!matches(&hits[3], &batch) && !matches(&hits[6], &batch));
    }
}
