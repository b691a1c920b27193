"""Everything about the distribution is in pyproject.toml except its package list, found here:
setuptools' own ``find`` cannot add ``retrotread.devices``, whose files live in ``devices/`` at
the top of the tree (pyproject.toml maps it)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["retrotread", "retrotread.*"]), "retrotread.devices"])
