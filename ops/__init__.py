"""Operations: health checks, Prometheus metrics, structured logs and worker liveness."""
