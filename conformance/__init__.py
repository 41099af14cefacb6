"""Runtime-agnostic OCI runtime-spec conformance suite.

Drives any runc-compatible binary through its command line and reports, per
check, the spec clause it comes from. See conformance/README.md.
"""
