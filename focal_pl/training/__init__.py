"""The run machinery: what makes a run's files the run, whatever a cluster does to it.

- ``runs``: where a run's files go (``run_dir``), safe file names, the step of the model evaluated
- ``checkpoints``: ``RunCheckpoint`` (Lightning's ``ModelCheckpoint`` plus the last.ckpt rule, the
  stop-signal save, moved runs) and ``AtomicCheckpointIO`` (atomic, checksummed writes)
- ``stopping``: SIGINT / SIGTERM become a stop at the next step boundary
- ``budget``: the training length and validation interval stated in images
- ``distributed``: a lost DDP peer ends the run in bounded time (``PeerWatch``)
- ``loggers``: the CSV logger that continues a resumed run, the W&B preset
- ``progress``: lines for log files (``LogProgress``)
- ``provenance``: ``run.json``, what a run was (code, versions, machine, data, every segment)
- ``schedulers``: ``CosineToEnd``
- ``quiet``: Lightning's tips and per-run warnings silenced

Nothing here knows the model, the losses or the clustering; ``focal_pl.engine`` chooses which of
these callbacks a run gets.
"""
