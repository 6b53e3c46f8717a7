"""A tiny fedrule plug-in package (tests/test_plugins.py): loaded only through entry points."""
