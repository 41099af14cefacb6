"""Start-up benchmark harness for OCI runtimes (stdlib only)."""
