#include "tls_record_crypto.h"

#include "CCryptoBoringSSL_aead.h"
#include "CCryptoBoringSSL_mem.h"

enum { SY_AEAD_TAG_LENGTH = 16, SY_AEAD_NONCE_LENGTH = 12 };

struct sy_aead {
    EVP_AEAD_CTX context;
    int encrypt;
};

static const EVP_AEAD *aead_for(sy_aead_algorithm algorithm, size_t key_length) {
    switch (algorithm) {
    case SY_AEAD_AES_128_GCM:
        return key_length == 16 ? EVP_aead_aes_128_gcm() : NULL;
    case SY_AEAD_AES_256_GCM:
        return key_length == 32 ? EVP_aead_aes_256_gcm() : NULL;
    case SY_AEAD_CHACHA20_POLY1305:
        return key_length == 32 ? EVP_aead_chacha20_poly1305() : NULL;
    }
    return NULL;
}

sy_aead *sy_aead_new(sy_aead_algorithm algorithm, const uint8_t *key, size_t key_length, int encrypt) {
    const EVP_AEAD *cipher = aead_for(algorithm, key_length);
    if (cipher == NULL || key == NULL) {
        return NULL;
    }
    sy_aead *aead = OPENSSL_zalloc(sizeof(sy_aead));
    if (aead == NULL) {
        return NULL;
    }
    aead->encrypt = encrypt ? 1 : 0;
    // The key schedule (and GHASH table) is computed once here; records only pass a nonce.
    if (EVP_AEAD_CTX_init(&aead->context, cipher, key, key_length, SY_AEAD_TAG_LENGTH, NULL) != 1) {
        OPENSSL_free(aead);
        return NULL;
    }
    return aead;
}

void sy_aead_free(sy_aead *aead) {
    if (aead == NULL) {
        return;
    }
    EVP_AEAD_CTX_cleanup(&aead->context);
    OPENSSL_free(aead);  // BoringSSL's OPENSSL_free zeroes the allocation before releasing it.
}

int sy_aead_seal(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, uint8_t tag[16]) {
    size_t tag_length = 0;
    if (!aead->encrypt) {
        return 0;
    }
    return EVP_AEAD_CTX_seal_scatter(&aead->context, output, tag, &tag_length, SY_AEAD_TAG_LENGTH, nonce,
                                     SY_AEAD_NONCE_LENGTH, input, length, NULL, 0, aad, aad_length) == 1
        && tag_length == SY_AEAD_TAG_LENGTH;
}

int sy_aead_open(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, const uint8_t tag[16]) {
    if (aead->encrypt) {
        return 0;
    }
    return EVP_AEAD_CTX_open_gather(&aead->context, output, nonce, SY_AEAD_NONCE_LENGTH, input, length, tag,
                                    SY_AEAD_TAG_LENGTH, aad, aad_length) == 1;
}
