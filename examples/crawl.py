#!/usr/bin/env python3
"""A small breadth-first crawler for the crawlab-node demo.

usage: crawl.py START_URL

Follows links that stay under START_URL, logs its progress on stderr, and emits one result item
per product page using the Crawlab SDK line convention on stdout:
    {"type": "data", "payload": {...}, "ipc": true}
"""
import html.parser
import json
import sys
import urllib.parse
import urllib.request


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.title, self.fields, self._in = [], "", {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        self._in = "title" if tag == "title" else attrs.get("class")

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in in ("price", "category"):
            self.fields[self._in] = data.strip()

    def handle_endtag(self, tag):
        self._in = None


def emit(item):
    print(json.dumps({"type": "data", "payload": item, "ipc": True}), flush=True)


def main():
    start = sys.argv[1]
    root = start.rsplit("/", 1)[0] + "/"
    queue, seen = [start], {start}
    while queue:
        url = queue.pop(0)
        with urllib.request.urlopen(url, timeout=10) as r:
            page = Page()
            page.feed(r.read().decode("utf-8"))
        print(f"fetched {url} ({len(page.links)} links)", file=sys.stderr, flush=True)
        if "price" in page.fields:
            emit({"url": url, "name": page.title, **page.fields})
        for href in page.links:
            link = urllib.parse.urljoin(url, href)
            if link.startswith(root) and link not in seen:
                seen.add(link)
                queue.append(link)
    print(f"done: {len(seen)} pages", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
