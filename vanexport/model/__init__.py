"""VAN model zoo: architecture, variants, checkpoints."""
from .variants import DEFAULT_VARIANT, VARIANTS, Preprocessing, Variant, get_variant

__all__ = ["DEFAULT_VARIANT", "VARIANTS", "Preprocessing", "Variant", "get_variant"]
