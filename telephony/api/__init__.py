"""The HTTP side: REST v1 (Plivo-compatible), the status page, built-in applications."""
