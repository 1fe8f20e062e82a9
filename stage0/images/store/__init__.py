"""The image store: a content-addressed blob store, an SQLite index and a tree store of extracted
and rendered images, safe for any number of concurrent nspod processes and for crashes."""
