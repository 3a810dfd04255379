"""Operations around a running engine: Prometheus metrics and JSON-lines logs."""
