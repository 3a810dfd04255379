"""Operations around a running engine: Prometheus metrics and JSON-lines logs."""


class OpsError(Exception):
    """An operations option cannot be honoured (metrics port taken, log unwritable); the
    message names the option and why, for a one-line usage error."""
