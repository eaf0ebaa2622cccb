"""Who may do what: operation names, the allowlist, and the audit of every decision."""
