"""Prompt texts (package data)."""
