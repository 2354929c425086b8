"""One module per on-disk format, each parsed once at the edge into typed values."""
