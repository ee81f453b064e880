"""HTTP routes, one module per resource; each parses, calls a domain function, returns a schema."""
