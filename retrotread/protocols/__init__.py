"""Wire formats retrotread speaks, as pure codecs with no I/O."""
