"""The console's screens: start, run, summary, and error modals."""
