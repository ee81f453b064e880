"""Trainer service: SAE training, feature dashboards, export and concept testing."""
