# SPDX-License-Identifier: Apache-2.0
# The few libsodium entry points the compiled core binds, 1:1 with sodium.h.

cdef extern from "sodium.h" nogil:
    int sodium_init()
    int sodium_memcmp(const void *b1, const void *b2, size_t length)

    size_t crypto_sign_SEEDBYTES
    size_t crypto_sign_PUBLICKEYBYTES
    size_t crypto_sign_SECRETKEYBYTES
    size_t crypto_sign_BYTES

    int crypto_sign_seed_keypair(unsigned char *pk, unsigned char *sk, const unsigned char *seed)
    int crypto_sign_detached(unsigned char *sig, unsigned long long *siglen_p,
                             const unsigned char *m, unsigned long long mlen,
                             const unsigned char *sk)
    int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
                                    unsigned long long mlen, const unsigned char *pk)

    ctypedef struct crypto_hash_sha256_state:
        pass
    int crypto_hash_sha256_init(crypto_hash_sha256_state *state)
    int crypto_hash_sha256_update(crypto_hash_sha256_state *state, const unsigned char *inp,
                                  unsigned long long inlen)
    int crypto_hash_sha256_final(crypto_hash_sha256_state *state, unsigned char *out)
