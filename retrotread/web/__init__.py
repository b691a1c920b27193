"""The served console: one session, many browser views (``retrotread tui PROGRAM --serve``).

The serving process runs the one session on the one treadmill; every browser page is a view
onto it, fed over a websocket. Nothing here imports Textual.
"""
