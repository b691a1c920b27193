"""The operator console (Textual). Import ``retrotread.tui.app`` for the app itself."""
