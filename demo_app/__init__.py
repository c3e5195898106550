"""edgekit's demo app: runs an export folder with numpy, tokenizers and one runtime only."""
