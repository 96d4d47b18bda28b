-- The batch of a group's latest image update; its status gives the group's UPDATING /
-- UPDATING_FAILED status.
ALTER TABLE instance_groups ADD COLUMN image_task_id TEXT;
