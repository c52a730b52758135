"""Thin views: each gathers what a page shows from :mod:`..queries`, or hands a POST to a form."""
