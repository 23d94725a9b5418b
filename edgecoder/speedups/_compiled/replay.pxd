# SPDX-License-Identifier: Apache-2.0
# C-level interface of the compiled replay cache (_speedups/replay.pyx), for envelope.pyx.

cdef class ReplayCache:
    cdef readonly Py_ssize_t capacity
    cdef readonly long long window_ms
    cdef dict _entries
    cdef list _keys
    cdef long long *_expiry
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count

    cdef Py_ssize_t _expire(self, long long now_ms)
    cdef void _push(self, str key, long long expires)
    cdef int insert(self, str key, long long timestamp_ms, long long now_ms) except -2
