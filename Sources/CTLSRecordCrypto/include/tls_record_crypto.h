// AEAD record protection for Switchyard's TLS fast path, on the BoringSSL that swift-crypto builds in
// (CCryptoBoringSSL, EVP_AEAD_CTX).
//
// One context per direction and key: the key schedule is computed once, each record passes only its
// 12-byte nonce. Every call works on caller-owned memory and allocates nothing.
#ifndef SWITCHYARD_TLS_RECORD_CRYPTO_H
#define SWITCHYARD_TLS_RECORD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SY_AEAD_AES_128_GCM = 1,
    SY_AEAD_AES_256_GCM = 2,
    SY_AEAD_CHACHA20_POLY1305 = 3,
} sy_aead_algorithm;

typedef struct sy_aead sy_aead;

/// A context for sealing (`encrypt` != 0) or opening records with `key`; NULL when the algorithm or key
/// length is wrong or BoringSSL fails.
sy_aead *sy_aead_new(sy_aead_algorithm algorithm, const uint8_t *key, size_t key_length, int encrypt);
void sy_aead_free(sy_aead *aead);

/// Encrypts `length` bytes from `input` into `output` (which may be the same memory) and writes the
/// 16-byte tag. Returns 1, or 0 on a failure or when the context was made for opening.
int sy_aead_seal(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, uint8_t tag[16]);

/// Decrypts and authenticates `length` bytes from `input` into `output` (which may be the same memory).
/// Returns 1 when the tag verifies; 0 when it does not (the output is then zeroed and must be ignored)
/// or when the context was made for sealing.
int sy_aead_open(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, const uint8_t tag[16]);

#endif
