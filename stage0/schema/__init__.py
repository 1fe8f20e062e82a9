"""The App Container (appc 0.8.11) schema: validated value types and frozen manifest dataclasses.

Everything here is pure. JSON enters through :mod:`stage0.schema.boundary`, which checks the
document against the shipped JSON Schema and then builds the dataclasses.
"""
