"""A toy vision-language model family, registered only by the tests (``OVEXPORT_FAMILIES=tests.toy_family.family``).

It proves that a second family goes through ``ovexport plan/run`` (download, convert, make_stateful, compress,
validate, package) without any change outside its own package: a byte-level tokenizer, a 2-layer transformer
LLM with a KV cache, and an image encoder whose learned queries attend over the image's patches.
"""
