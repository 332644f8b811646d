"""Do-not-call lists as a resource: lists, their entries, their imports and exports."""
