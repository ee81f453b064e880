"""The Procrastinate job queue shared by every service, and its worker."""
