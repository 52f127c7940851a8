"""The review page: `app` (Starlette routes over `ReviewService`), `security` (bind, token,
CSRF, headers), `server` (uvicorn, in the foreground or on a thread of `lmd run`), and the
page's own `templates/` and `static/` files, shipped in the package."""
