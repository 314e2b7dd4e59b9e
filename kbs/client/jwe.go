package client

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrLegacyJWE is wrapped by [DecryptResponse] for the JWE form of KBS
// protocol versions before 0.2.0: an empty tag member with the tag
// appended to the ciphertext, and no AAD over the protected header.
var ErrLegacyJWE = errors.New("legacy KBS JWE form (tag inside the ciphertext, no AAD) is not accepted")

// jweKeyAlgorithms are the key management algorithms a resource may use.
var jweKeyAlgorithms = []jose.KeyAlgorithm{jose.ECDH_ES_A256KW, jose.RSA_OAEP_256}

// DecryptResponse decrypts a resource response, a flattened RFC 7516 JWE
// (ECDH-ES+A256KW or RSA-OAEP-256, with A256GCM), with key, an
// *ecdsa.PrivateKey or *rsa.PrivateKey. It requires the separate 16-byte
// authentication tag of RFC 7516 and authenticates the protected header,
// so the legacy form fails with an error wrapping [ErrLegacyJWE].
func DecryptResponse(body []byte, key any) ([]byte, error) {
	var members struct {
		Protected  string          `json:"protected"`
		IV         string          `json:"iv"`
		Tag        *string         `json:"tag"`
		Recipients json.RawMessage `json:"recipients"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&members); err != nil {
		return nil, fmt.Errorf("resource response is not a JWE JSON object: %v", err)
	}
	if members.Recipients != nil {
		return nil, errors.New("resource response is a general JWE with recipients; expected the flattened serialization")
	}
	if members.Protected == "" {
		return nil, errors.New("resource response JWE has no protected header")
	}
	if members.Tag == nil || *members.Tag == "" {
		return nil, fmt.Errorf("resource response JWE has an empty tag: %w", ErrLegacyJWE)
	}
	tag, err := base64.RawURLEncoding.DecodeString(*members.Tag)
	if err != nil || len(tag) != 16 {
		return nil, errors.New("resource response JWE tag is not 16 base64url bytes")
	}

	obj, err := jose.ParseEncryptedJSON(string(body), jweKeyAlgorithms, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, fmt.Errorf("resource response is not an accepted JWE: %v", err)
	}
	plaintext, err := obj.Decrypt(key)
	if err != nil {
		return nil, fmt.Errorf("resource response JWE does not decrypt with the TEE key: %v", err)
	}
	return plaintext, nil
}
