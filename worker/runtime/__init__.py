"""What the arq worker process runs: its settings class (``main``), the batch path,
the job functions and the writes they execute, leases and heartbeats, the
failures it keeps, its metrics and its periodic maintenance.

Only ``taskstore worker`` (or ``arq worker.main.WorkerSettings``) loads it.
"""
