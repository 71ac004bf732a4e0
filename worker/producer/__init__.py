"""What a service that sends writes uses: ``TaskStoreClient``, its coalescing, the
handles it gives back, and the queue calls it makes (enqueue, wait, settle).

A producer needs this and ``worker.protocol``, never the worker's runtime.
"""
