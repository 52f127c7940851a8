"""After a restoration is published: tell the person's other tools about it.

Post-job hooks (`hooks`), Immich (`immich`: upload + stack, or library rescan), PhotoPrism
(`photoprism`: index the changed folder; stack-friendly names) and XMP sidecars beside each
output (`xmp_sidecar`). None of these may block or fail the job queue: a viewer that is down
or a hook that hangs is logged, retried where that makes sense, and never holds a job back.
This package imports nothing of the store, worker or scanner; the worker hands it a
`JobOutcome`.
"""
