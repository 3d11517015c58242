"""The Django app of revy (label `revy`): delta tables, tracking, snapshots and history."""

__all__: list[str] = []
