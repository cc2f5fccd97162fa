"""Watching mail queues: the polling loop, its persistent state, notifiers and metrics."""
