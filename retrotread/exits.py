"""Exit statuses of the ``retrotread`` commands (light: the help text shows them)."""

from __future__ import annotations

import signal

from retrotread.vocabulary import StopReason

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_FAULT = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: Each signal that ends a run stops the belt first; the exit status is 128 + its number.
EXIT_SIGNALS = {
    signal.SIGINT: StopReason.SIGNAL_INT,
    signal.SIGTERM: StopReason.SIGNAL_TERM,
    signal.SIGHUP: StopReason.SIGNAL_HUP,
    signal.SIGQUIT: StopReason.SIGNAL_QUIT,
}

EXIT_CODES = f"""exit status of `run`:
  {EXIT_OK}    the program completed and the belt stopped
  {EXIT_STOPPED}    stopped early (operator, console stop, safety key)
  {EXIT_FAULT}    a device or safety fault ended the session
  {EXIT_USAGE}    bad program file, device URL or arguments
  {EXIT_SIGINT}  interrupted with Ctrl-C (the belt was stopped first)
  {EXIT_SIGTERM}  terminated with SIGTERM (the belt was stopped first)
  129  hung up: SIGHUP, the terminal or SSH session closed (the belt was stopped first)
  131  SIGQUIT (the belt was stopped first)"""
