"""HTTP routes of the trainer, one module per resource."""
