"""Command implementations for the command line, one module per area."""
