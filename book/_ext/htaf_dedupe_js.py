"""Drop duplicate inline ``<script>`` tags from every page.

Sphinx 7.4 registers an inline script added with ``app.add_js_file(None, body=...)`` twice: once as given
(filename ``None``) and again in ``StandaloneHTMLBuilder.prepare_writing``, which re-adds the registry's
scripts with filename ``''`` so the two do not compare equal. For sphinx-thebe's
``const THEBE_JS_URL = ...`` the second copy throws ``SyntaxError: Identifier 'THEBE_JS_URL' has already
been declared`` on every page (sphinx-togglebutton's ``var`` copy is merely redundant). This extension keeps
the first of each (filename, attributes) pair, treating ``None`` and ``''`` as the same filename.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    kept = []
    for js in scripts:
        filename = getattr(js, "filename", js) or ""
        attributes = getattr(js, "attributes", {}) or {}
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
