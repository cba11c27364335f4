"""`streamrec view`: a dataset in the browser (needs the `view` extra: aiohttp and plotly).

Nothing in streamrec's core imports this package; the CLI imports it only when `view` runs.
"""

from ._serve import DEFAULT_PORT, serve
from ._server import make_app

__all__ = ["DEFAULT_PORT", "make_app", "serve"]
