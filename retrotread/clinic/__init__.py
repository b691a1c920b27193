"""What a physio or trainer records and sees beyond the program: per-client limits, how the
walk felt, heart rate with a ceiling, and a report to look at.

:mod:`~retrotread.clinic.limits` (the clinician's limits, checked before the belt moves),
:mod:`~retrotread.clinic.feelings` (pain, exertion, balance, handrails),
:mod:`~retrotread.clinic.heart` (a Bluetooth heart-rate strap and the ceiling),
:mod:`~retrotread.clinic.records` (their tables in the records file) and
:mod:`~retrotread.clinic.report` (the HTML report).
"""
