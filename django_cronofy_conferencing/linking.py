"""Linking a Cronofy account: the public path of ``accounts.linking``."""

from .accounts.linking import *  # noqa: F403
from .accounts.linking import __all__  # noqa: F401
