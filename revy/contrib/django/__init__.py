"""The Django app of revy (label `revy`): delta tables, tracking, snapshots and history."""
