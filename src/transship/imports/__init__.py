"""The import engine: upstream client, plan, transfer, job state machine (with the import issue)."""
