"""Durable task and workflow engine. Knows no business and no ML: actions register with it."""
