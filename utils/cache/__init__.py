"""Signed, size-bounded pickle cache on disk (the app's ``cache/`` folder).

``make_key`` (``keys``) hashes what a result depends on; ``DiskCache``
(``disk_cache``) stores signed entries (``entries``: the only module that unpickles)
under a per-folder secret (``secret``), keeps them under a size cap and counts hits
and misses (``stats``). ``open_cache`` builds the cache a profile describes.
The cache is best effort: a cache that cannot be written never stops the work.
"""

from utils.cache.disk_cache import MISS, DiskCache, Miss, open_cache
from utils.cache.keys import make_key
from utils.cache.stats import CacheStats

__all__ = ["MISS", "CacheStats", "DiskCache", "Miss", "make_key", "open_cache"]
