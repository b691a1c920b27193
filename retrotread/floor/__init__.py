"""The gym floor: every console's state on one MQTT broker, and STOP from anywhere.

Each console publishes what its session's events say (:mod:`.publisher`) under the topic
layout of :mod:`.topics`; ``retrotread floor`` (:mod:`.app`, the only module here that imports
Textual) watches them all (:mod:`.watch`) and sends STOP or pause, signed (:mod:`.auth`).
docs/floor.md describes the layout, the commands and how to lock a broker down.
"""
