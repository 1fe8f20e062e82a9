"""nspod's CRI v1 front end (issue #24): a thin translation over the domain API."""
