"""How big a user's input may be: checked before anything is built, so that a hostile or
mistaken scenario, file or payload is a one-line error, never a hang, a traceback or a
huge allocation."""

MAX_SCENARIO_BYTES = 1 << 20  # a scenario file, checked before parsing (default.yaml: 1.6 KiB)
MAX_YAML_DEPTH = 64  # nested lists and mappings (a scenario needs 5)
MAX_YAML_NODES = 1_000_000  # YAML nodes with every alias expanded ("billion laughs")
MAX_CONFIGS = 10_000  # grid configs; `dfsim run --max-configs N` raises it
MAX_UNITS = 1_000_000  # work units, configs x channel settings x trials; `--max-units N`
MAX_METHODS = 1_000  # completion methods with their variants
