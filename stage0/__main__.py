"""``python -m stage0`` runs the nspod command line."""

from stage0.launch import entry

entry()
