"""gunicorn's own log lines (boot, worker start and exit, errors) as JSON like the rest.

``recon serve`` passes this class as ``--logger-class``. Access lines come from the app
(``api.observability``: one JSON line per request with its request id); gunicorn's
plain-text access log stays off (no ``--access-logfile``).
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from shared.platform.logs import configure_logging


class JsonLogger(Logger):
    """gunicorn's logger, its error log handed to the service's JSON handler on stderr."""

    def setup(self, cfg: object) -> None:
        """Set gunicorn up as usual, then route ``gunicorn.error`` to the root JSON handler."""
        super().setup(cfg)
        configure_logging()
        for handler in list(self.error_log.handlers):
            if getattr(handler, "_gunicorn", False):
                self.error_log.removeHandler(handler)
        self.error_log.propagate = True
