/*
 * scram.h - the arithmetic of SCRAM-SHA-256 (RFC 5802, RFC 7677), shared
 * by the broker (broker/auth.c) and libsluice (client/src/conn.c). Pure
 * computation over OpenSSL's libcrypto: no I/O, no state.
 *
 *   SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i)
 *   ClientKey      = HMAC(SaltedPassword, "Client Key")
 *   StoredKey      = SHA-256(ClientKey)
 *   ServerKey      = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage    = client-first-bare "," server-first "," client-final
 *                    without its ",p=" proof
 *   ClientProof    = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * The broker keeps only salt, i, StoredKey and ServerKey per user: what it
 * stores cannot be replayed as a password, and verifying a SCRAM proof
 * costs two HMACs (the PBKDF2 runs on the client). A PLAIN or STOMP
 * password is checked by running the PBKDF2 and comparing StoredKeys.
 * @thread any (everything here)
 */
#ifndef SL_SCRAM_H
#define SL_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

#define SL_SCRAM_KEY_LEN 32
#define SL_SCRAM_SALT_LEN 16
/* RFC 7677's minimum, also PostgreSQL's and Kafka's default. */
#define SL_SCRAM_DEFAULT_ITER 4096
#define SL_SCRAM_MIN_ITER 4096
#define SL_SCRAM_MAX_ITER 10000000
#define SL_SCRAM_MECH "SCRAM-SHA-256"

/* PBKDF2-HMAC-SHA-256. SL_OK or SL_ERR_UNKNOWN (libcrypto failed). */
sl_err sl_scram_salted(const char *password, size_t pwlen, const uint8_t *salt,
                       size_t saltlen, uint32_t iter,
                       uint8_t out[SL_SCRAM_KEY_LEN]);
/* ClientKey, StoredKey and ServerKey from a SaltedPassword (any may be
 * NULL). */
void sl_scram_keys(const uint8_t salted[SL_SCRAM_KEY_LEN],
                   uint8_t client_key[SL_SCRAM_KEY_LEN],
                   uint8_t stored_key[SL_SCRAM_KEY_LEN],
                   uint8_t server_key[SL_SCRAM_KEY_LEN]);
void sl_scram_hmac(const uint8_t *key, size_t klen, const void *msg, size_t len,
                   uint8_t out[SL_SCRAM_KEY_LEN]);
void sl_scram_sha256(const void *p, size_t n, uint8_t out[SL_SCRAM_KEY_LEN]);
/* 1 if the n bytes at a and b are equal, in constant time. */
int sl_scram_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Base64 of n bytes into out (NUL-terminated). Returns its length, or 0
 * when cap is too small. */
size_t sl_b64_encode(const uint8_t *p, size_t n, char *out, size_t cap);
/* Decode n base64 characters into out. Returns the byte count, or -1 for
 * bad input or when cap is too small. */
int sl_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap);
/* A printable random nonce (base64 of 18 random bytes, 24 characters). */
sl_err sl_scram_nonce(char out[32]);
/* Random bytes (a salt). */
sl_err sl_scram_random(uint8_t *out, size_t n);

/*
 * Find attribute `name` ("r", "s", "i", "p", "v", "e", ...) in a SCRAM
 * message of comma-separated `x=value` attributes. 1 with *val and *vlen
 * (borrowed from msg), 0 if absent.
 */
int sl_scram_attr(const char *msg, size_t len, char name, const char **val,
                  size_t *vlen);

/* A user name as SCRAM and the user store take it: 1..64 characters of
 * letters, digits and . _ @ - (no escaping in SCRAM's n= attribute). */
int sl_user_name_ok(const char *name, size_t len);

#endif
