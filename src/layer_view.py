#!/usr/bin/python3
"""Makes one layer's include view: a directory of symbolic links to the source folders (and
single headers) that the layer may include, and nothing else.

usage: layer_view.py VIEW_DIR NAME=TARGET...   (TARGET an absolute path)"""

import os
import sys

view = sys.argv[1]
os.makedirs(view, exist_ok=True)
wanted = dict(arg.split("=", 1) for arg in sys.argv[2:])
for name in os.listdir(view):
    if name not in wanted:
        os.unlink(os.path.join(view, name))
for name, target in wanted.items():
    link = os.path.join(view, name)
    if os.path.islink(link) and os.readlink(link) == target:
        continue
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)
