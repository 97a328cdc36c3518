"""Fault-injection tests: the tracker under faults and hostile input (issue 13)."""
