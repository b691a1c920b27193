"""Bundled device profiles (one TOML per treadmill family), installed as retrotread.devices."""
