"""friction_lib: the helper package behind the Push-Back AI workshop notebooks and the `friction` CLI.

Small flat modules, one per step: models, chat, generation, engines (engine_transformers, engine_llamacpp,
engine_openai), serve, schema, personas, generate, curate, train, evaluate, export (with modelfile and verify),
publish, demo, display, workshop, cli.
"""

from friction_lib.errors import FrictionError

__all__ = ["FrictionError"]
__version__ = "0.1.0"
