"""Placeholder, replaced below."""
import typer

cli = typer.Typer(name="platform")
