"""Conformance checks for dfsim components, one per pipeline stage (in the spirit of
scikit-learn's ``check_estimator``).

Each check exercises the contract of its interface (:mod:`dfsim.stages`) on synthetic
and adversarial inputs and raises :class:`AssertionError` naming the component and the
property that failed; it returns ``None`` when everything holds. No test framework is
needed, so a package that adds components can call the checks from its own tests::

    import numpy as np
    from dfsim import testing

    testing.check_completion_method("my-method")            # a registered name
    testing.check_completion_method(lambda: MyMethod(strength=0.2))
    testing.check_channel(MyChannel(period=5), np.random.default_rng(0))
    testing.check_codec(MyCodec(bits=12))
    testing.check_task(MyTask(), outputs=np.random.default_rng(0).standard_normal((64, 10)),
                       targets=np.arange(64) % 10)
    testing.check_split_model(my_split_model)

The properties each check covers are listed in its docstring; ``properties=`` runs a
subset (e.g. one per test case). Checks are deterministic: the same component and seed
give the same verdict.
"""

from __future__ import annotations

# One module per stage; _common holds what the checks share, _codec_cases the tensors and
# layouts check_codec runs on, _codec_payloads its damaged-payload property.
from dfsim.testing._channels import CHANNEL_PROPERTIES, check_channel
from dfsim.testing._codec_cases import DEFAULT_CODEC_LAYOUTS
from dfsim.testing._codecs import CODEC_PROPERTIES, check_codec
from dfsim.testing._common import synthetic_features
from dfsim.testing._completion import COMPLETION_PROPERTIES, UNEVEN_LAYOUTS, check_completion_method
from dfsim.testing._models import SPLIT_MODEL_PROPERTIES, UNKNOWN_SPLIT, check_split_model
from dfsim.testing._tasks import TASK_PROPERTIES, check_task

__all__ = [
    "CHANNEL_PROPERTIES",
    "CODEC_PROPERTIES",
    "COMPLETION_PROPERTIES",
    "DEFAULT_CODEC_LAYOUTS",
    "SPLIT_MODEL_PROPERTIES",
    "TASK_PROPERTIES",
    "UNEVEN_LAYOUTS",
    "UNKNOWN_SPLIT",
    "check_channel",
    "check_codec",
    "check_completion_method",
    "check_split_model",
    "check_task",
    "synthetic_features",
]
