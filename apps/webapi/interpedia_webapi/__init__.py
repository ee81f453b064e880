"""Public REST API, web pages and the admin import."""
