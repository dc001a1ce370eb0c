"""What a person opens in a browser: the landing page, the API docs page and the admin
console. Plain HTML and files shipped in the package; nothing is fetched from a CDN."""
