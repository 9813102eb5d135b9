"""The seller console: server-rendered pages over the admin API's own rules.

``session.py`` signs the browser session and its CSRF token (pure), ``pages.py`` holds the
routes, ``templates/`` the Jinja2 pages and ``static/console.css`` their one stylesheet.
"""
