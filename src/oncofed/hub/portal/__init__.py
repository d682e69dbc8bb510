"""The researcher portal: server-rendered pages served by the hub (issue 7).

Every page works without JavaScript (plain forms and links); `static/portal.js` only makes
them quicker (criteria chips edited in place, counts streamed per provider as they arrive).
Everything it needs ships with the package: no CDN, no web fonts, charts drawn as inline SVG
on the server, so that a hub inside a hospital network serves the whole portal offline.
"""
