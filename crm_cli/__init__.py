"""Command-line tools: the ``crm`` client and the local system supervisor behind ``make run``."""

import warnings

# nameko imports eventlet, which warns on import that it is deprecated; users of the CLI cannot act
# on that (architecture.md records the decision), so keep it off their screen.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
