"""Documents and FAQ pairs: loading, chunking, embedding, indexing and hybrid search."""
