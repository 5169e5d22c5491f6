"""Adapters that present iLRM to other libraries' APIs.

Each submodule imports its library itself and nothing in ``ilrm`` imports the submodules, so the
core never depends on them: ``ilrm.integrations.ffgs`` registers iLRM as an ``ffgs`` model plugin.
"""
