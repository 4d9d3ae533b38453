"""Does an artifact compute what PyTorch computes? Tolerances per precision, the inputs to check on, one comparison
path for every backend (through Polygraphy's Comparator), and `validate` for files on disk."""
