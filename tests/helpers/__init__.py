"""Test-only Lightning callbacks, importable by the subprocesses the tests start."""
