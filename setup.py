"""Only what pyproject.toml cannot say: the package list.

``[tool.setuptools.packages.find]`` finds every package under repro/ but cannot add
``repro._manifests``, which pyproject.toml maps to the top-level manifests/ folder; a
hand-written list forgets new subpackages (a wheel once shipped without repro.explain).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["repro", "repro.*"]), "repro._manifests"])
