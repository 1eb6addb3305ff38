"""The Transformer models of the lecture, one file per family, each readable top to bottom."""
