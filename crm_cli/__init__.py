"""Command-line tools: the ``crm`` client and the local system supervisor behind ``make run``."""
