"""Plivo XML: parsing, validation, fetching and execution of call documents."""
