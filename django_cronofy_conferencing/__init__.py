"""Keep your users' Cronofy conferencing profiles in sync in Django."""

__version__ = "0.1.0"
