"""Review: a person sees every restoration and decides on it (issue 12).

With `[review] required = true` a finished restoration waits in staging, inside the state
directory, until a person accepts it (published exactly as the job's output mode says) or
rejects it (discarded, and remembered for those inputs). Without it every restoration is
published at once and still shown, and a reject reverts it. Identity drift holds a restoration
for review either way.

- `gate`: the worker's one call once a restoration is computed (face check, previews, staging
  or publishing, the review row);
- `decisions`: accept, reject and redo, for `lmd review …` and the page alike;
- `previews`: the pictures made once per job and the 1:1 loupe; `layout`: where review keeps
  its files (by job id only);
- `publishing`: the XMP sidecar and the word to hooks, Immich and PhotoPrism after publishing;
- `web`: the page (Starlette, Jinja2 templates, its own JS and CSS) and its server.
"""
