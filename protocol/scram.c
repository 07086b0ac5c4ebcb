/*
 * scram.c - SCRAM-SHA-256 arithmetic over libcrypto (see scram.h).
 */
#include "protocol/scram.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

sl_err sl_scram_salted(const char *password, size_t pwlen, const uint8_t *salt,
                       size_t saltlen, uint32_t iter,
                       uint8_t out[SL_SCRAM_KEY_LEN])
{
    if (iter < 1 || pwlen > 1024 * 1024 || saltlen > 1024)
        return SL_ERR_INVALID_ARG;
    if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen, (int)iter,
                          EVP_sha256(), SL_SCRAM_KEY_LEN, out) != 1)
        return SL_ERR_UNKNOWN;
    return SL_OK;
}

void sl_scram_hmac(const uint8_t *key, size_t klen, const void *msg, size_t len,
                   uint8_t out[SL_SCRAM_KEY_LEN])
{
    unsigned int olen = SL_SCRAM_KEY_LEN;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, len, out, &olen))
        memset(out, 0, SL_SCRAM_KEY_LEN);
}

void sl_scram_sha256(const void *p, size_t n, uint8_t out[SL_SCRAM_KEY_LEN])
{
    SHA256(p, n, out);
}

void sl_scram_keys(const uint8_t salted[SL_SCRAM_KEY_LEN],
                   uint8_t client_key[SL_SCRAM_KEY_LEN],
                   uint8_t stored_key[SL_SCRAM_KEY_LEN],
                   uint8_t server_key[SL_SCRAM_KEY_LEN])
{
    uint8_t ck[SL_SCRAM_KEY_LEN];
    sl_scram_hmac(salted, SL_SCRAM_KEY_LEN, "Client Key", 10, ck);
    if (client_key)
        memcpy(client_key, ck, sizeof(ck));
    if (stored_key)
        sl_scram_sha256(ck, sizeof(ck), stored_key);
    if (server_key)
        sl_scram_hmac(salted, SL_SCRAM_KEY_LEN, "Server Key", 10, server_key);
    OPENSSL_cleanse(ck, sizeof(ck));
}

int sl_scram_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

size_t sl_b64_encode(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (cap < 4 * ((n + 2) / 3) + 1)
        return 0;
    return (size_t)EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

int sl_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    uint8_t tmp[1024];
    int len, pad = 0;
    if (n % 4 || n / 4 * 3 > sizeof(tmp))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              (c == '=' && i >= n - 2)))
            return -1;
    }
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    if (n == 0)
        return 0;
    len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0 || len - pad < 0 || (size_t)(len - pad) > cap)
        return -1;
    memcpy(out, tmp, (size_t)(len - pad));
    return len - pad;
}

sl_err sl_scram_random(uint8_t *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? SL_OK : SL_ERR_UNKNOWN;
}

sl_err sl_scram_nonce(char out[32])
{
    uint8_t r[18];
    if (sl_scram_random(r, sizeof(r)) != SL_OK)
        return SL_ERR_UNKNOWN;
    sl_b64_encode(r, sizeof(r), out, 32);
    return SL_OK;
}

int sl_scram_attr(const char *msg, size_t len, char name, const char **val,
                  size_t *vlen)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && msg[j] != ',')
            j++;
        if (j - i >= 2 && msg[i] == name && msg[i + 1] == '=') {
            *val = msg + i + 2;
            *vlen = j - i - 2;
            return 1;
        }
        i = j + 1;
    }
    return 0;
}

int sl_user_name_ok(const char *name, size_t len)
{
    if (!name || len < 1 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
              c == '-'))
            return 0;
    }
    return 1;
}
