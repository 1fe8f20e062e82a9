"""Images: references and fetching (fetch, oci, aci), trust (trust), the store and its index
(store), rendering an image and its dependencies into one tree (render, tree) and the
operations on stored images (catalog)."""
