"""retrotread test suite (a package, so `tests.helpers` never resolves to a third-party `tests`)."""
