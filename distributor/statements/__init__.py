"""Statements: the model, the importers for each file format, and the embargo-time parser."""

from distributor.statements.importer import parse_file
from distributor.statements.model import Statement, statement_id

__all__ = ["Statement", "statement_id", "parse_file"]
