"""The hostile-input suite's fixtures (``refused``, ``world``), for every module here."""

from tests.cross_cutting.test_hostile_input import refused, world  # noqa: F401 - fixtures
