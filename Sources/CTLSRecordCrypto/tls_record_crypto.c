#include "tls_record_crypto.h"

#include <limits.h>
#include <openssl/evp.h>

struct sy_aead {
    EVP_CIPHER_CTX *context;
    int encrypt;
};

static const EVP_CIPHER *cipher_for(sy_aead_algorithm algorithm, size_t key_length) {
    switch (algorithm) {
    case SY_AEAD_AES_128_GCM:
        return key_length == 16 ? EVP_aes_128_gcm() : NULL;
    case SY_AEAD_AES_256_GCM:
        return key_length == 32 ? EVP_aes_256_gcm() : NULL;
    case SY_AEAD_CHACHA20_POLY1305:
        return key_length == 32 ? EVP_chacha20_poly1305() : NULL;
    }
    return NULL;
}

sy_aead *sy_aead_new(sy_aead_algorithm algorithm, const uint8_t *key, size_t key_length, int encrypt) {
    const EVP_CIPHER *cipher = cipher_for(algorithm, key_length);
    if (cipher == NULL) {
        return NULL;
    }
    sy_aead *aead = OPENSSL_zalloc(sizeof(sy_aead));
    if (aead == NULL) {
        return NULL;
    }
    aead->encrypt = encrypt ? 1 : 0;
    aead->context = EVP_CIPHER_CTX_new();
    if (aead->context == NULL
        || EVP_CipherInit_ex(aead->context, cipher, NULL, NULL, NULL, aead->encrypt) != 1
        || EVP_CIPHER_CTX_ctrl(aead->context, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1
        || EVP_CipherInit_ex(aead->context, NULL, NULL, key, NULL, aead->encrypt) != 1) {
        sy_aead_free(aead);
        return NULL;
    }
    return aead;
}

void sy_aead_free(sy_aead *aead) {
    if (aead == NULL) {
        return;
    }
    EVP_CIPHER_CTX_free(aead->context);
    OPENSSL_clear_free(aead, sizeof(sy_aead));
}

static int start(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length) {
    int written = 0;
    if (aad_length > INT_MAX) {
        return 0;
    }
    return EVP_CipherInit_ex(aead->context, NULL, NULL, NULL, nonce, aead->encrypt) == 1
        && EVP_CipherUpdate(aead->context, NULL, &written, aad, (int)aad_length) == 1;
}

int sy_aead_seal(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, uint8_t tag[16]) {
    int written = 0;
    int final_written = 0;
    if (!aead->encrypt || length > INT_MAX || !start(aead, nonce, aad, aad_length)) {
        return 0;
    }
    if (length > 0 && EVP_CipherUpdate(aead->context, output, &written, input, (int)length) != 1) {
        return 0;
    }
    if (EVP_CipherFinal_ex(aead->context, output + written, &final_written) != 1) {
        return 0;
    }
    return EVP_CIPHER_CTX_ctrl(aead->context, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
}

int sy_aead_open(sy_aead *aead, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                 const uint8_t *input, uint8_t *output, size_t length, const uint8_t tag[16]) {
    int written = 0;
    int final_written = 0;
    if (aead->encrypt || length > INT_MAX || !start(aead, nonce, aad, aad_length)) {
        return 0;
    }
    if (length > 0 && EVP_CipherUpdate(aead->context, output, &written, input, (int)length) != 1) {
        return 0;
    }
    // The tag is only read, but the ctrl interface takes a non-const pointer.
    if (EVP_CIPHER_CTX_ctrl(aead->context, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag) != 1) {
        return 0;
    }
    return EVP_CipherFinal_ex(aead->context, output + written, &final_written) == 1;
}
