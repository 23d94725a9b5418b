# SPDX-License-Identifier: Apache-2.0
# cython: language_level=3, boundscheck=False, wraparound=False
"""The replay cache (compiled): a dict for membership, a C ring buffer of expiries.

Twin of ``edgecoder/speedups/_pure/replay.py``: same names, signatures, exceptions.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc

__all__ = ("ReplayCache",)


cdef class ReplayCache:
    """Bounded set of recently accepted (sender, nonce) pairs (fields in replay.pxd)."""

    def __cinit__(self, Py_ssize_t capacity, long long window_ms):
        if capacity < 1 or window_ms < 1:
            raise ValueError("capacity and window_ms must be positive")
        self._expiry = <long long *>PyMem_Malloc(capacity * sizeof(long long))
        if self._expiry == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.window_ms = window_ms
        self._entries = {}
        self._keys = [None] * capacity
        self._head = 0
        self._count = 0

    def __dealloc__(self):
        PyMem_Free(self._expiry)

    def __len__(self):
        return len(self._entries)

    def seen(self, str sender, str nonce):
        """Whether this pair was accepted and has not expired yet."""
        return (sender + ":" + nonce) in self._entries

    cdef Py_ssize_t _expire(self, long long now_ms):
        cdef Py_ssize_t dropped = 0
        while self._count > 0 and self._expiry[self._head] <= now_ms:
            del self._entries[self._keys[self._head]]
            self._keys[self._head] = None
            self._head = (self._head + 1) % self.capacity
            self._count -= 1
            dropped += 1
        return dropped

    def expire(self, long long now_ms):
        """Forget entries whose time has passed; returns how many were dropped."""
        return self._expire(now_ms)

    cdef void _push(self, str key, long long expires):
        cdef Py_ssize_t tail = (self._head + self._count) % self.capacity
        self._expiry[tail] = expires
        self._keys[tail] = key
        self._count += 1
        self._entries[key] = expires

    cdef int insert(self, str key, long long timestamp_ms, long long now_ms) except -2:
        """C-level add: 1 added, 0 already there, -1 full of unexpired entries."""
        if key in self._entries:
            return 0
        if self._count >= self.capacity:
            self._expire(now_ms)
            if self._count >= self.capacity:
                return -1
        self._push(key, timestamp_ms + self.window_ms)
        return 1

    def add(self, str sender, str nonce, long long timestamp_ms, long long now_ms):
        """Record an accepted pair; False if it is already there (a replay)."""
        cdef int added = self.insert(sender + ":" + nonce, timestamp_ms, now_ms)
        if added < 0:
            raise OverflowError("replay cache full of unexpired entries")
        return added == 1

    def snapshot(self, long long now_ms):
        """The unexpired entries as ``(key, expires_ms)``, oldest first, for persisting."""
        cdef Py_ssize_t i, slot
        cdef list out = []
        for i in range(self._count):
            slot = (self._head + i) % self.capacity
            if self._expiry[slot] > now_ms:
                out.append((self._keys[slot], self._expiry[slot]))
        return out

    def restore(self, entries, long long now_ms):
        """Load a snapshot (unexpired entries only, up to the capacity)."""
        for key, expires in entries:
            if expires > now_ms and key not in self._entries and self._count < self.capacity:
                self._push(key, expires)
