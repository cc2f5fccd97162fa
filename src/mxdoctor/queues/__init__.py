"""Mail queues: one reader per MTA listing format, the deferral classifier, and queue shape."""
