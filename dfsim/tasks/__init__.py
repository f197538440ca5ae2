"""Tasks: what the cloud sub-model's outputs are for, and how they are scored.

A task (:class:`dfsim.stages.Task`) turns outputs into predictions and declares its
metrics; a scenario chooses one with ``task:`` (default ``classification``). Importing
this package registers the built-in ones.
"""

from dfsim.tasks import classification, detection, reconstruction  # noqa: F401  (built-in tasks)
